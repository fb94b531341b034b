"""Agreement of a reduced-precision backend with fp32 on the same frames, and the speed of each.

For the shipped car models on frames of the held-out synthetic drives: the share of fp32
instances matched at mask IoU >= 0.9 by the reduced run, instances gained and lost (present in
one run only at the seed threshold), the embedding drift (distance between the fp32 and reduced
embeddings of the same point clouds, against the typical distance between instances), and the
median forward time of each network at full width (random weights) and for the shipped lite
models.

    python tools/precision_agreement.py --frames out/synth_test/images --out benchmarks/precision_agreement.json

``mots-ros export agreement`` measures the same on any config's models (int8 included) and keeps
the record ``auto`` chooses from; this script adds the full-width forward timings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from mots_ros.benchmark import machine_description, time_call
from mots_ros.config import preset
from mots_ros.datasets import list_frames, read_image_rgb
from mots_ros.pipeline import MotsPipeline
from mots_ros.precision import instance_agreement

VARIANTS = {  # name: (inference.backend, inference.precision)
    "onnxruntime_fp32": ("onnxruntime", "fp32"),
    "openvino_fp32": ("openvino", "fp32"),
    "openvino_bf16": ("openvino", "bf16"),
}


def pipelines(threads: int) -> dict[str, MotsPipeline]:
    return {name: MotsPipeline.from_config(preset("car-published").replace(**{
        "inference.backend": backend, "inference.precision": precision, "inference.num_threads": threads}))
        for name, (backend, precision) in VARIANTS.items()}


def forward_timings(threads: int) -> dict[str, dict[str, float]]:
    """Median forward ms per backend: full-width networks (random weights) and the shipped lite files."""
    import tempfile

    import torch

    from mots_ros.backends.onnx_backend import OnnxRuntimeBackend
    from mots_ros.backends.openvino_backend import OpenVinoBackend
    from mots_ros.embedding import PointTrackNet
    from mots_ros.export import export_embedding, export_segmentation
    from mots_ros.model_files import model_file
    from mots_ros.segmentation import SpatialEmbeddingNet

    folder = Path(tempfile.mkdtemp(prefix="mots_precision_"))
    torch.manual_seed(0)
    files = {
        "segmentation_width1": export_segmentation(SpatialEmbeddingNet(width=1.0).eval(), folder / "se1.onnx",
                                                   height=None, width=None),
        "segmentation_shipped_lite": model_file(preset("car-published"), "segmentation", "onnx"),
        "embedding_width1": export_embedding(PointTrackNet().eval(), folder / "pt.onnx"),
    }
    rng = np.random.default_rng(0)
    image = rng.random((1, 3, 376, 1248), dtype=np.float32)
    points, boxes = rng.random((10, 1500, 8), dtype=np.float32), rng.random((10, 4), dtype=np.float32)
    makers = {
        "onnxruntime_fp32": lambda path: OnnxRuntimeBackend(path, num_threads=threads),
        "openvino_fp32": lambda path: OpenVinoBackend(path, precision="fp32", num_threads=threads),
        "openvino_bf16": lambda path: OpenVinoBackend(path, precision="bf16", num_threads=threads),
    }
    timings = {}
    for network, path in files.items():
        inputs = (image,) if network.startswith("segmentation") else (points, boxes)
        for name, make in makers.items():
            backend = make(path)
            timings[f"{network}_{name}"] = time_call(lambda b=backend, x=inputs: b.run(*x), 5)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, required=True, help="a folder of images named by frame number")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = pipelines(args.threads)
    frames = [read_image_rgb(path) for _, path in list_frames(args.frames)[: args.count]]
    reference = runs["onnxruntime_fp32"]
    report: dict = {"machine": machine_description(), "frames": len(frames), "threads": args.threads, "agreement": {},
                    "timing_ms": {}}
    for name, pipeline in runs.items():
        totals = np.zeros(4, np.int64)
        drift, spread = [], []
        for image in frames:
            ref_seg, seg = reference.segmenter.segment(image), pipeline.segmenter.segment(image)
            totals += instance_agreement(ref_seg.labels, seg.labels)
            clouds = reference.embedder.sample(ref_seg.labels, image)
            if len(clouds.bboxes):
                ref_embedding, embedding = reference.embedder.embed(clouds), pipeline.embedder.embed(clouds)
                drift.extend(np.linalg.norm(ref_embedding - embedding, axis=1).tolist())
                if len(ref_embedding) > 1:
                    pairwise = np.linalg.norm(ref_embedding[:, None] - ref_embedding[None], axis=-1)
                    spread.extend(pairwise[np.triu_indices(len(ref_embedding), 1)].tolist())
        instances, matched, lost, gained = (int(v) for v in totals)
        report["agreement"][name] = {
            "instances_fp32": instances, "matched_iou_0.9": matched, "matched_share": matched / max(instances, 1),
            "lost": lost, "gained": gained, "embedding_drift_median": float(np.median(drift)),
            "embedding_drift_max": float(np.max(drift)), "embedding_distance_between_instances_median": float(np.median(spread)),
        }
        print(name, json.dumps(report["agreement"][name]), flush=True)
    report["timing_ms"] = forward_timings(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for key, value in report["timing_ms"].items():
        print(f"{key:<45} {value['median_ms']:8.1f} ms")


if __name__ == "__main__":
    main()
