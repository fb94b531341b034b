"""The PointTrack appearance cue (spec §7.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mots_ros.cues import Cue, FrameContext
from mots_ros.datatypes import Instance

if TYPE_CHECKING:
    from mots_ros.tracker import Track


class EmbeddingCue(Cue):
    """``offset − ‖e_det − e_track‖₂`` against the track's embedding (weight α, offset β).

    The track's embedding is its last match's (published), or with ``ema`` > 0 a moving average
    over its matches, ``e ← ema · e + (1 − ema) · e_new``, which one odd view moves less.

    An embedding network with part heads (``PointTrackNet(parts=P)``) gives vectors of
    ``32 · (1 + P)``: the global embedding, then P part embeddings. The distance is then
    ``(1 − part_weight) · ‖Δglobal‖ + part_weight · statistic(‖Δpart_k‖)``, where the statistic
    (``median`` or ``trimmed``: the mean of the closest half, rounded up) lets occluded parts count less.
    32-d vectors give the published distance exactly.

    Args:
        weight: α (spec §7.1: 1.0090931467228708 cars, 1.3437965549876354 pedestrians).
        offset: β (spec §7.1: 8.810218833503743 cars, 9.447084376750222 pedestrians).
        ema: weight of the track's old embedding at each match, in [0, 1); 0 = the last one only.
        part_weight: share of the part distance, in [0, 1] (part networks only).
        part_statistic: ``median``, ``trimmed`` or ``mean`` over the parts' distances.
    """

    name = "embedding"
    needs_embeddings = True
    global_dim = 32

    def __init__(self, weight: float, offset: float, ema: float = 0.0, part_weight: float = 0.5,
                 part_statistic: str = "median") -> None:
        super().__init__(weight)
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        if not 0.0 <= part_weight <= 1.0:
            raise ValueError(f"part_weight must be in [0, 1], got {part_weight}")
        if part_statistic not in ("median", "trimmed", "mean"):
            raise ValueError(f"part_statistic must be median, trimmed or mean, got {part_statistic!r}")
        self.offset = float(offset)
        self.ema = float(ema)
        self.part_weight = float(part_weight)
        self.part_statistic = part_statistic

    def track_matched(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Updates the moving average (``ema`` > 0 only)."""
        if self.ema:
            average = track.cue_state.get(self.name)
            new = np.asarray(detection.embedding, np.float64)
            track.cue_state[self.name] = new if average is None else self.ema * average + (1 - self.ema) * new

    def track_born(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Starts the moving average (``ema`` > 0 only)."""
        if self.ema:
            track.cue_state[self.name] = np.asarray(detection.embedding, np.float64)

    def similarity(self, detections: Sequence[Instance], tracks: Sequence[Track], context: FrameContext) -> np.ndarray:
        """``(len(detections), len(tracks))`` similarity; see the class docstring."""
        det = np.stack([d.embedding for d in detections]).astype(np.float64)
        trk = np.stack([t.cue_state.get(self.name, t.embedding) if self.ema else t.embedding
                        for t in tracks]).astype(np.float64)
        dim = det.shape[1]
        if dim <= self.global_dim or dim % self.global_dim:
            distance = np.sqrt(np.maximum(((det[:, None, :] - trk[None, :, :]) ** 2).sum(-1), 0.0))
            return self.offset - distance
        # Global embedding first, then the parts: (D, T, 1 + P) distances.
        difference = (det[:, None, :] - trk[None, :, :]).reshape(len(det), len(trk), -1, self.global_dim)
        distances = np.sqrt((difference**2).sum(-1))
        parts = distances[..., 1:]
        if self.part_statistic == "median":
            part_distance = np.median(parts, -1)
        elif self.part_statistic == "trimmed":
            closest = np.sort(parts, -1)[..., : (parts.shape[-1] + 1) // 2]
            part_distance = closest.mean(-1)
        else:
            part_distance = parts.mean(-1)
        return self.offset - ((1 - self.part_weight) * distances[..., 0] + self.part_weight * part_distance)
