"""`mots-ros bench` runs every stage the issue lists and writes a usable report (no timing asserted)."""

import json
import subprocess
import sys

import pytest

import torch

from conftest import REPO
from mots_ros.benchmark import network_gflop, run_benchmark
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
    # int8 forwards (segmentation only), each network's rate against this CPU's measured matrix-product peak
    assert stages["se_forward_w1_onnxruntime_int8"]["median_ms"] > 0 and "se_forward_w1_onnxruntime_int8" in table
    assert "embedding_forward_onnxruntime_int8" not in stages
    assert set(stages["_matmul_peak_gflops"]) >= {"fp32", "bf16"}
    full = stages["_efficiency_se_forward_w1_onnxruntime"]
    assert full["peak_precision"] == "fp32" and full["gflop"] > 5 * stages["_efficiency_se_forward_w0.25_onnxruntime"]["gflop"]
    assert stages["_efficiency_se_forward_w1_onnxruntime_int8"]["peak_precision"] == "int8"
    assert 0 < full["share_of_peak"] and "of the fp32 peak" in table
    for name in ("clustering_numpy", "clustering_torch_cpu", "point_sampling_torch_cpu", "rle_runs_torch_cpu"):
        assert report["postprocessing"][name]["median_ms"] > 0 and name in table
    # the whole frame through the pipeline on torch, post-processing on the host and on the device
    for where in ("host", "device"):
        row = report["whole_frame"][f"frame_torch_cpu_postprocessing_{where}"]
        assert row["instances"] == 10 and row["median_ms"] >= row["stages_median_ms"]["segmentation_network"] > 0
        assert f"frame_torch_cpu_postprocessing_{where}" in table
    # cameras in one process: batched, one frame at a time, and one thread per camera (as nodes)
    for mode in ("batched", "one_at_a_time", "threads_shared", "threads_separate"):
        row = report["cameras"][f"cameras_2_{mode}"]
        assert row["cameras"] == 2 and row["frames_per_s"] > 0 and f"cameras_2_{mode}" in table


def test_flop_count_of_known_layers():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 6))
    expected = 2 * (4 * 3 * 9 * 8 * 8) + 2 * (4 * 8 * 8 * 6)
    assert network_gflop(model, torch.zeros(1, 3, 8, 8).numpy()) * 1e9 == pytest.approx(expected)
    transposed = torch.nn.ConvTranspose2d(2, 3, 2, stride=2)  # each of 5x5 input pixels: 2x3 channels x 4 taps
    assert network_gflop(transposed, torch.zeros(1, 2, 5, 5).numpy()) * 1e9 == pytest.approx(2 * 25 * 2 * 3 * 4)


def test_a_slow_matmul_probe_is_called_twice_and_not_tried_larger(monkeypatch):
    """An emulated precision (e.g. bf16 without AVX-512-BF16) must not cost repeated large products."""
    import mots_ros.benchmark as benchmark

    calls = []
    real_mm = torch.Tensor.__matmul__
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: calls.append(a.shape[0]) or real_mm(a, b))
    monkeypatch.setattr(benchmark, "SLOW_PROBE_CALL_S", 0.0)  # every probe counts as slow
    monkeypatch.setattr(benchmark, "time_call", lambda *a, **k: pytest.fail("a slow probe was repeated"))
    peaks = benchmark.matmul_peak_gflops(1, sizes=(128, 64))
    assert peaks["fp32"] > 0 and peaks["bf16"] > 0
    assert calls == [64, 64, 64, 64]  # fp32 and bf16 twice each at the smallest size, never at 128


def test_the_official_frame_tool_names_a_folder_that_is_not_the_official_code(tmp_path):
    # The official code cannot be shipped or fetched here; what can be checked is the refusal.
    done = subprocess.run([sys.executable, str(REPO / "tools" / "official_frame.py"), "--official", str(tmp_path),
                           "--out", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"{tmp_path} is not a checkout of detectRecog/PointTrack" in done.stderr
    assert not (tmp_path / "out.json").exists()
