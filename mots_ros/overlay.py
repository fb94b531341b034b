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
    """``(H, W, 3) uint8`` RGB copy of the image with every tracked instance of ``result`` drawn on it."""
    index_map = result.instance_map
    if index_map is None:
        index_map = _index_map(image_rgb.shape[:2], [t.mask for t in result.instances])
    return _draw(image_rgb, index_map, [(t.track_id, t.bbox) for t in result.instances], alpha)


def draw_records(image_rgb: np.ndarray, records: list, *, alpha: float = 0.5) -> np.ndarray:
    """The same drawing for MOTS txt records of one frame (ignore regions skipped)."""
    from mots_ros.masks import bbox_from_mask, decode_rle

    masks = [decode_rle(r.rle) for r in records if not r.is_ignore]
    ids = [r.track_id for r in records if not r.is_ignore]
    boxes = [bbox_from_mask(m) for m in masks]
    kept = [i for i, box in enumerate(boxes) if box is not None]
    index_map = _index_map(image_rgb.shape[:2], [masks[i] for i in kept])
    return _draw(image_rgb, index_map, [(ids[i], boxes[i]) for i in kept], alpha)


def _index_map(shape, masks) -> np.ndarray:
    index_map = np.zeros(shape, np.int32)
    for i, mask in enumerate(masks, start=1):
        index_map[mask] = i
    return index_map


def _draw(image_rgb: np.ndarray, index_map: np.ndarray, tracks: list[tuple[int, tuple]], alpha: float) -> np.ndarray:
    import cv2

    canvas = image_rgb.copy()
    if not tracks:
        return canvas
    colours = np.array([(0, 0, 0)] + [track_colour(track_id) for track_id, _ in tracks], np.float32)
    covered = index_map > 0
    canvas[covered] = (canvas[covered] * (1.0 - alpha) + colours[index_map[covered]] * alpha).astype(np.uint8)
    for track_id, (x0, y0, x1, y1) in tracks:
        colour = track_colour(track_id)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 1)
        label = str(track_id)
        (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y0 - text_h - 4)
        cv2.rectangle(canvas, (x0, top), (x0 + text_w + 4, top + text_h + 4), colour, -1)
        cv2.putText(canvas, label, (x0 + 2, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
