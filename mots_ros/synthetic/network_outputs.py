"""The raw SpatialEmbedding output an ideal network would produce for a given instance map.

Every instance pixel's offset points at its instance's centre (plus optional noise), the
bandwidth is tight enough to separate instances 20 px apart, and seeds are high on instances and
low elsewhere. Clustering such an output recovers the instances, which makes it a ground truth
for clustering tests, a stand-in network for pipeline tests, and a realistic benchmark input.
"""

from __future__ import annotations

import numpy as np

from mots_ros.segmentation.clustering import coordinate_grid

IDEAL_BANDWIDTH = 5000.0  # exp(10 * sigma): separates centres 20 px apart, tolerates small noise


def ideal_raw_output(
    label_map: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    offset_noise: float = 0.0,
    seed_logit: float = 5.0,
) -> np.ndarray:
    """``(5, H, W) float32`` output (offsets, 2 sigmas, seed logit) for an ``(H, W)`` instance map.

    Args:
        label_map: 0 = background, positive ids = instances.
        rng: noise source; required when ``offset_noise`` > 0.
        offset_noise: standard deviation of noise on the embedding, in grid units (x: 2/2047 per px).
        seed_logit: logit on instance pixels; background gets its negative.
    """
    height, width = label_map.shape
    grid = coordinate_grid(height, width)
    target = grid.copy()
    ids = np.unique(label_map)
    ids = ids[ids > 0]
    for instance_id in ids:
        mask = label_map == instance_id
        target[:, mask] = grid[:, mask].mean(axis=1, keepdims=True)
    if offset_noise > 0:
        if rng is None:
            raise ValueError("offset_noise needs an rng")
        target += rng.normal(0.0, offset_noise, target.shape).astype(np.float32)
    raw = np.empty((5, height, width), np.float32)
    raw[0:2] = np.arctanh(np.clip(target - grid, -0.999, 0.999))
    raw[2:4] = np.log(IDEAL_BANDWIDTH) / 10.0
    raw[4] = np.where(label_map > 0, seed_logit, -seed_logit)
    return raw


def random_instance_map(height: int, width: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(H, W) int32`` map of ``count`` car-sized ellipses, later ones occluding earlier ones."""
    rows, cols = np.mgrid[0:height, 0:width]
    label_map = np.zeros((height, width), np.int32)
    for instance_id in range(1, count + 1):
        radius_y, radius_x = rng.uniform(18, 45), rng.uniform(30, 90)
        centre_y = rng.uniform(radius_y, height - radius_y)
        centre_x = rng.uniform(radius_x, width - radius_x)
        inside = ((rows - centre_y) / radius_y) ** 2 + ((cols - centre_x) / radius_x) ** 2 < 1.0
        label_map[inside] = instance_id
    return label_map
