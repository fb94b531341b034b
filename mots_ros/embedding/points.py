"""Turning instance masks into PointTrack point clouds (spec §5).

For each instance, in ascending id order:

- a context crop: the mask's box grown by ⌊0.2·length⌋ on each side, with the published clamp
  of the end to H−1 / W−1 (the last image row and column are never in a crop);
- 1000 foreground points drawn uniformly, with replacement, from the instance's pixels in the
  crop: ``[B, G, R, dv/128, du/128, 0, 0, 0]`` (colours in [0, 1], offsets from the instance's
  in-crop centroid);
- 500 environment points drawn uniformly, with replacement, from the crop's other pixels:
  ``[B, G, R, dv/128, du/128, e0, e1, e2]`` where ``e`` is the category embedding of the pixel
  (background, or another instance); all zeros when the crop has no other pixel;
- the box feature ``[x0/1242, y0/375, x1/1242, y1/375]`` with those constants for every frame size.

Everything is vectorised over instances and points; the only randomness comes from the given
``numpy.random.Generator``, so a seeded generator reproduces the clouds exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mots_ros.errors import InputError

#: Category embedding table (spec §5): 0 background, 1 the instance itself, 2 other instances, 3 unused.
CATEGORY_EMBEDDING = np.array(
    [
        [0.9479751586914062, 0.4561353325843811, 0.16707628965377808],
        [0.1, -0.1, 0.1],
        [0.5455077290534973, -0.6193588972091675, -2.629554510116577],
        [-0.1, 0.1, -0.1],
    ],
    np.float32,
)
OFFSET_SCALE = 128.0
#: The published code divides boxes by KITTI's size whatever the frame size (spec §12).
BOX_NORMALISER = np.array([1242.0, 375.0, 1242.0, 375.0], np.float32)
CONTEXT_RATIO = 0.2


@dataclass(frozen=True)
class PointClouds:
    """Point clouds of every instance of one frame.

    Attributes:
        instance_ids: ``(K,)`` ids from the instance map, ascending.
        points: ``(K, Nf + Ne, 8) float32`` clouds, foreground rows first.
        boxes: ``(K, 4) float32`` normalised box features.
        bboxes: ``(K, 4) int64`` inclusive pixel boxes ``(x0, y0, x1, y1)``.
        pixel_counts: ``(K,)`` number of pixels of each instance.
    """

    instance_ids: np.ndarray
    points: np.ndarray
    boxes: np.ndarray
    bboxes: np.ndarray
    pixel_counts: np.ndarray


def sample_points(
    label_map: np.ndarray,
    image_bgr: np.ndarray,
    rng: np.random.Generator,
    *,
    num_foreground: int = 1000,
    num_environment: int = 500,
    context_ratio: float = CONTEXT_RATIO,
    only_ids: list[int] | None = None,
) -> PointClouds:
    """Samples a point cloud for every instance of ``label_map``.

    Args:
        label_map: ``(H, W)`` integer instance map, 0 = background.
        image_bgr: ``(H, W, 3) uint8`` image in **BGR** order (the published colour order).
        rng: source of randomness; seed it to reproduce results.
        num_foreground: foreground points per instance (1000 published).
        num_environment: environment points per instance (500 published).
        context_ratio: crop growth per side, as a fraction of the box length (0.2 published).
        only_ids: sample clouds for these ids only; other instances still count as "other
            instance" environment pixels.
    """
    if label_map.ndim != 2:
        raise InputError(f"label_map must be (H, W), got shape {label_map.shape}")
    height, width = label_map.shape
    if image_bgr.shape != (height, width, 3) or image_bgr.dtype != np.uint8:
        raise InputError(
            f"image must be ({height}, {width}, 3) uint8 to match the label map, got {image_bgr.shape} {image_bgr.dtype}"
        )
    # numpy's nonzero is ~4x faster on a bool array than on int32, even counting the comparison.
    flat = np.flatnonzero(label_map != 0)
    labels = label_map.ravel()[flat]
    if only_ids is not None:
        keep = np.isin(labels, only_ids)
        flat, labels = flat[keep], labels[keep]
    rows, cols = np.divmod(flat, width)
    if labels.size and labels.min() >= 0 and labels.max() < 1 << 20:
        instance_ids = np.flatnonzero(np.bincount(labels))  # instance ids are small: no sort needed
    else:
        instance_ids = np.unique(labels)
    k = instance_ids.size
    if k == 0:
        return _empty(num_foreground + num_environment)

    # Group pixels by instance; the stable sort keeps row-major order inside each group
    # (for up to 65536 instances numpy sorts 16-bit keys by radix).
    instance = np.searchsorted(instance_ids, labels)
    order = np.argsort(instance.astype(np.uint16 if k <= 1 << 16 else np.int64), kind="stable")
    rows, cols, instance = rows[order], cols[order], instance[order]
    pixel_counts = np.bincount(instance, minlength=k)
    group_start = np.concatenate(([0], np.cumsum(pixel_counts)[:-1]))

    y0, y1 = np.minimum.reduceat(rows, group_start), np.maximum.reduceat(rows, group_start)
    x0, x1 = np.minimum.reduceat(cols, group_start), np.maximum.reduceat(cols, group_start)
    bboxes = np.stack([x0, y0, x1, y1], 1).astype(np.int64)

    crop_top, crop_bottom = _context_span(y0, y1, context_ratio, height)
    crop_left, crop_right = _context_span(x0, x1, context_ratio, width)
    inside = _inside(rows, cols, instance, crop_top, crop_bottom, crop_left, crop_right)
    foreground_counts = np.bincount(instance[inside], minlength=k)
    # An instance drawn only on the last row or column has no pixel in its published crop;
    # for it alone, let the crop reach the image edge instead of failing.
    edge_only = foreground_counts == 0
    if edge_only.any():
        crop_bottom[edge_only] = np.minimum(crop_bottom[edge_only] + 1, height)
        crop_right[edge_only] = np.minimum(crop_right[edge_only] + 1, width)
        inside = _inside(rows, cols, instance, crop_top, crop_bottom, crop_left, crop_right)
        foreground_counts = np.bincount(instance[inside], minlength=k)

    fg_rows, fg_cols, fg_instance = rows[inside], cols[inside], instance[inside]
    fg_start = np.concatenate(([0], np.cumsum(foreground_counts)[:-1]))
    # Pixels are grouped by instance and every group is non-empty, so segment sums are exact.
    centre_row = np.add.reduceat(fg_rows, fg_start) / foreground_counts
    centre_col = np.add.reduceat(fg_cols, fg_start) / foreground_counts

    picks = fg_start[:, None] + rng.integers(0, foreground_counts[:, None], size=(k, num_foreground))
    foreground = _features(image_bgr, fg_rows[picks], fg_cols[picks], centre_row, centre_col)

    env_rows, env_cols, has_environment = _sample_environment(
        fg_rows, fg_cols, fg_instance, fg_start, foreground_counts,
        crop_top, crop_bottom, crop_left, crop_right, num_environment, rng,
    )
    environment = _features(image_bgr, env_rows, env_cols, centre_row, centre_col)
    category = np.where(label_map[env_rows, env_cols] > 0, 2, 0)
    environment[:, :, 5:8] = CATEGORY_EMBEDDING[category]
    environment[~has_environment] = 0.0

    points = np.concatenate([foreground, environment], 1)
    boxes = (bboxes.astype(np.float32) / BOX_NORMALISER).astype(np.float32)
    return PointClouds(instance_ids, points, boxes, bboxes, pixel_counts)


def _context_span(first: np.ndarray, last: np.ndarray, ratio: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-open crop span around ``first..last`` (inclusive), with the published H−1 clamp."""
    length = last + 1 - first
    grow = np.floor(ratio * length).astype(np.int64)
    return np.maximum(0, first - grow), np.minimum(last + 1 + grow, size - 1)


def _inside(rows: np.ndarray, cols: np.ndarray, instance: np.ndarray, top: np.ndarray, bottom: np.ndarray,
            left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return (
        (rows >= top[instance]) & (rows < bottom[instance]) & (cols >= left[instance]) & (cols < right[instance])
    )


def _sample_environment(fg_rows: np.ndarray, fg_cols: np.ndarray, fg_instance: np.ndarray, fg_start: np.ndarray,
                        fg_counts: np.ndarray, top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray,
                        count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform draws, with replacement, from each crop's pixels that are not the instance.

    The j-th non-instance pixel of a crop (row-major) is found without enumerating the crop: with
    the instance's in-crop positions q_0 < q_1 < ... and t_i = q_i − i (non-instance pixels before
    q_i), it sits at position j + #{i : t_i <= j}. One searchsorted answers this for all instances
    at once, because each instance's keys are shifted into its own range.
    """
    crop_width = right - left
    area = (bottom - top) * crop_width
    env_counts = area - fg_counts
    area_start = np.concatenate(([0], np.cumsum(area)[:-1]))

    position = (fg_rows - top[fg_instance]) * crop_width[fg_instance] + (fg_cols - left[fg_instance])
    rank = np.arange(fg_rows.size) - fg_start[fg_instance]
    keys = position - rank + area_start[fg_instance]

    has_environment = env_counts > 0
    j = rng.integers(0, np.maximum(env_counts, 1)[:, None], size=(env_counts.size, count))
    before = np.searchsorted(keys, j + area_start[:, None], side="right") - fg_start[:, None]
    local = j + before
    env_rows = top[:, None] + local // crop_width[:, None]
    env_cols = left[:, None] + local % crop_width[:, None]
    # Instances without environment pixels get a harmless in-crop index; their rows are zeroed.
    env_rows = np.where(has_environment[:, None], env_rows, top[:, None])
    env_cols = np.where(has_environment[:, None], env_cols, left[:, None])
    return env_rows, env_cols, has_environment


def _features(image_bgr: np.ndarray, rows: np.ndarray, cols: np.ndarray, centre_row: np.ndarray,
              centre_col: np.ndarray) -> np.ndarray:
    features = np.zeros(rows.shape + (8,), np.float32)
    features[..., 0:3] = image_bgr[rows, cols] / np.float32(255.0)
    features[..., 3] = (rows - centre_row[:, None]) / OFFSET_SCALE
    features[..., 4] = (cols - centre_col[:, None]) / OFFSET_SCALE
    return features


def _empty(num_points: int) -> PointClouds:
    return PointClouds(
        instance_ids=np.zeros(0, np.int64),
        points=np.zeros((0, num_points, 8), np.float32),
        boxes=np.zeros((0, 4), np.float32),
        bboxes=np.zeros((0, 4), np.int64),
        pixel_counts=np.zeros(0, np.int64),
    )
