"""Ground-truth masks as the segmentation, with their ids removed: association measured alone (oracle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mots_ros.config import Config
from mots_ros.datasets import MotsRecord
from mots_ros.datatypes import Frame
from mots_ros.errors import InputError
from mots_ros.masks import decode_rle
from mots_ros.segmenters import Segmentation


class GroundTruthSegmenter:
    """Serves each frame's annotated masks, looked up by frame number.

    Masks are numbered in a random order (seeded, restarted by :meth:`reset`), so nothing about the
    ground-truth ids leaks into the tracker, not even through birth order. Ignore regions are left out.

    Args:
        annotations: ``{frame: records}`` of one sequence; :meth:`use_annotations` swaps in another.
        seed: seed of the numbering order.
    """

    name = "ground_truth"
    stage_names: tuple[str, ...] = ()

    def __init__(self, annotations: Mapping[int, Sequence[MotsRecord]] | None = None, *, seed: int = 0):
        self.seed = seed
        self.annotations: Mapping[int, Sequence[MotsRecord]] = annotations or {}
        self._rng = np.random.default_rng(seed)
        self._frame_index: int | None = None

    @classmethod
    def from_config(cls, config: Config) -> GroundTruthSegmenter:
        """Reads ``segmentation.annotations`` (a MOTS txt) when set; otherwise annotations come later."""
        from mots_ros.datasets import read_mots_txt, records_by_frame

        path = config.segmentation.annotations
        return cls(records_by_frame(read_mots_txt(path)) if path else None)

    def use_annotations(self, annotations: Mapping[int, Sequence[MotsRecord]]) -> None:
        """Another sequence's ``{frame: records}``; the numbering order restarts."""
        self.annotations = annotations
        self.reset()

    def reset(self) -> None:
        """Restarts the numbering order from its seed."""
        self._rng = np.random.default_rng(self.seed)

    def begin_frame(self, frame: Frame) -> None:
        """Picks the frame's annotations by its number."""
        if frame.frame_index is None:
            raise InputError("the ground_truth segmenter looks masks up by frame number, and this frame has none")
        self._frame_index = frame.frame_index

    def segment(self, image_rgb: np.ndarray) -> Segmentation:
        """The annotated masks of the frame named in :meth:`begin_frame`, renumbered."""
        height, width = image_rgb.shape[:2]
        if self._frame_index is None:
            raise InputError("the ground_truth segmenter was not told the frame number (begin_frame)")
        records = [r for r in self.annotations.get(self._frame_index, []) if not r.is_ignore]
        labels = np.zeros((height, width), np.int32)
        class_ids = {}
        for new_id, position in enumerate(self._rng.permutation(len(records)), start=1):
            record = records[position]
            mask = decode_rle(record.rle)
            if mask.shape != (height, width):
                raise InputError(f"annotation of frame {self._frame_index} is {mask.shape[0]}x{mask.shape[1]}, "
                                 f"the image {height}x{width}")
            labels[mask] = new_id
            class_ids[new_id] = record.class_id
        return Segmentation.from_label_map(labels, class_ids)
