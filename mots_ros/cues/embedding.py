"""The PointTrack appearance cue (spec §7.2)."""

from __future__ import annotations

from collections import deque
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
    over its matches, ``e ← ema · e + (1 − ema) · e_new``, which one odd view moves less. With
    ``gallery`` = N > 0 the track keeps its last N matched embeddings instead and a detection's
    distance is the smallest to any of them (DeepSORT's appearance memory), so a person seen from
    a new side still matches one earlier view.

    An embedding network with part heads (``PointTrackNet(parts=P)``) gives vectors of
    ``32 · (1 + P)``: the global embedding, then P part embeddings. The distance is then
    ``(1 − part_weight) · ‖Δglobal‖ + part_weight · statistic(‖Δpart_k‖)``, where the statistic
    (``median`` or ``trimmed``: the mean of the closest half, rounded up) lets occluded parts count less.
    32-d vectors give the published distance exactly.

    With ``negative_median`` > 0 the distance adapts to the video: the detections of one frame are
    different people, so the median distance between them (over the last ``negative_window``
    such pairs) measures how far apart this camera's people look to the network. Every distance
    is multiplied by ``negative_median / that median``, so on video where the network's distances
    shrink or grow as a whole (smaller people, another camera) the published constants keep their
    meaning. Until ``MIN_NEGATIVE_PAIRS`` pairs are seen the factor is 1. The result does not
    depend on the network's output scale at all (a calibrated scale cancels).

    Args:
        weight: α (spec §7.1: 1.0090931467228708 cars, 1.3437965549876354 pedestrians).
        offset: β (spec §7.1: 8.810218833503743 cars, 9.447084376750222 pedestrians).
        ema: weight of the track's old embedding at each match, in [0, 1); 0 = the last one only.
        gallery: how many recent embeddings a track keeps for the smallest distance; 0 = off.
            Not with ``ema``.
        part_weight: share of the part distance, in [0, 1] (part networks only).
        part_statistic: ``median``, ``trimmed`` or ``mean`` over the parts' distances.
        negative_median: the median distance between different people in one frame that distances
            are rescaled to; 0 = off (published).
        negative_window: how many recent within-frame pairs the median is taken over.
    """

    name = "embedding"
    needs_embeddings = True
    global_dim = 32
    MIN_NEGATIVE_PAIRS = 3

    def __init__(self, weight: float, offset: float, ema: float = 0.0, part_weight: float = 0.5,
                 part_statistic: str = "median", negative_median: float = 0.0, negative_window: int = 2000,
                 gallery: int = 0) -> None:
        super().__init__(weight)
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        if not 0.0 <= part_weight <= 1.0:
            raise ValueError(f"part_weight must be in [0, 1], got {part_weight}")
        if part_statistic not in ("median", "trimmed", "mean"):
            raise ValueError(f"part_statistic must be median, trimmed or mean, got {part_statistic!r}")
        if not (np.isfinite(negative_median) and negative_median >= 0.0):
            raise ValueError(f"negative_median must be a finite number >= 0, got {negative_median}")
        if int(negative_window) < self.MIN_NEGATIVE_PAIRS:
            raise ValueError(f"negative_window must be at least {self.MIN_NEGATIVE_PAIRS}, got {negative_window}")
        if int(gallery) < 0 or (gallery and ema):
            raise ValueError(f"gallery must be >= 0 and is not used with ema, got gallery={gallery}, ema={ema}")
        self.gallery = int(gallery)
        self.negative_median = float(negative_median)
        # Kept across tracker resets: they describe the camera, not the tracks.
        self._negative_distances: deque[float] = deque(maxlen=int(negative_window))
        self.offset = float(offset)
        self.ema = float(ema)
        self.part_weight = float(part_weight)
        self.part_statistic = part_statistic

    def track_matched(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Updates the moving average (``ema`` > 0) or the gallery (``gallery`` > 0)."""
        if self.gallery:
            track.cue_state.setdefault(self.name, deque(maxlen=self.gallery)).append(
                np.asarray(detection.embedding, np.float64))
        elif self.ema:
            average = track.cue_state.get(self.name)
            new = np.asarray(detection.embedding, np.float64)
            track.cue_state[self.name] = new if average is None else self.ema * average + (1 - self.ema) * new

    def track_born(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Starts the moving average (``ema`` > 0) or the gallery (``gallery`` > 0)."""
        if self.gallery:
            track.cue_state[self.name] = deque([np.asarray(detection.embedding, np.float64)], maxlen=self.gallery)
        elif self.ema:
            track.cue_state[self.name] = np.asarray(detection.embedding, np.float64)

    def similarity(self, detections: Sequence[Instance], tracks: Sequence[Track], context: FrameContext) -> np.ndarray:
        """``(len(detections), len(tracks))`` similarity; see the class docstring."""
        det = np.stack([d.embedding for d in detections]).astype(np.float64)
        factor = self._video_factor(det) if self.negative_median else 1.0
        if self.gallery:
            views = [list(t.cue_state.get(self.name, [t.embedding])) for t in tracks]
            starts = np.cumsum([0] + [len(v) for v in views[:-1]])
            every_view = self.distance(det, np.stack([e for v in views for e in v]).astype(np.float64))
            return self.offset - factor * np.minimum.reduceat(every_view, starts, axis=1)
        trk = np.stack([t.cue_state.get(self.name, t.embedding) if self.ema else t.embedding
                        for t in tracks]).astype(np.float64)
        return self.offset - factor * self.distance(det, trk)

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``(len(a), len(b))`` distances between embeddings, as the class docstring defines them."""
        dim = a.shape[1]
        if dim <= self.global_dim or dim % self.global_dim:
            return np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))
        # Global embedding first, then the parts: (A, B, 1 + P) distances.
        difference = (a[:, None, :] - b[None, :, :]).reshape(len(a), len(b), -1, self.global_dim)
        distances = np.sqrt((difference**2).sum(-1))
        parts = distances[..., 1:]
        if self.part_statistic == "median":
            part_distance = np.median(parts, -1)
        elif self.part_statistic == "trimmed":
            closest = np.sort(parts, -1)[..., : (parts.shape[-1] + 1) // 2]
            part_distance = closest.mean(-1)
        else:
            part_distance = parts.mean(-1)
        return (1 - self.part_weight) * distances[..., 0] + self.part_weight * part_distance

    def _video_factor(self, det: np.ndarray) -> float:
        """Adds this frame's pairs of detections to the window; ``negative_median / median`` of it."""
        if len(det) > 1:
            upper = np.triu_indices(len(det), k=1)
            self._negative_distances.extend(self.distance(det, det)[upper].tolist())
        if len(self._negative_distances) < self.MIN_NEGATIVE_PAIRS:
            return 1.0
        median = float(np.median(np.fromiter(self._negative_distances, np.float64)))
        return self.negative_median / median if median > 0 else 1.0
