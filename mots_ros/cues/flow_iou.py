"""Mask overlap after moving the track's last mask by optical flow (PointTrack++'s warped IoU)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mots_ros.cues import Cue, FrameContext
from mots_ros.datatypes import Instance
from mots_ros.masks import Rle, mask_iou, rle_crop, rle_from_pixels

if TYPE_CHECKING:
    from mots_ros.tracker import Track


class FlowIoUCue(Cue):
    """IoU between the detection and the track's last mask moved forward by optical flow.

    Only tracks matched in the previous frame can be warped (the flow spans one frame); for the
    others, and for frames without flow, this cue equals the plain mask IoU.
    """

    name = "flow_iou"

    def similarity(self, detections: Sequence[Instance], tracks: Sequence[Track], context: FrameContext) -> np.ndarray:
        """``(len(detections), len(tracks))`` similarity; see the class docstring."""
        det_rles = [d.rle for d in detections]
        if context.flow is None:
            return mask_iou(det_rles, [t.rle for t in tracks])
        track_rles = [warp_rle(t.rle, context.flow) if t.last_frame_serial == context.frame_serial - 1 else t.rle
                      for t in tracks]
        return mask_iou(det_rles, track_rles)


def warp_rle(rle: Rle, flow: np.ndarray) -> Rle:
    """:func:`warp_mask` of an RLE, touching only the mask's own pixels (no full-frame decode)."""
    height, width = int(rle["size"][0]), int(rle["size"][1])
    crop, x0, y0 = rle_crop(rle)
    rows, cols = np.nonzero(crop)
    rows, cols = rows + y0, cols + x0
    moved_cols = np.rint(cols + flow[rows, cols, 0]).astype(np.int64)
    moved_rows = np.rint(rows + flow[rows, cols, 1]).astype(np.int64)
    keep = (moved_rows >= 0) & (moved_rows < height) & (moved_cols >= 0) & (moved_cols < width)
    return rle_from_pixels(moved_rows[keep], moved_cols[keep], height, width)


def warp_mask(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Moves each true pixel of an ``(H, W) bool`` mask by ``(H, W, 2)`` flow (dx, dy), to the nearest pixel."""
    height, width = mask.shape
    rows, cols = np.nonzero(mask)
    moved_cols = np.rint(cols + flow[rows, cols, 0]).astype(np.int64)
    moved_rows = np.rint(rows + flow[rows, cols, 1]).astype(np.int64)
    keep = (moved_rows >= 0) & (moved_rows < height) & (moved_cols >= 0) & (moved_cols < width)
    warped = np.zeros_like(mask, dtype=bool)
    warped[moved_rows[keep], moved_cols[keep]] = True
    return warped
