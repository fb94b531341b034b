"""Online association of instances into tracks (PointTrack's TrackHelper, spec §7).

Per frame:

1. drop tracks unmatched for longer than ``max_age_frames`` or ``max_age_s`` (by ``age_unit``);
2. with no detections, stop; with no live tracks, every detection starts a track;
3. similarity = Σ weight_i · cue_i(detection, track) over the cues of ``tracker.cues``
   (:mod:`mots_ros.cues`). The published system uses two: ``α · (β − ‖e_det − e_track‖)`` and
   ``γ · IoU(mask_det, mask_track)``, both against the track's *last* match;
4. Hungarian assignment on ``cost = max(sim) − sim`` with pairs at ``sim <= τ`` (or of another
   class, or forbidden by a cue with -inf) priced 1e9 and discarded afterwards; or, with
   ``assignment: greedy``, CenterTrack's greedy matching of the most similar allowed pairs first;
5. matched tracks take the detection's embedding and mask; every other detection starts a track
   at once (no confirmation delay). Track ids are never reused, not even across resets.

When time goes backwards (a bag looped, a replay restarted), the tracker resets and its
``epoch`` increments. A forward gap longer than ``time_jump_s`` keeps the tracks but tells the cues
that motion is broken (:attr:`mots_ros.cues.FrameContext.continuous`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mots_ros.config import TrackerConfig
from mots_ros.cues import AssociationCue, FrameContext, create_cues
from mots_ros.datatypes import Instance, TrackedInstance, TrackState
from mots_ros.masks import Rle

logger = logging.getLogger(__name__)

_FORBIDDEN_COST = 1e9  # munkres' "never" price in the published code


@dataclass
class Track:
    """A live track: its identity and what it looked like at its last match.

    Attributes:
        cue_state: per-track state of the cues, keyed by cue name (see :class:`mots_ros.cues.Cue`).
    """

    track_id: int
    class_id: int
    embedding: np.ndarray
    rle: Rle
    last_time: float  # frame number or seconds, in the tracker's age unit
    last_frame_serial: int  # which processed frame it was last matched in
    state: TrackState = TrackState.TENTATIVE
    matches: int = 1
    cue_state: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """Online tracker. ``update`` takes one frame's instances and returns them with track ids.

    Args:
        config: constants (see :class:`mots_ros.config.TrackerConfig` and the presets).
        cues: the similarity terms; defaults to the enabled cues of ``config.cues``.

    Attributes:
        epoch: increments at every reset.
        tracks: the live tracks.
    """

    def __init__(self, config: TrackerConfig | None = None, cues: Sequence[AssociationCue] | None = None):
        self.config = config or TrackerConfig()
        self.cues: list[AssociationCue] = list(cues) if cues is not None else create_cues(self.config.cues)
        self.max_age = self.config.max_age_s if self.config.age_unit == "seconds" else self.config.max_age_frames
        self.epoch = 0
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_stamp_ns: int | None = None
        self._last_frame_index: int | None = None
        self._frame_serial = 0
        self._previous_image_rgb: np.ndarray | None = None
        self._previous_frame_stamp_ns: int | None = None

    def reset(self, *, restart_ids: bool = False) -> None:
        """Forgets every track and starts a new epoch.

        Ids keep counting up (a live stream never reuses one), unless ``restart_ids``: offline, each
        sequence starts again at 1, as the published per-sequence files do.
        """
        if restart_ids:
            self._next_id = 1
        self.tracks = []
        self.epoch += 1
        self._last_stamp_ns = None
        self._last_frame_index = None
        self._frame_serial = 0
        self._previous_image_rgb = None
        self._previous_frame_stamp_ns = None

    def continues(self, stamp_ns: int) -> bool:
        """Whether a frame at ``stamp_ns`` follows the last processed one closely (``time_jump_s``)."""
        previous = self._previous_frame_stamp_ns
        return previous is not None and 0 <= stamp_ns - previous <= self.config.time_jump_s * 1e9

    def update(
        self,
        instances: Sequence[Instance],
        *,
        stamp_ns: int,
        frame_index: int | None = None,
        flow: np.ndarray | None = None,
        image_rgb: np.ndarray | None = None,
    ) -> list[TrackedInstance]:
        """Associates one frame's instances with the live tracks.

        Args:
            instances: this frame's detections, each with an embedding and an RLE mask.
            stamp_ns: the frame's time; a stamp earlier than the previous one resets the tracker.
            frame_index: the frame number, used as time when ``age_unit`` is ``frames``. Without
                it, frames are numbered in arrival order.
            flow: optional optical flow from the previous frame to this one, for flow cues.
            image_rgb: optional ``(H, W, 3) uint8`` frame, for cues that look at pixels; the
                tracker keeps it as the next frame's ``previous_image_rgb``.

        Returns:
            One TrackedInstance per input instance, in the same order.
        """
        self.observe_time(stamp_ns, frame_index)
        continuous = self.continues(stamp_ns)
        self._frame_serial += 1
        now = self._time_of(stamp_ns, frame_index)
        self.tracks = [t for t in self.tracks if now - t.last_time <= self.max_age]
        context = FrameContext(self._frame_serial, stamp_ns, frame_index, image_rgb,
                               self._previous_image_rgb if continuous else None, flow if continuous else None,
                               continuous)
        self._previous_image_rgb = image_rgb
        self._previous_frame_stamp_ns = stamp_ns
        for cue in self.cues:
            _call_hook(cue, "start_frame", self.tracks, context)
        if not instances:
            return []

        assignment = self._associate(instances, context) if self.tracks else {}
        results = []
        for det_index, instance in enumerate(instances):
            if det_index in assignment:
                track = self.tracks[assignment[det_index]]
                track.embedding, track.rle = instance.embedding, instance.rle
                track.last_time, track.last_frame_serial = now, self._frame_serial
                track.matches += 1
                track.state = TrackState.CONFIRMED
                hook = "track_matched"
            else:
                track = Track(
                    track_id=self._next_id,
                    class_id=instance.class_id,
                    embedding=instance.embedding,
                    rle=instance.rle,
                    last_time=now,
                    last_frame_serial=self._frame_serial,
                )
                self._next_id += 1
                self.tracks.append(track)
                hook = "track_born"
            for cue in self.cues:
                _call_hook(cue, hook, track, instance, context)
            results.append(TrackedInstance(track_id=track.track_id, state=track.state, instance=instance))
        return results

    def similarity(self, instances: Sequence[Instance], context: FrameContext) -> np.ndarray:
        """``(n_det, n_track)`` weighted similarity; -inf where classes differ."""
        total = np.zeros((len(instances), len(self.tracks)), np.float64)
        for cue in self.cues:
            if cue.weight:
                total += cue.weight * np.asarray(cue.similarity(instances, self.tracks, context), np.float64)
        det_class = np.array([d.class_id for d in instances])
        track_class = np.array([t.class_id for t in self.tracks])
        total[det_class[:, None] != track_class[None, :]] = -np.inf
        return total

    def _associate(self, instances: Sequence[Instance], context: FrameContext) -> dict[int, int]:
        sim = self.similarity(instances, context)
        allowed = np.isfinite(sim) & (sim > self.config.threshold)
        if not allowed.any():
            return {}
        if self.config.assignment == "greedy":
            return _greedy_assignment(sim, allowed)
        cost = np.where(allowed, sim[allowed].max() - sim, _FORBIDDEN_COST)
        det_indices, track_indices = linear_sum_assignment(cost)
        return {int(d): int(t) for d, t in zip(det_indices, track_indices) if allowed[d, t]}

    def observe_time(self, stamp_ns: int, frame_index: int | None = None) -> bool:
        """Notes a frame's time; resets (new epoch) and returns True if time went backwards."""
        went_back = self._last_stamp_ns is not None and stamp_ns < self._last_stamp_ns
        went_back |= (
            self.config.age_unit == "frames"
            and frame_index is not None
            and self._last_frame_index is not None
            and frame_index < self._last_frame_index
        )
        if went_back:
            logger.info("time went backwards (stamp %d after %s): tracker reset", stamp_ns, self._last_stamp_ns)
            self.reset()
        self._last_stamp_ns = stamp_ns
        self._last_frame_index = frame_index
        return went_back

    def _time_of(self, stamp_ns: int, frame_index: int | None) -> float:
        if self.config.age_unit == "seconds":
            return stamp_ns * 1e-9
        return float(frame_index if frame_index is not None else self._frame_serial)


def _greedy_assignment(sim: np.ndarray, allowed: np.ndarray) -> dict[int, int]:
    """CenterTrack's matching: allowed pairs from the most similar down, each detection and track once."""
    det_taken, track_taken = np.zeros(sim.shape[0], bool), np.zeros(sim.shape[1], bool)
    pairs: dict[int, int] = {}
    det_order, track_order = np.nonzero(allowed)
    order = np.argsort(-sim[det_order, track_order], kind="stable")  # ties: lower detection, then track index
    for d, t in zip(det_order[order], track_order[order]):
        if not det_taken[d] and not track_taken[t]:
            det_taken[d] = track_taken[t] = True
            pairs[int(d)] = int(t)
    return pairs


def _call_hook(cue: AssociationCue, hook: str, *args: Any) -> None:
    """Cues that follow the Protocol without subclassing :class:`mots_ros.cues.Cue` may lack hooks."""
    method = getattr(cue, hook, None)
    if method is not None:
        method(*args)
