"""Plain, ROS-free records that flow through the pipeline.

Conventions used everywhere:
- images are ``(H, W, 3) uint8`` and the colour order is in the name (``image_rgb``, ``image_bgr``);
- boxes are ``(x0, y0, x1, y1)`` pixel indices, inclusive on both ends;
- masks are ``(H, W) bool`` over the full image;
- times are integer nanoseconds (``stamp_ns``).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field

import numpy as np

from mots_ros.errors import InputError
from mots_ros.masks import Rle, decode_rle

#: KITTI MOTS class ids (spec §9.1) and their names.
CLASS_NAMES = {1: "car", 2: "pedestrian"}
IGNORE_CLASS_ID = 10
IGNORE_TRACK_ID = 10000


def stamp_to_ns(sec: int, nanosec: int) -> int:
    """A ROS time (``builtin_interfaces/Time`` fields) in integer nanoseconds.

    Raises:
        InputError: ``nanosec`` is not in [0, 10⁹): such a stamp would read as a later second.
    """
    if not 0 <= int(nanosec) < 1_000_000_000:
        raise InputError(f"stamp nanosec {nanosec} is out of range [0, 999999999]", kind="stamp")
    return int(sec) * 1_000_000_000 + int(nanosec)


class TrackState(enum.IntEnum):
    """Lifecycle state of a track, as published in ``TrackedInstance.state``."""

    TENTATIVE = 0  # born in this frame
    CONFIRMED = 1  # matched in at least one later frame


@dataclass(frozen=True)
class Frame:
    """One decoded camera frame.

    Attributes:
        image_rgb: ``(H, W, 3) uint8`` RGB image.
        stamp_ns: acquisition time in nanoseconds; used for track ages and reset detection.
        flow: optional ``(H, W, 2) float32`` optical flow from the previous frame to this one,
            in pixels (dx, dy), indexed by pixels of the previous frame.
        frame_index: optional frame number (from the file name offline); used when track age is
            counted in frames.
    """

    image_rgb: np.ndarray
    stamp_ns: int
    flow: np.ndarray | None = None
    frame_index: int | None = None


@dataclass(frozen=True)
class Instance:
    """One segmented object in one frame, before tracking.

    Attributes:
        rle: COCO compressed RLE of the full-image mask (``{"size": [H, W], "counts": bytes}``),
            the mask's canonical form (it is what messages and txt files carry).
        bbox: ``(x0, y0, x1, y1)`` inclusive pixel box of the mask.
        class_id: KITTI MOTS class id (1 car, 2 pedestrian).
        score: seed score of the cluster centre, in [0, 1] (1 for given masks).
        embedding: ``(D,) float32`` appearance vector (PointTrack: D = 32), or empty.
    """

    rle: Rle
    bbox: tuple[int, int, int, int]
    class_id: int
    score: float
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @functools.cached_property
    def mask(self) -> np.ndarray:
        """``(H, W) bool`` full-image mask, decoded on first use."""
        return decode_rle(self.rle)


@dataclass(frozen=True)
class TrackedInstance:
    """An :class:`Instance` with its track identity."""

    track_id: int
    state: TrackState
    instance: Instance

    @property
    def mask(self) -> np.ndarray:
        """``(H, W) bool`` full-image mask."""
        return self.instance.mask

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` inclusive pixel box."""
        return self.instance.bbox

    @property
    def class_id(self) -> int:
        """KITTI MOTS class id."""
        return self.instance.class_id

    @property
    def class_name(self) -> str:
        """``car``, ``pedestrian`` or ``unknown``."""
        return CLASS_NAMES.get(self.instance.class_id, "unknown")

    @property
    def score(self) -> float:
        """Confidence in [0, 1]."""
        return self.instance.score

    @property
    def rle(self) -> Rle:
        """COCO RLE of the mask."""
        return self.instance.rle

    @property
    def embedding(self) -> np.ndarray:
        """``(D,) float32`` appearance vector, or empty."""
        return self.instance.embedding


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline knows about one processed frame.

    Attributes:
        stamp_ns: the input frame's stamp.
        frame_index: the input frame's index, if it had one.
        image_height, image_width: size of the input image; masks and boxes are in its pixels.
        tracker_epoch: increments whenever the tracker resets (time went backwards, reset asked).
        instances: tracked instances, in detection order.
        latency_ms: wall time per stage, in milliseconds.
        instance_map: optional ``(H, W) int32`` map where pixel value i > 0 belongs to
            ``instances[i - 1]``; makes :meth:`id_image` cheap.
        active_tracks: live tracks after this frame (matched or waiting to be), for diagnostics.
        flow_problem: why the frame's flow was ignored, or None when it had none or it was used.
    """

    stamp_ns: int
    frame_index: int | None
    image_height: int
    image_width: int
    tracker_epoch: int
    instances: tuple[TrackedInstance, ...]
    latency_ms: dict[str, float] = field(default_factory=dict)
    instance_map: np.ndarray | None = None
    active_tracks: int = 0
    flow_problem: str | None = None

    def id_image(self) -> np.ndarray:
        """``(H, W) uint16`` image of track ids (0 = background); ids above 65535 wrap."""
        if self.instance_map is not None:
            lookup = np.array([0] + [t.track_id & 0xFFFF for t in self.instances], np.uint16)
            return lookup[self.instance_map]
        image = np.zeros((self.image_height, self.image_width), np.uint16)
        for tracked in self.instances:
            image[tracked.mask] = tracked.track_id & 0xFFFF
        return image
