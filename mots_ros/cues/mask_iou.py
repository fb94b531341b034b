"""Mask overlap with the track's last mask (spec §7.2)."""

from __future__ import annotations

from mots_ros.cues import Cue
from mots_ros.masks import mask_iou


class MaskIoUCue(Cue):
    """IoU between the detection's mask and the track's last mask (weight γ; spec §7.1: 0.74 cars, 0.54 pedestrians)."""

    name = "mask_iou"

    def similarity(self, detections, tracks, context):
        return mask_iou([d.rle for d in detections], [t.rle for t in tracks])
