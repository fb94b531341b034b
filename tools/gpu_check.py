"""Everything a lent GPU should check, in one run: CUDA parity, post-processing on the device, whole-frame time.

No GPU was lent while this was written, so it has only run on CPU torch (where the CUDA rows are
simply absent). On a GPU machine, from the repository root with the package installed:

    python tools/gpu_check.py --out $OUT/gpu_check.json

1. Parity: the shipped segmentation and embedding networks on CUDA against the CPU, on a
   synthetic drive (max relative error of the raw outputs and embeddings).
2. Post-processing on the device: the same drive through ``MotsPipeline`` on CUDA with
   ``inference.postprocessing`` host and device; the share of frames whose tracks are identical
   (the networks' outputs are the same for both, so any difference is the post-processing's).
3. The whole frame (``mots_ros.benchmark.whole_frame_timings``), full width, on every device.

``test/test_device_postprocessing.py`` runs it on the CPU, small, so that it keeps working.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mots_ros.backends import create_backend
from mots_ros.benchmark import machine_description, whole_frame_timings
from mots_ros.config import preset
from mots_ros.datatypes import Frame
from mots_ros.export import max_relative_error
from mots_ros.pipeline import MotsPipeline
from mots_ros.segmenters.spatial_embedding import to_network_input
from mots_ros.synthetic.driving import DrivingConfig, DrivingScene


def parity(images: list[np.ndarray], devices: list[str]) -> dict[str, float]:
    """Max relative error of each network's output on each device against torch on the CPU."""
    config = preset("car").replace(**{"inference.backend": "torch"})
    reference = {n: create_backend(n, config.replace(**{"inference.device": "cpu"})) for n in ("segmentation", "embedding")}
    height, width = -(-images[0].shape[0] // 8) * 8, -(-images[0].shape[1] // 8) * 8
    inputs = [to_network_input(image, height, width) for image in images[:4]]
    rng = np.random.default_rng(0)
    points, boxes = rng.random((10, 1500, 8), dtype=np.float32), rng.random((10, 4), dtype=np.float32)
    errors = {}
    for device in devices:
        backends = {n: create_backend(n, config.replace(**{"inference.device": device})) for n in reference}
        errors[f"segmentation_{device}"] = max(
            max_relative_error(reference["segmentation"].run(x), backends["segmentation"].run(x)) for x in inputs)
        errors[f"embedding_{device}"] = max_relative_error(reference["embedding"].run(points, boxes),
                                                           backends["embedding"].run(points, boxes))
    return errors


def same_tracks(images: list[np.ndarray], device: str) -> dict[str, float]:
    """Frames whose tracks are identical with post-processing on the host and on ``device``."""
    config = preset("car").replace(**{"inference.backend": "torch", "inference.device": device})
    pipelines = {where: MotsPipeline.from_config(config.replace(**{"inference.postprocessing": where}))
                 for where in ("host", "device")}
    identical, instances, seconds = 0, 0, {"host": 0.0, "device": 0.0}
    for index, image in enumerate(images):
        frame = Frame(image, stamp_ns=index * 100_000_000, frame_index=index)
        tracks = {}
        for where, pipeline in pipelines.items():
            started = time.perf_counter()
            result = pipeline.process(frame)
            seconds[where] += time.perf_counter() - started
            tracks[where] = [(t.track_id, t.rle["counts"], t.bbox) for t in result.instances]
        identical += tracks["host"] == tracks["device"]
        instances += len(tracks["host"])
    return {"frames": len(images), "identical_frames": identical, "instances": instances,
            "host_ms_per_frame": 1e3 * seconds["host"] / len(images), "device_ms_per_frame": 1e3 * seconds["device"] / len(images)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--frames", type=int, default=20, help="frames of the synthetic drive")
    parser.add_argument("--repeats", type=int, default=10, help="timed frames per whole-frame row")
    parser.add_argument("--width", type=float, default=1.0, help="segmentation network width of the whole-frame rows")
    args = parser.parse_args()
    devices = ["cuda"] if torch.cuda.is_available() else []
    images = [f.image_rgb for f in DrivingScene(DrivingConfig(height=375, width=1242, frames=args.frames, seed=920)).frames()]
    report = {"machine": machine_description(),
              "cuda_device": torch.cuda.get_device_name(0) if devices else None,
              "parity_max_relative_error": parity(images, devices),
              "postprocessing_on_device": {device: same_tracks(images, device) for device in ["cpu", *devices]},
              "whole_frame": whole_frame_timings(args.repeats, threads=0, width=args.width)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
