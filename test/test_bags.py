"""rosbag2 files through rosbags: writing image folders, reading frames back, replaying onto DDS."""

import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from mots_ros.bags import FLOW_TOPIC, IMAGE_TOPIC, bag_metadata, frame_stamp_ns, images_to_bag, read_bag_frames, stamp_frame
from mots_ros.datasets import read_image_rgb
from mots_ros.errors import FormatError
from mots_ros.synthetic.driving import DrivingConfig, write_sequence
from ros_support import Process


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_sequence(root, "0003", DrivingConfig(height=96, width=320, frames=5, seed=4), write_flow=True)
    return root


def test_stamps_encode_frame_numbers():
    for frame in (0, 1, 17, 400):
        assert stamp_frame(frame_stamp_ns(frame, 14.0), 14.0) == frame


@pytest.mark.parametrize("encoding, compressed", [("rgb8", False), ("bgr8", False), ("rgb8", True)])
def test_image_folder_round_trip_with_flow(sequence, tmp_path, encoding, compressed):
    bag = tmp_path / "bag"
    summary = images_to_bag(sequence / "images" / "0003", bag, fps=10, flow_dir=sequence / "flow" / "0003",
                            encoding=encoding, compressed=compressed)
    assert (summary.frames, summary.flows) == (5, 4)  # frame 0 has no previous frame
    assert bag_metadata(bag)["mots_ros.sequence"] == "0003" and float(bag_metadata(bag)["mots_ros.fps"]) == 10.0
    frames = list(read_bag_frames(bag))
    assert [stamp_frame(f.stamp_ns, 10) for f in frames] == [0, 1, 2, 3, 4]
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.image_rgb, read_image_rgb(sequence / "images" / "0003" / f"{index:06d}.png"))
        if index:
            np.testing.assert_array_equal(frame.flow, np.load(sequence / "flow" / "0003" / f"{index:06d}.npy"))
        else:
            assert frame.flow is None


def test_existing_bag_folder_is_not_overwritten(sequence, tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(FormatError, match="already exists"):
        images_to_bag(sequence / "images" / "0003", tmp_path / "bag")


@pytest.mark.ros
def test_replay_publishes_the_recorded_messages_unchanged(sequence, tmp_path):
    bag = tmp_path / "bag"
    images_to_bag(sequence / "images" / "0003", bag, fps=10, flow_dir=sequence / "flow" / "0003")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("replay_probe", context=context)
    received = {IMAGE_TOPIC: [], FLOW_TOPIC: [], "/camera/camera_info": []}
    qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, depth=50)
    for topic, kind in ((IMAGE_TOPIC, Image), (FLOW_TOPIC, Image), ("/camera/camera_info", CameraInfo)):
        node.create_subscription(kind, topic, lambda m, t=topic: received[t].append(m), qos)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    player = Process(["bag", "replay", str(bag), "--rate", "5"], tmp_path / "replay.log")
    try:
        assert player.wait(60) == 0, player.output()
        deadline = time.monotonic() + 10
        while len(received[IMAGE_TOPIC]) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        player.stop()
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert [len(v) for v in received.values()] == [5, 4, 5]
    first = received[IMAGE_TOPIC][0]
    np.testing.assert_array_equal(np.frombuffer(first.data, np.uint8).reshape(96, 320, 3),
                                  read_image_rgb(sequence / "images" / "0003" / "000000.png"))
    assert stamp_frame(first.header.stamp.sec * 10**9 + first.header.stamp.nanosec, 10) == 0


# ---------------------------------------------------------------- damaged bags
@pytest.fixture
def long_bag(sequence, tmp_path):
    images_to_bag(sequence / "images" / "0003", tmp_path / "bag", fps=10)
    return tmp_path / "bag"


def test_a_bag_cut_short_is_read_up_to_the_damage(long_bag, caplog):
    mcap = next(long_bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) * 2 // 3])  # the recorder died: no summary, no footer
    frames = list(read_bag_frames(long_bag))
    assert 0 < len(frames) < 5 and all(f.image_rgb is not None for f in frames)
    assert "is damaged (File end magic is invalid" in caplog.text and "salvaged" in caplog.text


def test_a_bag_without_metadata_is_salvaged_whole(long_bag, caplog):
    (long_bag / "metadata.yaml").unlink()
    assert bag_metadata(long_bag) == {}
    assert [stamp_frame(f.stamp_ns, 10) for f in read_bag_frames(long_bag)] == [0, 1, 2, 3, 4]
    assert "salvaged 5 messages" in caplog.text  # the 5 images (the camera infos were not asked for)


def test_bags_that_cannot_be_read_name_the_file(long_bag, tmp_path):
    next(long_bag.glob("*.mcap")).write_bytes(b"not an mcap file at all")
    with pytest.raises(FormatError, match="bag.mcap: not an MCAP file"):
        list(read_bag_frames(long_bag))
    with pytest.raises(FormatError, match="no such bag"):
        list(read_bag_frames(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="empty: not a rosbag2 folder"):
        bag_metadata(tmp_path / "empty")


def test_bag_eval_of_a_corrupt_bag_is_one_line_and_status_2(long_bag, sequence, tmp_path, capsys):
    from mots_ros.cli import main

    next(long_bag.glob("*.mcap")).write_bytes(b"garbage")
    code = main(["bag", "eval", "--bag", str(long_bag), "--gt", str(sequence), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and "bag.mcap: not an MCAP file" in error and "Traceback" not in error


@pytest.mark.ros
def test_replaying_a_bag_without_camera_images_says_so(long_bag, tmp_path):
    player = Process(["bag", "replay", str(long_bag), "--fast", "--topics", "/camera/camera_info"], tmp_path / "replay.log")
    assert player.wait(60) == 2
    assert "no camera image (sensor_msgs/Image or CompressedImage) among ['/camera/camera_info']" in player.output()
