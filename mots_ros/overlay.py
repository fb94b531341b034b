"""Drawing tracked instances: one fixed colour per track id, mask tint, box and id label."""

from __future__ import annotations

import colorsys

import numpy as np

from mots_ros.datatypes import FrameResult


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread RGB colour for a track id (golden-ratio hue steps)."""
    hue = (track_id * 0.6180339887498949) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_overlay(image_rgb: np.ndarray, result: FrameResult, *, alpha: float = 0.5) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB copy of the image with every tracked instance drawn on it."""
    import cv2

    canvas = image_rgb.copy()
    if not result.instances:
        return canvas
    colours = np.array([(0, 0, 0)] + [track_colour(t.track_id) for t in result.instances], np.float32)
    index_map = result.instance_map
    if index_map is None:
        index_map = np.zeros(image_rgb.shape[:2], np.int32)
        for i, tracked in enumerate(result.instances, start=1):
            index_map[tracked.mask] = i
    covered = index_map > 0
    tint = colours[index_map[covered]]
    canvas[covered] = (canvas[covered] * (1.0 - alpha) + tint * alpha).astype(np.uint8)
    for tracked in result.instances:
        x0, y0, x1, y1 = tracked.bbox
        colour = track_colour(tracked.track_id)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 1)
        label = str(tracked.track_id)
        (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y0 - text_h - 4)
        cv2.rectangle(canvas, (x0, top), (x0 + text_w + 4, top + text_h + 4), colour, -1)
        cv2.putText(canvas, label, (x0 + 2, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
