"""Where each track should be now (CenterTrack's motion idea), compared with every detection.

Each track keeps its last matched mask and a predicted offset from it. Every frame the offset
moves on by the mean optical flow inside the predicted mask, or, without flow, by the track's
velocity (pixels per frame, smoothed over its matches). Lost tracks keep moving the same way
(coasting), so a track can be found again where it went. The similarity of a detection to a track
blends two terms::

    iou_share · IoU(detection, last mask moved by the offset)
      + (1 − iou_share) · max(0, 1 − ‖c_det − c_pred‖ / √(w_det · h_det))

The centre distance is normalised by the detection's box size, as CenterTrack's greedy matcher
does (it accepts a pair within the object's radius). With ``gate`` > 0, pairs farther than
``gate · √(frames since the track's last match)`` radii are forbidden (-inf), so that no other
cue, appearance included, can re-identify a track where its motion says it cannot be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mots_ros.cues import Cue, FrameContext
from mots_ros.datatypes import Instance
from mots_ros.masks import Rle, column_runs, column_runs_centroid, mask_iou, rle_centroid, translate_column_runs

if TYPE_CHECKING:
    from mots_ros.tracker import Track

_FLOW_SAMPLES = 400  # pixels of the predicted mask that vote for its mean flow


@dataclass
class MotionState:
    """A track's motion, in pixels of the current frame."""

    columns: np.ndarray  # column runs of the last matched mask (see mots_ros.masks.column_runs)
    first_rows: np.ndarray
    end_rows: np.ndarray
    centre_x: float  # centroid of the last matched mask
    centre_y: float
    offset_x: float = 0.0  # predicted move since the last match
    offset_y: float = 0.0
    velocity_x: float = 0.0  # px per frame
    velocity_y: float = 0.0
    frames_since_match: int = 0
    matched_once: bool = False


class MotionCue(Cue):
    """Predicted position and mask overlap; see the module docstring.

    Args:
        weight: factor of this cue in the similarity sum.
        iou_share: share of the moved-mask IoU in the similarity (the rest is centre distance).
        gate: forbid pairs farther than this many object radii (times √frames lost); 0 = never.
        velocity_smoothing: weight of the old velocity when a match measures a new one, in [0, 1).
        use_flow: follow the optical flow when the frame has some (else the velocity alone).
    """

    name = "motion"

    def __init__(self, weight: float, iou_share: float = 0.5, gate: float = 0.0, velocity_smoothing: float = 0.5,
                 use_flow: bool = True) -> None:
        super().__init__(weight)
        if not 0.0 <= iou_share <= 1.0:
            raise ValueError(f"iou_share must be in [0, 1], got {iou_share}")
        if not 0.0 <= velocity_smoothing < 1.0:
            raise ValueError(f"velocity_smoothing must be in [0, 1), got {velocity_smoothing}")
        if gate < 0:
            raise ValueError(f"gate must be >= 0, got {gate}")
        self.iou_share = float(iou_share)
        self.gate = float(gate)
        self.velocity_smoothing = float(velocity_smoothing)
        self.use_flow = bool(use_flow)
        # This frame's detections, measured once in similarity() and reused by the match hooks.
        self._measured: tuple[int, dict[int, tuple[Instance, MotionState]]] = (-1, {})

    # ------------------------------------------------------------------ state
    def track_born(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Starts the track's motion at rest where it was seen."""
        track.cue_state[self.name] = self._state_of(detection, context)

    def track_matched(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Measures the velocity since the last match and restarts the prediction from this mask."""
        old: MotionState | None = track.cue_state.get(self.name)
        new = self._state_of(detection, context)
        if old is not None and context.continuous:
            frames = max(old.frames_since_match, 1)
            measured_x = (new.centre_x - old.centre_x) / frames
            measured_y = (new.centre_y - old.centre_y) / frames
            keep = self.velocity_smoothing if old.matched_once else 0.0
            new.velocity_x = keep * old.velocity_x + (1 - keep) * measured_x
            new.velocity_y = keep * old.velocity_y + (1 - keep) * measured_y
            new.matched_once = True
        track.cue_state[self.name] = new

    def start_frame(self, tracks: Sequence[Track], context: FrameContext) -> None:
        """Moves every track's prediction on by one frame (matched or coasting)."""
        for track in tracks:
            state: MotionState | None = track.cue_state.get(self.name)
            if state is None:
                continue
            if not context.continuous:  # after a time jump, old motion says nothing
                state.offset_x = state.offset_y = state.velocity_x = state.velocity_y = 0.0
                state.matched_once = False
            else:
                step = self._flow_step(state, context.flow) if self.use_flow and context.flow is not None else None
                step_x, step_y = step if step is not None else (state.velocity_x, state.velocity_y)
                state.offset_x += step_x
                state.offset_y += step_y
            state.frames_since_match += 1

    @staticmethod
    def _flow_step(state: MotionState, flow: np.ndarray) -> tuple[float, float] | None:
        """Mean flow over up to ``_FLOW_SAMPLES`` pixels of the predicted mask, or None when it left the image."""
        height, width = flow.shape[:2]
        lengths = state.end_rows - state.first_rows
        total = int(lengths.sum())
        if total == 0:
            return None
        # Evenly spaced pixels of the mask, in column-major order, moved by the current offset.
        picks = np.linspace(0, total - 1, min(total, _FLOW_SAMPLES)).astype(np.int64)
        run = np.searchsorted(np.cumsum(lengths), picks, side="right")
        within = picks - (np.cumsum(lengths) - lengths)[run]
        xs = np.rint(state.columns[run] + state.offset_x).astype(np.int64)
        ys = np.rint(state.first_rows[run] + within + state.offset_y).astype(np.int64)
        inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
        if not inside.any():
            return None
        moves = flow[ys[inside], xs[inside]]
        return float(moves[:, 0].mean()), float(moves[:, 1].mean())

    def _state_of(self, detection: Instance, context: FrameContext) -> MotionState:
        """A fresh state at the detection: its column runs and centroid, measured once per frame."""
        serial, measured = self._measured
        if serial != context.frame_serial:
            measured = {}
            self._measured = (context.frame_serial, measured)
        seen = measured.get(id(detection))
        if seen is None or seen[0] is not detection:  # the entry holds the detection, so its id stays unique
            runs = column_runs(detection.rle)
            x, y, _ = column_runs_centroid(*runs)
            seen = measured[id(detection)] = (detection, MotionState(*runs, centre_x=x, centre_y=y))
        known = seen[1]
        return MotionState(known.columns, known.first_rows, known.end_rows, known.centre_x, known.centre_y)

    # ------------------------------------------------------------------ similarity
    def similarity(self, detections: Sequence[Instance], tracks: Sequence[Track], context: FrameContext) -> np.ndarray:
        """``(len(detections), len(tracks))`` similarity; see the module docstring."""
        states = [track.cue_state.get(self.name) for track in tracks]
        det_rles = [d.rle for d in detections]
        height, width = (int(v) for v in det_rles[0]["size"])
        predicted = [_moved_rle(s, height, width) if s is not None else t.rle for s, t in zip(states, tracks)]
        iou = mask_iou(det_rles, predicted) if self.iou_share else np.zeros((len(detections), len(tracks)))
        measured = [self._state_of(d, context) for d in detections]
        det_centres = np.array([(m.centre_x, m.centre_y) for m in measured], np.float64).reshape(-1, 2)
        det_size = np.array([np.sqrt(max(d.bbox[2] - d.bbox[0] + 1, 1) * max(d.bbox[3] - d.bbox[1] + 1, 1))
                             for d in detections], np.float64)
        track_centres = np.array([(s.centre_x + s.offset_x, s.centre_y + s.offset_y) if s is not None
                                  else rle_centroid(t.rle)[:2] for s, t in zip(states, tracks)], np.float64).reshape(-1, 2)
        distance = np.linalg.norm(det_centres[:, None, :] - track_centres[None, :, :], axis=-1) / det_size[:, None]
        similarity = self.iou_share * iou + (1 - self.iou_share) * np.maximum(0.0, 1.0 - distance)
        if self.gate:
            lost = np.array([max(s.frames_since_match, 1) if s is not None else 1 for s in states], np.float64)
            similarity[distance > self.gate * np.sqrt(lost)[None, :]] = -np.inf
        return similarity


def _moved_rle(state: MotionState, height: int, width: int) -> Rle:
    """The last matched mask moved by the predicted offset (rounded to whole pixels)."""
    return translate_column_runs(state.columns, state.first_rows, state.end_rows, int(round(state.offset_x)),
                                 int(round(state.offset_y)), height, width)
