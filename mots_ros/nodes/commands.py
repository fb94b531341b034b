"""The rclpy side of ``mots-ros run``, ``mots-ros bag replay`` and ``mots-ros record``."""

from __future__ import annotations

import threading
from pathlib import Path

import time

import rclpy
from rclpy.executors import SingleThreadedExecutor

from mots_ros.multi_camera import CameraRounds
from mots_ros.nodes.bag_player import replay, spin_quietly
from mots_ros.nodes.mots_node import MotsNode, spin_nodes
from mots_ros.nodes.track_recorder import TrackRecorder


def _init(ros_args: list[str], *extra: str) -> None:
    args = ["mots-ros", "--ros-args", *extra, *ros_args] if (ros_args or extra) else None
    rclpy.init(args=args)


def run_nodes(params_file: Path, namespaces: list[str] | None, name: str, ros_args: list[str],
              share_networks: bool = True) -> None:
    """One MotsNode per namespace in this process, until Ctrl-C.

    With several namespaces and ``share_networks``, the nodes share each network (where their
    settings match) and frames that arrive together run as one batch (``node.batch_window_s``).
    """
    _init(ros_args, "--params-file", str(params_file))
    namespaces = namespaces or [""]
    cameras = CameraRounds() if share_networks and len(namespaces) > 1 else None
    spin_nodes([MotsNode(name, cameras=cameras, namespace=namespace) for namespace in namespaces])


def replay_bag(bag: Path, ros_args: list[str], **options) -> int:
    _init(ros_args)
    try:
        return replay(bag, **options)
    finally:
        rclpy.try_shutdown()


def record_tracks(topic: str, out: Path, *, fps: float, frames: int | None, idle_timeout_s: float, timeout_s: float,
                  ros_args: list[str]) -> int:
    _init(ros_args)
    recorder = TrackRecorder(topic, fps=fps)
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    spinner = threading.Thread(target=spin_quietly, args=(executor,), daemon=True)
    spinner.start()
    # Say when the tracks publisher is matched, so a caller can start playing only then.
    deadline = time.monotonic() + min(timeout_s, 30.0)
    while recorder.count_publishers(topic) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"ready: recording {topic} ({recorder.count_publishers(topic)} publisher(s))", flush=True)
    try:
        recorder.wait(frames=frames, idle_timeout_s=idle_timeout_s, timeout_s=timeout_s)
    except KeyboardInterrupt:
        pass
    finally:
        count = recorder.save(out)
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        recorder.destroy_node()
        rclpy.try_shutdown()
    return count


def message_serializer():
    """A function serializing a FrameResult as the node publishes it (TrackedInstanceArray, CDR)."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from mots_ros.ros_conversions import result_to_message

    return lambda result: serialize_message(result_to_message(result, Header(frame_id="camera")))
