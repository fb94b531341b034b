"""A few points per track carried from frame to frame (SAM-PT's point propagation), voting for detections.

At birth, and again every ``reinit_frames`` frames from the newest matched mask, a track picks
``points_per_track`` positive points inside its mask by K-medoids (well spread, away from the
border) and ``negative_points`` in a ring just outside it. Every frame all points of all tracks,
matched or lost, move on by pyramidal Lucas–Kanade with a forward–backward check (a point that
does not come back within ``forward_backward_px`` is dropped), or by the flow field. A track's
similarity to a detection is the share of its surviving positive points inside the detection's
mask minus the share of its negative points there. Because lost tracks' points keep moving, a
track briefly hidden can still be found where its points went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mots_ros.cues import Cue, FrameContext
from mots_ros.datatypes import Instance
from mots_ros.masks import rle_contains, rle_crop

if TYPE_CHECKING:
    from mots_ros.tracker import Track

_MAX_CANDIDATES = 256  # mask pixels K-medoids chooses from
_MEDOID_ROUNDS = 5
_LK_WINDOW, _LK_LEVELS = (21, 21), 3  # OpenCV's defaults: large enough for a few px per frame at 30 Hz


@dataclass
class PointState:
    """A track's points, ``(N, 2) float32`` (x, y) in the current frame, and which are still alive."""

    positive: np.ndarray
    negative: np.ndarray
    positive_alive: np.ndarray
    negative_alive: np.ndarray
    frames_since_sampling: int = 0


class PointCue(Cue):
    """Positive and negative point votes; see the module docstring.

    Args:
        weight: factor of this cue in the similarity sum.
        points_per_track: positive points per track (SAM-PT: 8).
        negative_points: points in the ring outside the mask; 0 = none.
        reinit_frames: re-sample from the matched mask after this many frames (SAM-PT: h = 8).
        ring_width: width of the negative ring, as a share of the box's √(w·h).
        propagation: ``lk`` (Lucas–Kanade on the images) or ``flow`` (the frame's optical flow).
        forward_backward_px: ``lk`` drops points whose backward track misses by more than this.
    """

    name = "points"
    needs_image = True

    def __init__(self, weight: float, points_per_track: int = 8, negative_points: int = 8, reinit_frames: int = 8,
                 ring_width: float = 0.25, propagation: str = "lk", forward_backward_px: float = 1.0) -> None:
        super().__init__(weight)
        if points_per_track < 1 or negative_points < 0 or reinit_frames < 1:
            raise ValueError("points_per_track and reinit_frames must be >= 1, negative_points >= 0")
        if propagation not in ("lk", "flow"):
            raise ValueError(f"propagation must be 'lk' or 'flow', got {propagation!r}")
        self.points_per_track = int(points_per_track)
        self.negative_points = int(negative_points)
        self.reinit_frames = int(reinit_frames)
        self.ring_width = float(ring_width)
        self.propagation = propagation
        self.forward_backward_px = float(forward_backward_px)
        self._gray_of: tuple[np.ndarray, np.ndarray] | None = None  # (image, its grey), reused next frame

    # ------------------------------------------------------------------ state
    def track_born(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Samples the new track's points."""
        track.cue_state[self.name] = self._sample(detection)

    def track_matched(self, track: Track, detection: Instance, context: FrameContext) -> None:
        """Re-samples every ``reinit_frames`` frames, or when half the positive points are lost."""
        state: PointState | None = track.cue_state.get(self.name)
        if (state is None or state.frames_since_sampling >= self.reinit_frames
                or 2 * int(state.positive_alive.sum()) < self.points_per_track):
            track.cue_state[self.name] = self._sample(detection)

    def start_frame(self, tracks: Sequence[Track], context: FrameContext) -> None:
        """Moves every track's points into this frame."""
        states = [s for s in (t.cue_state.get(self.name) for t in tracks) if s is not None]
        for state in states:
            state.frames_since_sampling += 1
        if not states:
            return
        points = np.concatenate([np.concatenate([s.positive, s.negative]) for s in states]).astype(np.float32)
        alive = np.concatenate([np.concatenate([s.positive_alive, s.negative_alive]) for s in states])
        if not len(points):
            return  # tracks without points (empty masks) re-sample at their next match
        if not context.continuous:
            alive[:] = False  # after a time jump the points are meaningless until re-sampled
        else:
            moved, kept = self._propagate(points, context)
            if moved is None:
                alive[:] = False
            else:
                points, alive = moved, alive & kept
        start = 0
        for state in states:
            n_pos, n_neg = len(state.positive), len(state.negative)
            state.positive, state.negative = points[start:start + n_pos], points[start + n_pos:start + n_pos + n_neg]
            state.positive_alive = alive[start:start + n_pos]
            state.negative_alive = alive[start + n_pos:start + n_pos + n_neg]
            start += n_pos + n_neg

    def _propagate(self, points: np.ndarray, context: FrameContext) -> tuple[np.ndarray | None, np.ndarray]:
        """The points in this frame and which survived; None when there is nothing to follow them with."""
        if self.propagation == "flow":
            if context.flow is None:
                return None, np.zeros(len(points), bool)
            height, width = context.flow.shape[:2]
            cols, rows = np.rint(points[:, 0]).astype(np.int64), np.rint(points[:, 1]).astype(np.int64)
            inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
            moved = points.copy()
            moved[inside] += context.flow[rows[inside], cols[inside]]
            return moved, inside
        if context.image_rgb is None or context.previous_image_rgb is None:
            return None, np.zeros(len(points), bool)
        import cv2

        previous, current = self._gray(context.previous_image_rgb), self._gray(context.image_rgb)
        if previous.shape != current.shape:
            return None, np.zeros(len(points), bool)
        start = points.reshape(-1, 1, 2)
        # None lets OpenCV allocate the output points; its stubs only know the buffer form
        forward, found, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None,  # type: ignore[call-overload]
                                                     winSize=_LK_WINDOW, maxLevel=_LK_LEVELS)
        backward, found_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, forward, None,  # type: ignore[call-overload]
                                                           winSize=_LK_WINDOW, maxLevel=_LK_LEVELS)
        miss = np.linalg.norm(backward.reshape(-1, 2) - points, axis=1)
        moved = forward.reshape(-1, 2)
        height, width = current.shape
        inside = (moved[:, 0] >= 0) & (moved[:, 0] <= width - 1) & (moved[:, 1] >= 0) & (moved[:, 1] <= height - 1)
        kept = found.ravel().astype(bool) & found_back.ravel().astype(bool) & (miss <= self.forward_backward_px) & inside
        return moved, kept

    def _gray(self, image_rgb: np.ndarray) -> np.ndarray:
        """The grey image; this frame's is kept, because it is the next frame's previous one."""
        import cv2

        if self._gray_of is not None and self._gray_of[0] is image_rgb:
            return self._gray_of[1]
        gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        self._gray_of = (image_rgb, gray)
        return gray

    def _sample(self, detection: Instance) -> PointState:
        """K-medoids positive points inside the mask and negative points in the ring around it."""
        import cv2

        x0, y0, x1, y1 = detection.bbox
        ring = max(2, int(round(self.ring_width * np.sqrt((x1 - x0 + 1) * (y1 - y0 + 1)))))
        crop, cx, cy = rle_crop(detection.rle, margin=ring)
        rows, cols = np.nonzero(crop)
        positive = k_medoids(np.stack([cols + cx, rows + cy], 1).astype(np.float32), self.points_per_track)
        negative = np.zeros((0, 2), np.float32)
        if self.negative_points:
            grown = cv2.dilate(crop.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1,) * 2))
            ring_rows, ring_cols = np.nonzero(grown.astype(bool) & ~crop)
            negative = k_medoids(np.stack([ring_cols + cx, ring_rows + cy], 1).astype(np.float32), self.negative_points)
        return PointState(positive, negative, np.ones(len(positive), bool), np.ones(len(negative), bool))

    # ------------------------------------------------------------------ similarity
    def similarity(self, detections: Sequence[Instance], tracks: Sequence[Track], context: FrameContext) -> np.ndarray:
        """``(len(detections), len(tracks))`` similarity; see the module docstring."""
        states: list[PointState | None] = [t.cue_state.get(self.name) for t in tracks]
        points, owner, sign = [], [], []
        for index, state in enumerate(states):
            if state is None:
                continue
            for group, alive, vote in ((state.positive, state.positive_alive, 1.0),
                                       (state.negative, state.negative_alive, -1.0)):
                count = int(alive.sum())
                if count:
                    points.append(group[alive])
                    owner.append(np.full(count, index))
                    sign.append(np.full(count, vote / count))
        similarity = np.zeros((len(detections), len(tracks)), np.float64)
        if not points:
            return similarity
        xy, owners, votes = np.concatenate(points), np.concatenate(owner), np.concatenate(sign)
        for d, detection in enumerate(detections):
            inside = rle_contains(detection.rle, xy[:, 0], xy[:, 1])
            similarity[d] = np.bincount(owners[inside], weights=votes[inside], minlength=len(tracks))
        return similarity


def k_medoids(points: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` well-spread members of ``(N, 2)`` points: K-medoids from a farthest-point start (deterministic)."""
    if len(points) == 0:
        return np.zeros((0, 2), np.float32)
    if len(points) > _MAX_CANDIDATES:  # evenly spaced in scan order
        points = points[np.linspace(0, len(points) - 1, _MAX_CANDIDATES).astype(np.int64)]
    k = min(k, len(points))
    distance = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    medoids = [int(np.argmin(distance.sum(1)))]  # the most central point first
    nearest = distance[medoids[0]].copy()
    while len(medoids) < k:
        medoids.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, distance[medoids[-1]])
    chosen = np.array(medoids)
    for _ in range(_MEDOID_ROUNDS):
        cluster = np.argmin(distance[:, chosen], axis=1)
        updated = chosen.copy()
        for c in range(k):
            members = np.flatnonzero(cluster == c)
            if members.size:
                updated[c] = members[np.argmin(distance[np.ix_(members, members)].sum(1))]
        if np.array_equal(updated, chosen):
            break
        chosen = updated
    return points[chosen].astype(np.float32)
