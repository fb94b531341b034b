"""Publishes a rosbag2 onto live topics (``mots-ros bag replay``), without rosbag2_py.

Messages are read with ``rosbags`` and published as the stored CDR bytes, unchanged, through
rclpy publishers of the recorded types. Pacing follows the bag's timestamps scaled by ``rate``
(0 = as fast as possible). With ``wait_for_tracks``, every image waits for the node's tracks
message for it before the next one is sent: the whole bag then goes through the node as fast as
the node can go, with nothing dropped.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from pathlib import Path

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from mots_ros.errors import FormatError

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 5  # images between progress lines ("progress: N images", which the demo shows)
RELIABLE = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100)



def message_class(msgtype: str):
    """``sensor_msgs/msg/Image`` -> the rclpy class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class BagPlayer(Node):
    def __init__(self, *, namespace: str = "", wait_for_tracks: str | None = None):
        super().__init__("mots_bag_player", namespace=namespace)
        self._tracks_seen = threading.Condition()
        self._last_stamp = None
        if wait_for_tracks:
            from mots_ros.msg import TrackedInstanceArray

            self.create_subscription(TrackedInstanceArray, wait_for_tracks, self._on_tracks, RELIABLE)

    def _on_tracks(self, msg) -> None:
        with self._tracks_seen:
            self._last_stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            self._tracks_seen.notify_all()

    def wait_for_stamp(self, stamp: tuple[int, int], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._tracks_seen:
            while self._last_stamp != stamp and (remaining := deadline - time.monotonic()) > 0:
                self._tracks_seen.wait(remaining)
            return self._last_stamp == stamp


def replay(
    bag: str | Path,
    *,
    rate: float = 1.0,
    topics: list[str] | None = None,
    remap: dict[str, str] | None = None,
    wait_for_tracks: str | None = None,
    frame_timeout_s: float = 30.0,
    subscriber_timeout_s: float = 10.0,
    loops: int = 1,
) -> int:
    """Publishes the bag; returns how many messages went out. rclpy must be initialised.

    A damaged bag is played up to the damage (:class:`mots_ros.bags.BagReader`).

    Raises:
        FormatError: the bag cannot be read, none of ``topics`` is in it, or it holds no camera image.
    """
    from mots_ros.bags import BagReader, typestore

    store = typestore()
    remap = remap or {}
    player = BagPlayer(wait_for_tracks=wait_for_tracks)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(player)
    spinner = threading.Thread(target=spin_quietly, args=(executor,), daemon=True)
    spinner.start()
    published = images = 0
    try:
        with BagReader(bag) as reader:
            connections = [c for c in reader.connections if topics is None or c.topic in topics]
            if not connections:
                raise FormatError(f"{bag}: none of the topics {topics} is in the bag; it has "
                                  f"{sorted(c.topic for c in reader.connections)}")
            if not any(_is_camera_image(c) for c in connections):
                raise FormatError(f"{bag}: no camera image (sensor_msgs/Image or CompressedImage) among "
                                  f"{sorted(c.topic for c in connections)}; nothing for mots_node to track")
            publishers = {
                c: player.create_publisher(message_class(c.msgtype), remap.get(c.topic, c.topic), RELIABLE)
                for c in connections
            }
            cameras = [publishers[c] for c in connections if _is_camera_image(c)]
            _wait_for_subscribers(player, cameras, subscriber_timeout_s)
            for _ in range(loops):
                start_wall, start_bag = time.monotonic(), None
                for connection, timestamp, raw in _bag_messages(reader, [c.topic for c in connections]):
                    start_bag = timestamp if start_bag is None else start_bag
                    if rate > 0:
                        delay = (timestamp - start_bag) / 1e9 / rate - (time.monotonic() - start_wall)
                        if delay > 0:
                            time.sleep(delay)
                    publishers[connection].publish(raw)
                    published += 1
                    if _is_camera_image(connection):
                        images += 1
                        if images % PROGRESS_EVERY == 0:
                            print(f"progress: {images} images", flush=True)
                    if wait_for_tracks and _is_camera_image(connection):
                        stamp = store.deserialize_cdr(raw, connection.msgtype).header.stamp
                        if not player.wait_for_stamp((stamp.sec, stamp.nanosec), frame_timeout_s):
                            logger.warning("no tracks for the image stamped %d.%09d within %.0f s; going on",
                                           stamp.sec, stamp.nanosec, frame_timeout_s)
        # Reliable delivery needs the writer alive until subscribers acknowledge the last messages.
        for publisher in publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=subscriber_timeout_s))
    finally:
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        player.destroy_node()
    return published


def spin_quietly(executor) -> None:
    """Spins until shutdown; the shutdown itself is the normal way out of a background spin."""
    try:
        executor.spin()
    except rclpy.executors.ExternalShutdownException:
        pass


def _is_camera_image(connection) -> bool:
    """Camera images, not flow fields (which are Images too)."""
    return connection.msgtype in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage") and not connection.topic.endswith("flow")


def _publish_rank(connection) -> int:
    """Publishing order at equal times: flow (and anything else), camera info, then the image.

    A node waiting for an image's flow then already has it.
    """
    if _is_camera_image(connection):
        return 2
    return 1 if connection.msgtype == "sensor_msgs/msg/CameraInfo" else 0


def _bag_messages(reader, topics: list[str]):
    """The bag's messages in time order, streamed (a long bag never sits in memory whole)."""
    batch, batch_time = [], None
    for connection, timestamp, raw in reader.messages(topics):
        if batch and timestamp != batch_time:
            yield from sorted(batch, key=lambda item: _publish_rank(item[0]))
            batch = []
        batch_time = timestamp
        batch.append((connection, timestamp, raw))
    yield from sorted(batch, key=lambda item: _publish_rank(item[0]))


def _wait_for_subscribers(node: Node, publishers, timeout_s: float) -> None:
    """Gives subscribers a moment to be discovered, so the first messages are not sent to nobody."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() > 0 for p in publishers):
            return
        time.sleep(0.05)
    missing = [p.topic_name for p in publishers if p.get_subscription_count() == 0]
    if missing:
        node.get_logger().warning(f"no subscriber on {missing} after {timeout_s:.0f} s; publishing anyway")
