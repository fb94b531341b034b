"""Post-processing on the device that ran the networks (torch): clustering, point sampling, RLE runs.

On a GPU (a Jetson's included) the instance map, the point clouds and the masks' runs are made
where the network output already is; only the run lengths and the embeddings' inputs-to-be cross to
the host. The code is the published algorithm of :mod:`mots_ros.segmentation.clustering` and
:mod:`mots_ros.embedding.points`, written for whole-tensor steps instead of the numpy version's
sorted windows, and on CPU torch it gives the same instance maps, clouds and runs as numpy
(``test/test_device_postprocessing.py`` checks it).

Point sampling draws its random indices with the same numpy generator as the numpy version: only
the per-instance pixel counts (K numbers) go to the host for that, so a replay reproduces the same
clouds on either path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mots_ros.embedding.points import BOX_NORMALISER, CATEGORY_EMBEDDING, CONTEXT_RATIO, OFFSET_SCALE, PointClouds
from mots_ros.errors import InputError
from mots_ros.segmentation.clustering import X_STEP, Y_STEP


def _torch() -> Any:
    import torch

    return torch


def cluster_with_scores_torch(raw: Any, threshold: float = 0.94, min_pixel: int = 160,
                              n_sigma: int = 2) -> tuple[Any, Any]:
    """:func:`mots_ros.segmentation.clustering.cluster_with_scores` on a ``(C, H, W)`` float32 tensor, on its device.

    Returns:
        ``(labels, scores)``: ``(H, W) int32`` and ``(K,) float32`` tensors on ``raw``'s device.
    """
    torch = _torch()
    if raw.ndim != 3 or raw.shape[0] < 3 + n_sigma or n_sigma not in (1, 2):
        raise InputError(f"raw network output must be (>= {3 + n_sigma}, H, W) with n_sigma 1 or 2, got {tuple(raw.shape)}")
    raw = raw.float()
    device = raw.device
    _, height, width = raw.shape
    labels = torch.zeros((height, width), dtype=torch.int32, device=device)
    seed_logit = raw[2 + n_sigma].reshape(-1)
    flat = torch.nonzero(seed_logit > 0).reshape(-1)
    seed = 1.0 / (1.0 + torch.exp(-seed_logit[flat]))
    keep = seed > 0.5
    flat, seed = flat[keep], seed[keep]
    n = int(flat.numel())
    no_scores = torch.zeros(0, dtype=torch.float32, device=device)
    if n <= min_pixel:
        return labels, no_scores
    rows, cols = flat // width, flat % width
    # The grid rounded from float64 once, as the numpy version does (see clustering._grid_axes).
    grid_x = torch.from_numpy((np.arange(width, dtype=np.float64) * X_STEP).astype(np.float32)).to(device)
    grid_y = torch.from_numpy((np.arange(height, dtype=np.float64) * Y_STEP).astype(np.float32)).to(device)
    emb_x = torch.tanh(raw[0].reshape(-1)[flat]) + grid_x[cols]
    emb_y = torch.tanh(raw[1].reshape(-1)[flat]) + grid_y[rows]
    sigma = torch.stack([raw[2 + c].reshape(-1)[flat] for c in range(n_sigma)])

    strong = torch.nonzero(seed.double() >= threshold).reshape(-1)
    # Descending seed, ties by ascending index: the order repeated argmax visits them.
    strong = strong[torch.sort(seed[strong], descending=True, stable=True).indices]
    strong_open = torch.ones(n, dtype=torch.bool, device=device)  # by candidate index: still a possible centre
    unclustered = torch.ones(n, dtype=torch.bool, device=device)
    ids = torch.zeros(n, dtype=torch.int32, device=device)
    strong_host = strong.cpu().numpy()
    scores = []
    next_id = 1
    n_unclustered = n
    cursor = 0
    open_host = None
    while n_unclustered > min_pixel:
        if open_host is None:  # refreshed after every proposal: one small copy instead of a sync per seed
            open_host = strong_open[strong].cpu().numpy()
        while cursor < strong_host.size and not open_host[cursor]:
            cursor += 1
        if cursor == strong_host.size:
            break
        centre = int(strong_host[cursor])
        cursor += 1
        unclustered[centre] = False
        strong_open[centre] = False
        n_unclustered -= 1
        s = torch.exp(sigma[:, centre] * 10.0)
        s_x, s_y = (s[0], s[0]) if n_sigma == 1 else (s[0], s[1])
        dx, dy = emb_x - emb_x[centre], emb_y - emb_y[centre]
        proposal = torch.exp(-(dx * dx * s_x + dy * dy * s_y)) > 0.5
        fresh = proposal & unclustered
        proposal_size, fresh_size = int(proposal.sum()), int(fresh.sum())
        if proposal_size > min_pixel and 2 * fresh_size > proposal_size:
            ids[proposal] = next_id  # overwrites earlier ids, as published
            scores.append(seed[centre])
            next_id += 1
        unclustered &= ~fresh
        n_unclustered -= fresh_size
        if fresh_size:
            strong_open &= ~fresh
            open_host = None
    labels.view(-1)[flat] = ids
    return labels, torch.stack(scores) if scores else no_scores


def column_runs_torch(labels: Any, instance_ids: list[int]) -> list[np.ndarray]:
    """Uncompressed COCO RLE counts (column-major, starting with background) of each id, computed on the device.

    Only the run lengths come back to the host; :func:`mots_ros.masks.rle_from_runs` compresses them.
    """
    torch = _torch()
    height, width = labels.shape
    column_major = labels.t().reshape(-1)
    total = height * width
    runs = []
    for instance_id in instance_ids:
        mask = (column_major == instance_id).to(torch.int8)
        changes = torch.nonzero(mask[1:] != mask[:-1]).reshape(-1) + 1
        edges = torch.cat([torch.zeros(1, dtype=changes.dtype, device=changes.device), changes,
                           torch.full((1,), total, dtype=changes.dtype, device=changes.device)])
        counts = (edges[1:] - edges[:-1]).cpu().numpy()
        if bool(mask[0]):  # COCO runs start with a (possibly empty) background run
            counts = np.concatenate(([0], counts))
        runs.append(counts.astype(np.uint32))
    return runs


def sample_points_torch(labels: Any, image_bgr: Any, rng: np.random.Generator, *, num_foreground: int = 1000,
                        num_environment: int = 500, context_ratio: float = CONTEXT_RATIO,
                        points_to_host: bool = True) -> tuple[PointClouds, Any]:
    """:func:`mots_ros.embedding.points.sample_points` with the map and the ``(H, W, 3) uint8`` image as device tensors.

    Returns:
        ``(clouds, points)``: the clouds with numpy fields for the host, and the same ``(K, N, 8)``
        points as a tensor on the device, ready for a torch embedding network. With
        ``points_to_host`` False the clouds' ``points`` stay ``(K, 0, 8)``: nothing is copied for them.
    """
    torch = _torch()
    device = labels.device
    height, width = labels.shape
    flat = torch.nonzero(labels.reshape(-1) != 0).reshape(-1)
    values = labels.reshape(-1)[flat].long()
    instance_ids = torch.unique(values)
    k = int(instance_ids.numel())
    total_points = num_foreground + num_environment
    if k == 0:
        empty = PointClouds(np.zeros(0, np.int64), np.zeros((0, total_points, 8), np.float32), np.zeros((0, 4), np.float32),
                            np.zeros((0, 4), np.int64), np.zeros(0, np.int64))
        return empty, torch.zeros((0, total_points, 8), device=device)
    instance = torch.searchsorted(instance_ids, values)
    order = torch.sort(instance, stable=True).indices  # row-major inside each instance
    flat, instance = flat[order], instance[order]
    rows, cols = flat // width, flat % width
    pixel_counts = torch.bincount(instance, minlength=k)
    bboxes = _instance_boxes(instance, rows, cols, k)
    x0, y0, x1, y1 = bboxes.unbind(1)

    def span(first: Any, last: Any, size: int) -> tuple[Any, Any]:
        grow = torch.floor(context_ratio * (last + 1 - first).double()).long()
        return torch.clamp(first - grow, min=0), torch.clamp(last + 1 + grow, max=size - 1)

    top, bottom = span(y0, y1, height)
    left, right = span(x0, x1, width)

    def inside_of() -> Any:
        return (rows >= top[instance]) & (rows < bottom[instance]) & (cols >= left[instance]) & (cols < right[instance])

    inside = inside_of()
    fg_counts = torch.bincount(instance[inside], minlength=k)
    edge_only = fg_counts == 0
    if bool(edge_only.any()):  # as the numpy version: let such a crop reach the image edge
        bottom = torch.where(edge_only, torch.clamp(bottom + 1, max=height), bottom)
        right = torch.where(edge_only, torch.clamp(right + 1, max=width), right)
        inside = inside_of()
        fg_counts = torch.bincount(instance[inside], minlength=k)
    fg_rows, fg_cols, fg_instance = rows[inside], cols[inside], instance[inside]
    fg_start = torch.cumsum(fg_counts, 0) - fg_counts
    centre_row = torch.zeros(k, dtype=torch.float64, device=device).index_add_(0, fg_instance, fg_rows.double()) / fg_counts
    centre_col = torch.zeros(k, dtype=torch.float64, device=device).index_add_(0, fg_instance, fg_cols.double()) / fg_counts

    crop_width = right - left
    area = (bottom - top) * crop_width
    env_counts = area - fg_counts
    # The random draws need only the counts: the same numpy generator as the numpy path, in the same order.
    fg_counts_host, env_counts_host = fg_counts.cpu().numpy(), env_counts.cpu().numpy()
    picks_host = rng.integers(0, fg_counts_host[:, None], size=(k, num_foreground))
    j_host = rng.integers(0, np.maximum(env_counts_host, 1)[:, None], size=(k, num_environment))
    picks = fg_start[:, None] + torch.from_numpy(picks_host).to(device)
    foreground = _features_torch(image_bgr, fg_rows[picks], fg_cols[picks], centre_row, centre_col)

    area_start = torch.cumsum(area, 0) - area
    position = (fg_rows - top[fg_instance]) * crop_width[fg_instance] + (fg_cols - left[fg_instance])
    rank = torch.arange(fg_rows.numel(), device=device) - fg_start[fg_instance]
    keys = position - rank + area_start[fg_instance]
    j = torch.from_numpy(j_host).to(device)
    before = torch.searchsorted(keys, (j + area_start[:, None]).contiguous(), right=True) - fg_start[:, None]
    local = j + before
    has_environment = env_counts > 0
    env_rows = torch.where(has_environment[:, None], top[:, None] + local // crop_width[:, None], top[:, None])
    env_cols = torch.where(has_environment[:, None], left[:, None] + local % crop_width[:, None], left[:, None])
    environment = _features_torch(image_bgr, env_rows, env_cols, centre_row, centre_col)
    category = torch.where(labels[env_rows, env_cols] > 0, 2, 0)
    environment[:, :, 5:8] = torch.from_numpy(CATEGORY_EMBEDDING).to(device)[category]
    environment[~has_environment] = 0.0
    points = torch.cat([foreground, environment], 1)
    bboxes_host = bboxes.cpu().numpy().astype(np.int64)
    host_points = points.cpu().numpy() if points_to_host else np.zeros((k, 0, 8), np.float32)
    clouds = PointClouds(instance_ids.cpu().numpy().astype(np.int64), host_points,
                         (bboxes_host.astype(np.float32) / BOX_NORMALISER).astype(np.float32), bboxes_host,
                         pixel_counts.cpu().numpy().astype(np.int64))
    return clouds, points


def _features_torch(image_bgr: Any, rows: Any, cols: Any, centre_row: Any, centre_col: Any) -> Any:
    torch = _torch()
    features = torch.zeros((*rows.shape, 8), dtype=torch.float32, device=rows.device)
    features[..., 0:3] = image_bgr[rows, cols].float() / 255.0
    # float64 differences rounded to float32 once, as numpy computes them
    features[..., 3] = ((rows.double() - centre_row[:, None]) / OFFSET_SCALE).float()
    features[..., 4] = ((cols.double() - centre_col[:, None]) / OFFSET_SCALE).float()
    return features


def label_boxes_torch(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mots_ros.masks.label_boxes` of a map on the device: only the ids and boxes come back."""
    torch = _torch()
    width = labels.shape[1]
    flat = torch.nonzero(labels.reshape(-1) > 0).reshape(-1)
    values = labels.reshape(-1)[flat].long()
    ids = torch.unique(values)
    if ids.numel() == 0:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.int64)
    boxes = _instance_boxes(torch.searchsorted(ids, values), flat // width, flat % width, int(ids.numel()))
    return ids.cpu().numpy().astype(np.int64), boxes.cpu().numpy().astype(np.int64)


def _instance_boxes(instance: Any, rows: Any, cols: Any, k: int) -> Any:
    """Inclusive ``(K, 4)`` ``(x0, y0, x1, y1)`` boxes of pixels given by row, column and instance index."""
    torch = _torch()

    def reduce(values: Any, how: str) -> Any:
        start = torch.iinfo(torch.long).max if how == "amin" else -1
        return torch.full((k,), start, device=values.device, dtype=torch.long).scatter_reduce(0, instance, values, how)

    return torch.stack([reduce(cols, "amin"), reduce(rows, "amin"), reduce(cols, "amax"), reduce(rows, "amax")], 1)


def resize_labels_nearest_torch(labels: Any, height: int, width: int) -> Any:
    """The map resized as ``cv2.resize(..., INTER_NEAREST)`` resizes it, on the map's device.

    OpenCV's source pixel for each output row and column is read off OpenCV itself (an index ramp
    resized once), so both paths pick exactly the same pixels.
    """
    import cv2

    torch = _torch()
    source_height, source_width = labels.shape

    def source_indices(source: int, target: int) -> Any:
        ramp = np.tile(np.arange(source, dtype=np.int32), (2, 1))
        picked = cv2.resize(ramp, (target, 2), interpolation=cv2.INTER_NEAREST)[0]
        return torch.from_numpy(picked.astype(np.int64)).to(labels.device)

    return labels[source_indices(source_height, height)][:, source_indices(source_width, width)]
