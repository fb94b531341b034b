"""The main job, shortened: a synthetic drive through the real node, with every promised output."""

import json

import pytest

from mots_ros.demo import run_demo

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_writes_video_metrics_and_plot(tmp_path, capsys):
    outputs = run_demo(tmp_path / "demo", frames=6)
    assert "[demo] 5/6 frames through the node" in capsys.readouterr().out  # progress while the bag replays
    assert outputs["video"].stat().st_size > 10_000
    assert outputs["plot"].stat().st_size > 1_000
    metrics = json.loads(outputs["metrics"].read_text())
    assert metrics["COMBINED"]["car"]["TP"] > 0  # the shipped models found and tracked cars
    assert (tmp_path / "demo" / "results" / "0000.txt").read_text()
