"""Association cues: the weighted terms of the similarity between this frame's detections and the tracks.

A cue is a class built with its ``tracker.cues`` entry as keyword arguments (``weight`` always,
plus its own options), registered by name in :data:`mots_ros.registry.CUES` or through the
``mots_ros.cues`` entry points::

    class LanePriorCue(Cue):
        def __init__(self, weight: float, lane_width_px: float = 80.0):
            super().__init__(weight)
            self.lane_width_px = lane_width_px

        def similarity(self, detections, tracks, context):
            ...  # (len(detections), len(tracks)) float array, higher = more alike

The tracker adds ``weight · similarity`` of every cue whose weight is not 0, in config order.
Cues may keep per-track state in ``track.cue_state[self.name]`` through the optional hooks
:meth:`Cue.start_frame`, :meth:`Cue.track_born` and :meth:`Cue.track_matched`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mots_ros.datatypes import Instance
from mots_ros.errors import ConfigError
from mots_ros.registry import CUES

if TYPE_CHECKING:
    from mots_ros.tracker import Track



@dataclass(frozen=True)
class FrameContext:
    """What a cue may need besides the detections and the tracks.

    Attributes:
        frame_serial: counts processed frames in this epoch; consecutive frames differ by 1.
        stamp_ns: this frame's acquisition time, ns.
        frame_index: the frame number, when the source has one (offline sequences).
        image_rgb: ``(H, W, 3) uint8`` this frame, or None when the caller gave no image.
        previous_image_rgb: ``(H, W, 3) uint8`` the previous processed frame of this epoch, or None.
        flow: ``(H, W, 2) float32`` optical flow from the previous frame to this one (dx, dy in
            pixels, indexed by the previous frame's pixels), or None.
        continuous: False for the first frame after a time jump (``tracker.time_jump_s``) or a
            reset: the previous image and flow are then None, and motion learnt so far no longer
            applies.
    """

    frame_serial: int
    stamp_ns: int = 0
    frame_index: int | None = None
    image_rgb: np.ndarray | None = None
    previous_image_rgb: np.ndarray | None = None
    flow: np.ndarray | None = None
    continuous: bool = True


@runtime_checkable
class AssociationCue(Protocol):
    """What the tracker needs of a cue. The hooks of :class:`Cue` are optional."""

    name: str
    weight: float

    def similarity(self, detections: Sequence[Instance], tracks: Sequence[Track], context: FrameContext) -> np.ndarray:
        """``(len(detections), len(tracks))`` unweighted similarity; higher means more alike."""
        ...


class Cue:
    """Base class with the optional hooks as no-ops.

    Attributes:
        name: the cue's name in ``tracker.cues``; set by :func:`create_cues`.
        weight: factor of this cue's similarity in the sum.
        needs_embeddings: True when ``similarity`` reads ``Instance.embedding``; the pipeline runs
            point sampling and the embedding network only if an enabled cue needs them.
        needs_image: True when the cue reads the frame's pixels (``FrameContext.image_rgb``).
    """

    name = "cue"
    needs_embeddings = False
    needs_image = False

    def __init__(self, weight: float) -> None:
        self.weight = float(weight)

    def similarity(self, detections: Sequence[Instance], tracks: Sequence[Track], context: FrameContext) -> np.ndarray:
        """``(len(detections), len(tracks))`` unweighted similarity; higher means more alike."""
        raise NotImplementedError

    def start_frame(self, tracks: Sequence[Track], context: FrameContext) -> None:
        """Called once per frame, after expired tracks are dropped and before any similarity."""

    def track_born(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Called when ``detection`` starts ``track``."""

    def track_matched(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Called when ``detection`` continues ``track`` (after the track took its mask and embedding)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weight={self.weight})"


def create_cues(cue_options: Mapping[str, Mapping[str, Any]]) -> list[AssociationCue]:
    """The enabled cues of a ``tracker.cues`` mapping, in its order.

    Raises:
        ConfigError: an unknown cue name (listing the known ones), or options the cue does not take.
    """
    cues = []
    for name, options in cue_options.items():
        cue_type = CUES.load(name)
        if not options.get("weight"):
            continue  # weight 0 disables a cue
        try:
            cue = cue_type(**options)
        except (TypeError, ValueError) as err:  # unknown options, or values out of range
            raise ConfigError(f"tracker.cues.{name}: {err}") from err
        if not isinstance(cue, AssociationCue):
            raise ConfigError(f"tracker.cues.{name}: {type(cue).__name__} has no name, weight and similarity()")
        cue.name = name
        cues.append(cue)
    return cues


def cues_need_embeddings(cues: Sequence[AssociationCue]) -> bool:
    """True when an enabled cue reads the detections' embeddings."""
    return any(getattr(cue, "needs_embeddings", False) and cue.weight for cue in cues)
