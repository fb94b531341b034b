"""Records a ``tracks`` topic into a KITTI MOTS txt file (``mots-ros record``).

Frame numbers come back from the stamps (``stamp = origin + frame / fps``, see
:mod:`mots_ros.bags`). Only the first tracker epoch is recorded: a reset (a looped bag) would
otherwise repeat frame numbers.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from mots_ros.bags import STAMP_ORIGIN_NS, stamp_frame
from mots_ros.datasets import MotsRecord, write_mots_txt
from mots_ros.msg import TrackedInstanceArray
from mots_ros.ros_conversions import message_to_records, stamp_to_ns


class TrackRecorder(Node):
    def __init__(self, topic: str, *, fps: float, origin_ns: int = STAMP_ORIGIN_NS):
        super().__init__("mots_track_recorder")
        self.fps, self.origin_ns = fps, origin_ns
        self.records: list[MotsRecord] = []
        self.messages = 0
        self.epoch: int | None = None
        self.last_message_at: float | None = None
        self.changed = threading.Condition()
        qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1000)
        self.create_subscription(TrackedInstanceArray, topic, self._on_tracks, qos)

    def _on_tracks(self, msg) -> None:
        with self.changed:
            if self.epoch is None:
                self.epoch = msg.tracker_epoch
            if msg.tracker_epoch != self.epoch:
                self.get_logger().warning(
                    f"tracker epoch changed to {msg.tracker_epoch}; only epoch {self.epoch} is recorded", once=True)
                return
            frame = stamp_frame(stamp_to_ns(msg.header.stamp), self.fps, self.origin_ns)
            self.records.extend(message_to_records(msg, frame))
            self.messages += 1
            self.last_message_at = time.monotonic()
            self.changed.notify_all()

    def wait(self, *, frames: int | None, idle_timeout_s: float, timeout_s: float) -> None:
        """Returns when ``frames`` messages arrived, or on a timeout.

        The timeouts: ``idle_timeout_s`` without a message (once one came), ``timeout_s`` in all.
        """
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while time.monotonic() < deadline:
                if frames is not None and self.messages >= frames:
                    return
                if self.last_message_at is not None and time.monotonic() - self.last_message_at > idle_timeout_s:
                    return
                self.changed.wait(0.2)

    def save(self, path: str | Path) -> int:
        with self.changed:
            write_mots_txt(path, list(self.records))
            return self.messages
