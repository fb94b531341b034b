"""bag -> replay -> mots_node -> record -> metrics, across processes over real DDS (shared memory).

In replay mode the live path must produce exactly what ``mots-ros bag eval`` computes offline for
the same bag and parameters: same masks, same ids, same scores.
"""

import json

import pytest

from conftest import REPO
from ros_support import Process, replay_through_node, synthetic_drive_bag

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES = 10


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    return synthetic_drive_bag(tmp_path_factory.mktemp("drive"), FRAMES)


def test_live_replay_equals_offline_bag_eval(drive, tmp_path):
    params = REPO / "config" / "car.yaml"
    ros_args = ["--ros-args", "-p", "node.mode:=replay", "-p", f"inference.cache_dir:={tmp_path / 'cache'}"]
    node = Process(["run", "--params-file", str(params), "--namespace", "camera", *ros_args], tmp_path / "node.log")
    recorder = replay_through_node(node, drive / "bag", tmp_path / "live" / "0000.txt", frames=FRAMES, logs=tmp_path)
    assert f"recorded {FRAMES} messages" in recorder.output()

    offline = Process(["bag", "eval", "--bag", str(drive / "bag"), "--gt", str(drive / "data"), "--out",
                       str(tmp_path / "offline"), "--config", str(params), "--set", f"inference.cache_dir={tmp_path / 'cache'}"],
                      tmp_path / "offline.log")
    assert offline.wait(300) == 0, offline.output()
    live_txt = (tmp_path / "live" / "0000.txt").read_text()
    assert live_txt, "the node tracked nothing"
    assert live_txt == (tmp_path / "offline" / "0000.txt").read_text()

    live = Process(["eval", "--gt", str(drive / "data"), "--results", str(tmp_path / "live"), "--seqmap",
                    str(tmp_path / "offline" / "evaluated.seqmap")], tmp_path / "eval.log")
    assert live.wait(120) == 0, live.output()
    scores = json.loads((tmp_path / "live" / "metrics.json").read_text())["COMBINED"]["car"]
    assert scores == json.loads((tmp_path / "offline" / "metrics.json").read_text())["COMBINED"]["car"]
    assert scores["TP"] > 0
