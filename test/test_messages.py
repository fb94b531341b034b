"""The messages built by pip: fields, constants, serialization, type hash and loading without env vars."""

import subprocess
import sys

import numpy as np
import pytest
import rclpy
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

from mots_ros.bags import typestore
from mots_ros.datatypes import FrameResult, Instance, TrackedInstance as Tracked, TrackState
from mots_ros.masks import encode_rle
from mots_ros.msg import TrackedInstance, TrackedInstanceArray
from mots_ros.ros_conversions import message_to_records, result_to_message

pytestmark = pytest.mark.ros


def _result():
    mask = np.zeros((30, 50), bool)
    mask[5:20, 10:40] = True
    instance = Instance(rle=encode_rle(mask), bbox=(10, 5, 39, 19), class_id=2, score=0.97,
                        embedding=np.arange(32, dtype=np.float32))
    return FrameResult(stamp_ns=1_500_000_000, frame_index=None, image_height=30, image_width=50, tracker_epoch=3,
                       instances=(Tracked(7, TrackState.CONFIRMED, instance),))


def test_fields_and_constants():
    assert TrackedInstance.STATE_TENTATIVE == 0 and TrackedInstance.STATE_CONFIRMED == 1
    assert TrackedInstance.CLASS_CAR == 1 and TrackedInstance.CLASS_PEDESTRIAN == 2
    assert set(TrackedInstanceArray.get_fields_and_field_types()) == {
        "header", "image_height", "image_width", "tracker_epoch", "instances"}


def test_result_message_round_trip():
    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 1, 500_000_000
    msg = result_to_message(_result(), header)
    again = deserialize_message(serialize_message(msg), TrackedInstanceArray)
    item = again.instances[0]
    assert again.header.frame_id == "camera_optical_frame" and again.tracker_epoch == 3
    assert (item.track_id, item.state, item.class_id, item.class_name) == (7, 1, 2, "pedestrian")
    assert (item.bbox.x_offset, item.bbox.y_offset, item.bbox.width, item.bbox.height) == (10, 5, 30, 15)
    assert item.score == pytest.approx(0.97) and list(item.embedding) == list(range(32))
    [record] = message_to_records(again, frame=12)
    assert (record.frame, record.track_id, record.class_id) == (12, 7, 2)
    assert record.rle["counts"] == _result().instances[0].rle["counts"]


def test_type_hash_equals_the_one_rosbags_computes():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("hash_probe", context=context)
        node.create_publisher(TrackedInstanceArray, "hash_probe_tracks", 1)
        [info] = node.get_publishers_info_by_topic("/hash_probe_tracks")
        assert str(info.topic_type_hash) == typestore().hash_rihs01("mots_ros/msg/TrackedInstanceArray")
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_messages_load_without_environment_variables():
    code = ("from rclpy.serialization import serialize_message; from mots_ros.msg import TrackedInstanceArray; "
            "print(len(serialize_message(TrackedInstanceArray())))")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # no LD_LIBRARY_PATH, AMENT_PREFIX_PATH, ...
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.strip()) > 0
