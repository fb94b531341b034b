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
    """``offset − ‖e_det − e_track‖₂`` against the track's last embedding (weight α, offset β).

    Args:
        weight: α (spec §7.1: 1.0090931467228708 cars, 1.3437965549876354 pedestrians).
        offset: β (spec §7.1: 8.810218833503743 cars, 9.447084376750222 pedestrians).
    """

    name = "embedding"
    needs_embeddings = True

    def __init__(self, weight: float, offset: float) -> None:
        super().__init__(weight)
        self.offset = float(offset)

    def similarity(self, detections: Sequence[Instance], tracks: Sequence[Track], context: FrameContext) -> np.ndarray:
        """``(len(detections), len(tracks))`` similarity; see the class docstring."""
        det = np.stack([d.embedding for d in detections]).astype(np.float64)
        trk = np.stack([t.embedding for t in tracks]).astype(np.float64)
        distance = np.sqrt(np.maximum(((det[:, None, :] - trk[None, :, :]) ** 2).sum(-1), 0.0))
        return self.offset - distance
