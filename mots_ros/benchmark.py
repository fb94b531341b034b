"""Per-stage CPU latency on a KITTI-sized frame (375×1242) with 10 instances.

Networks run with random weights (weights do not change their cost); clustering runs on the
ideal output for 10 instances, so it does the same work a trained model's output needs. Each
stage is warmed up, then timed ``repeats`` times; the report gives median and p95 in ms, per
thread count, and is written as JSON. Timings are measurements of this machine at that moment,
never assertions.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

FRAME_HEIGHT, FRAME_WIDTH, NUM_INSTANCES = 375, 1242, 10
SE_WIDTHS = (1.0, 0.5, 0.25)


def time_call(function: Callable[[], object], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median and p95 wall time of ``function()`` in milliseconds."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": float(np.median(samples)), "p95_ms": float(np.percentile(samples, 95)), "runs": repeats}


def machine_description() -> dict[str, str | int]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count() or 0, "python": platform.python_version(), "system": platform.platform()}


def benchmark_frame(rng: np.random.Generator):
    """A textured frame, its 10-instance map and the ideal network output for it."""
    from mots_ros.synthetic.network_outputs import ideal_raw_output, random_instance_map

    labels = random_instance_map(FRAME_HEIGHT, FRAME_WIDTH, NUM_INSTANCES, rng)
    image = rng.integers(0, 256, (FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    raw = ideal_raw_output(labels, rng, offset_noise=0.0005)
    return image, labels, raw


def measure_stages(threads: int, repeats: int) -> dict[str, dict[str, float]]:
    """Times every stage with ``threads`` torch threads; returns ``{stage: timing}``."""
    import torch

    from mots_ros.config import SegmentationConfig, TrackerConfig
    from mots_ros.datatypes import Instance
    from mots_ros.embedding.network import PointTrackNet
    from mots_ros.embedding.points import sample_points
    from mots_ros.masks import encode_label_map
    from mots_ros.segmentation.clustering import cluster_instances
    from mots_ros.segmentation.network import SpatialEmbeddingNet
    from mots_ros.segmentation.segmenter import to_network_input
    from mots_ros.tracker import Tracker

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    image, labels, raw = benchmark_frame(rng)
    stages: dict[str, dict[str, float]] = {}

    network_input = torch.from_numpy(to_network_input(image, 376, 1248))
    for width in SE_WIDTHS:
        model = SpatialEmbeddingNet(width=width).eval()
        with torch.inference_mode():
            stages[f"se_forward_w{width:g}"] = time_call(lambda: model(network_input), max(3, repeats // 4))

    config = SegmentationConfig()
    cluster_map = cluster_instances(raw, config.seed_threshold, config.min_pixel, config.n_sigma)
    stages["clustering"] = time_call(lambda: cluster_instances(raw), repeats)
    found = int(len(np.unique(cluster_map)) - 1)

    sample_rng = np.random.default_rng(0)
    bgr = image[..., ::-1]
    clouds = sample_points(cluster_map, bgr, sample_rng)
    stages["point_sampling"] = time_call(lambda: sample_points(cluster_map, bgr, sample_rng), repeats)

    embedding_net = PointTrackNet().eval()
    points, boxes = torch.from_numpy(clouds.points), torch.from_numpy(clouds.boxes)
    with torch.inference_mode():
        stages["embedding_forward"] = time_call(lambda: embedding_net(points, boxes), max(3, repeats // 2))
        embeddings = embedding_net(points, boxes).numpy()

    ids = clouds.instance_ids.tolist()
    stages["rle_encoding"] = time_call(lambda: encode_label_map(cluster_map, ids), repeats)
    rles = encode_label_map(cluster_map, ids)
    instances = [
        Instance(rle=rles[i], bbox=tuple(int(v) for v in clouds.bboxes[i]), class_id=1, score=1.0, embedding=embeddings[i])
        for i in range(len(ids))
    ]

    def associate():
        tracker = Tracker(TrackerConfig())
        tracker.update(instances, stamp_ns=0, frame_index=0)
        tracker.update(instances, stamp_ns=100_000_000, frame_index=1)

    # Two updates: the first only creates tracks; the second does the real association.
    first_only = time_call(lambda: Tracker(TrackerConfig()).update(instances, stamp_ns=0, frame_index=0), repeats)
    both = time_call(associate, repeats)
    stages["association"] = {
        "median_ms": max(0.0, both["median_ms"] - first_only["median_ms"]),
        "p95_ms": max(0.0, both["p95_ms"] - first_only["p95_ms"]),
        "runs": repeats,
    }
    post_network = ("clustering", "point_sampling", "association", "rle_encoding")
    stages["cpu_stages_after_networks"] = {
        "median_ms": sum(stages[s]["median_ms"] for s in post_network),
        "p95_ms": sum(stages[s]["p95_ms"] for s in post_network),
        "runs": repeats,
    }
    stages["_instances_found"] = {"count": found}
    return stages


def format_table(report: dict) -> str:
    thread_keys = list(report["threads"].keys())
    header = f"{'stage':<28}" + "".join(f"{f'{t} thread(s) median / p95 ms':>32}" for t in thread_keys)
    lines = [header, "-" * len(header)]
    first = report["threads"][thread_keys[0]]
    for stage in first:
        if stage.startswith("_"):
            continue
        cells = "".join(
            f"{report['threads'][t][stage]['median_ms']:>21.1f} / {report['threads'][t][stage]['p95_ms']:>8.1f}"
            for t in thread_keys
        )
        lines.append(f"{stage:<28}{cells}")
    lines.append(f"machine: {report['machine']['cpu']} ({report['machine']['logical_cpus']} logical CPUs)")
    return "\n".join(lines)


def run_benchmark(threads: list[int], repeats: int, out: Path | None, quick: bool = False) -> str:
    """Runs every stage for each thread count, writes JSON to ``out`` and returns the table."""
    if quick:
        repeats = 3
    report = {
        "frame": {"height": FRAME_HEIGHT, "width": FRAME_WIDTH, "instances": NUM_INSTANCES},
        "machine": machine_description(),
        "threads": {str(t): measure_stages(t, repeats) for t in threads},
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    table = format_table(report)
    return table + (f"\nJSON: {out}" if out is not None else "")
