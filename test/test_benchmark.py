"""`mots-ros bench` runs every stage the issue lists and writes a usable report (no timing asserted)."""

import json

import pytest

from mots_ros.benchmark import run_benchmark
from mots_ros.nodes.commands import message_serializer

pytestmark = pytest.mark.slow

STAGES = [
    "decode_rgb8", "decode_bgr8", "clustering", "point_sampling", "rle_encoding", "message_serialization",
    *(f"se_forward_w{w}_{runtime}" for w in ("1", "0.5", "0.25") for runtime in ("torch", "onnxruntime", "opencv")),
    "embedding_forward_torch", "embedding_forward_onnxruntime", "embedding_forward_opencv",
]


def test_quick_benchmark_reports_every_stage(tmp_path):
    out = tmp_path / "bench.json"
    table = run_benchmark(threads=[1], repeats=3, out=out, quick=True, serialize=message_serializer())
    report = json.loads(out.read_text())
    stages = report["threads"]["1"]
    for stage in STAGES:
        assert stages[stage]["median_ms"] > 0 and stages[stage]["p95_ms"] >= stages[stage]["median_ms"], stage
        assert stage in table
    # association is timed inside the pipeline, against the 10 tracks of the previous frame
    assert stages["association"]["median_ms"] > 0 and stages["association"]["runs"] == 3 and "association" in table
    assert stages["_instances_found"]["count"] == 10  # clustering recovered the 10 benchmark instances
    cpu = stages["cpu_stages_total"]["median_ms"]
    assert stages["cpu_share_of_se_w0.5_torch"]["ratio"] == pytest.approx(cpu / stages["se_forward_w0.5_torch"]["median_ms"])
    assert report["frame"] == {"height": 375, "width": 1242, "instances": 10}
    for size in ("1242x375", "1920x1080"):
        assert report["optical_flow"][f"dis_fast_{size}"]["median_ms"] > 0 and f"dis_fast_{size}" in table
