"""A cue, a segmenter and a backend from another package, registered only through entry points,
are used by ``mots-ros oracle``, ``track``, ``bag eval`` and the node with no further code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from ros_support import Process, dds_environment, replay_through_node, synthetic_drive_bag

pytestmark = pytest.mark.slow

FRAMES = 6

PLUGIN = '''
"""A third-party package's additions to mots_ros."""
import os

import cv2
import numpy as np

from mots_ros.cues import Cue
from mots_ros.segmenters import Segmentation


class CountingCue(Cue):
    """Adds nothing to the similarity; logs each call and counts matches per track."""

    def __init__(self, weight, log_path):
        super().__init__(weight)
        self.log_path = log_path

    def similarity(self, detections, tracks, context):
        with open(self.log_path, "a") as log:
            log.write(f"similarity pid={os.getpid()} image={context.image_rgb is not None} "
                      f"previous={context.previous_image_rgb is not None}\\n")
        return np.zeros((len(detections), len(tracks)))

    def track_born(self, track, detection, context):
        track.cue_state[self.name] = 0

    def track_matched(self, track, detection, context):
        track.cue_state[self.name] += 1
        with open(self.log_path, "a") as log:
            log.write(f"matched {track.track_id} {track.cue_state[self.name]}\\n")


class BrightBlobSegmenter:
    """Connected components of bright pixels, every one a car."""

    name = "bright_blobs"
    stage_names = ("thresholding",)

    @classmethod
    def from_config(cls, config):
        return cls()

    def segment(self, image_rgb):
        count, labels = cv2.connectedComponents((image_rgb.max(-1) > 200).astype(np.uint8))
        return Segmentation.from_label_map(labels.astype(np.int32), {i: 1 for i in range(1, count)},
                                           latency_ms={"thresholding": 0.0})


class ZeroBackend:
    """Every network answers zeros: embeddings of 32 zeros."""

    auto_priority = {"cpu": 99}
    fixed_input_size = None
    name = "zeros-cpu"

    @classmethod
    def available_devices(cls):
        return ["cpu"]

    @classmethod
    def for_network(cls, network, device, config, **options):
        return cls()

    def run(self, *inputs):
        return np.zeros((inputs[0].shape[0], 32), np.float32)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "mots_test_plugins.py").write_text(PLUGIN)
    info = site / "mots_test_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mots-test-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [mots_ros.cues]
        counting = mots_test_plugins:CountingCue
        [mots_ros.segmenters]
        bright_blobs = mots_test_plugins:BrightBlobSegmenter
        [mots_ros.backends]
        zeros = mots_test_plugins:ZeroBackend
        """))
    return site


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    return synthetic_drive_bag(tmp_path_factory.mktemp("drive"), FRAMES)


def environment(plugin_path):
    env = dds_environment()
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_path), env.get("PYTHONPATH", "")])
    return env


def mots_ros(args, plugin_path, timeout_s=300):
    run = subprocess.run([sys.executable, "-m", "mots_ros.cli", *args], cwd=REPO, env=environment(plugin_path),
                         capture_output=True, text=True, timeout=timeout_s)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def counting(log):
    return ["--set", "tracker.cues.counting.weight=1", "--set", f"tracker.cues.counting.log_path={log}"]


def test_the_registries_list_the_plugins(plugin_path):
    code = ("from mots_ros.cues import CUES; from mots_ros.segmenters import SEGMENTERS; "
            "from mots_ros.backends import BACKENDS, available_backends; "
            "print(CUES.names(), SEGMENTERS.names(), BACKENDS.names(), available_backends('cpu'))")
    run = subprocess.run([sys.executable, "-c", code], env=environment(plugin_path), capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "'counting'" in run.stdout and "'bright_blobs'" in run.stdout and "'zeros-cpu'" in run.stdout


def test_oracle_track_and_bag_eval_use_plugins_named_in_the_config(plugin_path, drive, tmp_path):
    data = drive / "data"
    mots_ros(["oracle", "--data", str(data), "--out", str(tmp_path / "oracle"), "--preset", "car", "--backend", "zeros",
              *counting(tmp_path / "oracle.log")], plugin_path)
    lines = (tmp_path / "oracle.log").read_text().splitlines()
    assert len([x for x in lines if x.startswith("similarity")]) == FRAMES - 1  # every frame after the first
    assert any(x.startswith("matched") for x in lines)  # per-track state survived across frames

    out = mots_ros(["track", "--images", str(data / "images" / "0000"), "--out", str(tmp_path / "track.txt"),
                    "--set", "segmentation.kind=bright_blobs", "--set", "tracker.cues.embedding.weight=0",
                    *counting(tmp_path / "track.log")], plugin_path)
    assert "wrote" in out and (tmp_path / "track.txt").read_text()
    assert "similarity" in (tmp_path / "track.log").read_text()

    mots_ros(["bag", "eval", "--bag", str(drive / "bag"), "--gt", str(data), "--out", str(tmp_path / "bag_eval"),
              "--set", f"inference.cache_dir={tmp_path / 'cache'}", *counting(tmp_path / "bag.log")], plugin_path)
    assert "image=True previous=True" in (tmp_path / "bag.log").read_text()


@pytest.mark.ros
def test_the_node_uses_a_plugin_cue_from_its_params_file(plugin_path, drive, tmp_path):
    params = tmp_path / "params.yaml"
    log = tmp_path / "node_cue.log"
    params.write_text((REPO / "config" / "car.yaml").read_text().replace(
        "        flow_iou: {weight: 0.0}", f"        flow_iou: {{weight: 0.0}}\n        counting: {{weight: 1.0, log_path: {log}}}"))
    env = environment(plugin_path)
    node = Process(["run", "--params-file", str(params), "--namespace", "camera", "--ros-args", "-p", "node.mode:=replay",
                    "-p", f"inference.cache_dir:={tmp_path / 'cache'}"], tmp_path / "node.log", env=env)
    replay_through_node(node, drive / "bag", tmp_path / "live" / "0000.txt", frames=FRAMES, logs=tmp_path, env=env)
    node_pid = str(node.popen.pid)
    assert f"similarity pid={node_pid} image=True" in log.read_text(), node.output()
    offline = tmp_path / "offline"
    mots_ros(["bag", "eval", "--bag", str(drive / "bag"), "--gt", str(drive / "data"), "--out", str(offline),
              "--config", str(params), "--set", f"inference.cache_dir={tmp_path / 'cache'}"], plugin_path)
    assert (tmp_path / "live" / "0000.txt").read_text() == (offline / "0000.txt").read_text()
