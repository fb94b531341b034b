"""The full-width frame of the official PointTrack code against this package's, in one run (issue 13).

The official code is not on PyPI and its licence (CC BY-NC 4.0) keeps it out of this project, so
bring your own clone of github.com/detectRecog/PointTrack. From the repository root:

    python tools/official_frame.py --official ~/PointTrack --out official_frame.json

What is timed, with the same threads and the benchmark frame of ``mots-ros bench`` (1242×375,
10 cars, input 376×1248):

- official: ``BranchedERFNet([4, 1])`` forward, ``Cluster.cluster_mots_wo_points`` (n_sigma 2,
  threshold 0.94, min_pixel 160) on the frame's ideal network output, and ``TrackerOffsetEmb``
  (1,000 + 500 points) on 10 instances, in torch on the CPU (its ``.cuda()`` calls become no-ops).
  Its point sampling, association and RLE live in its dataset and test scripts and are not timed,
  which favours the official row by the few ms those stages take here;
- this package: the segmentation forward on torch, ONNX Runtime fp32, OpenVINO bf16 and OpenVINO
  int8, the embedding forward and the CPU stages inside ``MotsPipeline``, composed as the
  README's full-width frame table composes them.

Both official networks get this package's weights (random, seeded), so the run also checks that
the two give the same outputs. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

from mots_ros.benchmark import (FRAME_HEIGHT, FRAME_WIDTH, NUM_INSTANCES, _backend, _FixedOutputBackend, benchmark_frame,
                                machine_description, pipeline_stage_timings, time_call)
from mots_ros.config import preset
from mots_ros.embedding.embedder import Embedder
from mots_ros.embedding.network import PointTrackNet
from mots_ros.export import export_embedding, export_segmentation, max_relative_error
from mots_ros.images import decode_image
from mots_ros.pipeline import MotsPipeline
from mots_ros.segmentation.network import SpatialEmbeddingNet
from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter, to_network_input
from mots_ros.tracker import Tracker

PIPELINE_STAGES = ("clustering", "point_sampling", "association", "rle_encoding")  # timed inside MotsPipeline
OFFICIAL = "official code, torch fp32 (no point sampling, association or RLE)"


def import_official(folder: Path):
    """``(BranchedERFNet, TrackerOffsetEmb, Cluster)`` from an official checkout, runnable on the CPU."""
    if not (folder / "models" / "BranchedERFNet.py").is_file() or not (folder / "utils" / "utils.py").is_file():
        raise SystemExit(f"{folder} is not a checkout of detectRecog/PointTrack (models/BranchedERFNet.py, utils/utils.py)")
    # utils/utils.py imports plotting and table libraries that clustering never uses.
    for name in ("matplotlib", "matplotlib.pyplot", "pandas", "PIL", "PIL.Image"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.modules["PIL"].Image = sys.modules["PIL.Image"]  # type: ignore[attr-defined]
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]  # type: ignore[attr-defined]
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]  # every tensor stays on the CPU
    sys.path.insert(0, str(folder))
    from models.BranchedERFNet import BranchedERFNet, TrackerOffsetEmb  # type: ignore[import-not-found]

    # By path: its utils/ has no __init__.py, so any installed package named utils would win the import.
    spec = importlib.util.spec_from_file_location("official_utils", folder / "utils" / "utils.py")
    assert spec is not None and spec.loader is not None
    official_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(official_utils)
    return BranchedERFNet, TrackerOffsetEmb, official_utils.Cluster


def measure(official_folder: Path, threads: int, se_repeats: int, repeats: int) -> dict:
    BranchedERFNet, TrackerOffsetEmb, Cluster = import_official(official_folder)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    image, _, raw = benchmark_frame(np.random.default_rng(0))
    network_input = to_network_input(image, 376, 1248)
    rows: dict[str, dict] = {}
    checks: dict[str, float] = {}

    segmentation = SpatialEmbeddingNet(width=1.0).eval()
    embedding = PointTrackNet().eval()
    official_segmentation = BranchedERFNet(num_classes=[4, 1]).eval()
    official_segmentation.load_state_dict(segmentation.state_dict(), strict=True)
    official_embedding = TrackerOffsetEmb(num_points=1000, margin=0.2, border_ic=3, env_points=500, outputD=32,
                                          category=True).eval()
    official_embedding.load_state_dict(embedding.state_dict(), strict=True)
    points, boxes = torch.rand(1, NUM_INSTANCES, 1500, 8), torch.rand(1, NUM_INSTANCES, 4)
    image_tensor = torch.from_numpy(network_input)
    output = np.zeros((raw.shape[0], *network_input.shape[2:]), np.float32)
    output[:, : raw.shape[1], : raw.shape[2]] = raw
    prediction = torch.from_numpy(output)
    cluster = Cluster()

    def official_clustering():
        return cluster.cluster_mots_wo_points(prediction, n_sigma=2, threshold=0.94, min_pixel=160)

    with torch.no_grad():
        checks["segmentation_max_relative_difference"] = max_relative_error(segmentation(image_tensor).numpy(),
                                                                            official_segmentation(image_tensor).numpy())
        checks["embedding_max_relative_difference"] = max_relative_error(
            embedding(points[0], boxes[0]).numpy(), official_embedding(points, None, boxes, infer=True).numpy())
        checks["official_instances_found"] = int(official_clustering().max())
        rows["official_se_forward"] = time_call(lambda: official_segmentation(image_tensor), se_repeats)
        rows["official_clustering"] = time_call(official_clustering, repeats)
        rows["official_embedding_forward"] = time_call(lambda: official_embedding(points, None, boxes, infer=True), repeats)

    folder = Path(tempfile.mkdtemp(prefix="official_frame_"))
    rgb_bytes = image.tobytes()
    rows["decode_rgb8"] = time_call(lambda: decode_image(rgb_bytes, FRAME_HEIGHT, FRAME_WIDTH, "rgb8", FRAME_WIDTH * 3), repeats)
    for runtime in ("torch", "onnxruntime", "openvino_bf16", "openvino_int8"):
        backend = _backend(segmentation, runtime, threads, folder,
                           lambda m, f: export_segmentation(m, f / "se_1.onnx", height=376, width=1248))
        rows[f"se_forward_{runtime}"] = time_call(lambda b=backend: b.run(network_input), se_repeats)
    config = preset("car")
    for runtime in ("torch", "onnxruntime", "openvino_bf16"):
        embedding_backend = _backend(embedding, runtime, threads, folder, lambda m, f: export_embedding(m, f / "pt.onnx"))
        pipeline = MotsPipeline(SpatialEmbeddingSegmenter(_FixedOutputBackend(raw), config.segmentation),
                                Embedder(embedding_backend, config.embedding), Tracker(config.tracker))
        timings = pipeline_stage_timings(pipeline, [image], repeats)
        rows[f"embedding_forward_{runtime}"] = timings["embedding_network"]
        for stage in PIPELINE_STAGES:
            rows[f"{stage}_{runtime}"] = timings[stage]

    ms = {name: row["median_ms"] for name, row in rows.items()}
    cpu = ms["decode_rgb8"] + sum(ms[f"{stage}_onnxruntime"] for stage in PIPELINE_STAGES)
    frames = {
        OFFICIAL: ms["official_se_forward"] + ms["official_clustering"] + ms["official_embedding_forward"],
        "this package, torch fp32": ms["se_forward_torch"] + ms["embedding_forward_torch"] + cpu,
        "this package, ONNX Runtime fp32": ms["se_forward_onnxruntime"] + ms["embedding_forward_onnxruntime"] + cpu,
        "this package, OpenVINO bf16 (both networks)": ms["se_forward_openvino_bf16"] + ms["embedding_forward_openvino_bf16"] + cpu,
        "this package, OpenVINO int8 SE + bf16 embedding": ms["se_forward_openvino_int8"] + ms["embedding_forward_openvino_bf16"] + cpu,
    }
    return {"machine": machine_description(), "threads": threads, "checks": checks, "rows": rows, "frames_ms": frames,
            "speed_up_vs_official": {name: frames[OFFICIAL] / value for name, value in frames.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a clone of github.com/detectRecog/PointTrack")
    parser.add_argument("--out", type=Path, default=Path("official_frame.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--se-repeats", type=int, default=7, help="timed calls of each segmentation forward")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls of every other stage")
    args = parser.parse_args()
    report = measure(args.official.expanduser(), args.threads, args.se_repeats, args.repeats)
    print(f"{report['machine']}, {args.threads} threads; same weights, official vs this package: segmentation "
          f"{report['checks']['segmentation_max_relative_difference']:.1e}, embedding "
          f"{report['checks']['embedding_max_relative_difference']:.1e}; official clustering found "
          f"{report['checks']['official_instances_found']} of {NUM_INSTANCES} instances")
    for name, row in report["rows"].items():
        print(f"{name:38s} {row['median_ms']:8.1f} ms")
    print(f"\n| full-width frame, {args.threads} threads | ms | speed-up vs official |\n|---|---|---|")
    for name, value in report["frames_ms"].items():
        print(f"| {name} | {value:.1f} | {report['speed_up_vs_official'][name]:.2f}× |")
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
