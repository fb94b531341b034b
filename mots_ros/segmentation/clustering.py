"""Greedy seed clustering of SpatialEmbedding outputs into an instance map (spec §3.2).

The algorithm is the published one, step for step: the same seed order, acceptance rule, overwrite
rule and ids. Only the bookkeeping is reorganised for speed:

- seeds are visited in one pre-sorted order instead of an argmax per step (a stable sort breaks
  ties by pixel index, as argmax does);
- candidate pixels are kept sorted by their x-embedding, quantised to 16 bits, so each proposal
  only evaluates the pixels whose x-distance can pass the bandwidth test; every pixel it skips
  would fail it. Proposals are used as sets, so the order inside a quantisation step is free.
"""

from __future__ import annotations

import math

import numpy as np

from mots_ros.errors import InputError

#: The published coordinate grid is 1024 rows × 2048 columns with these spacings (spec §2.5).
GRID_ROWS, GRID_COLS = 1024, 2048
X_STEP = 2.0 / (GRID_COLS - 1)
Y_STEP = 1.0 / (GRID_ROWS - 1)

# dist > 0.5  <=>  sum_c s_c (E_c - centre_c)^2 < ln 2. The window bound gets slack so that
# float32 rounding can never make it exclude a pixel the exact test accepts.
_LN2_WITH_SLACK = float(np.log(2.0)) * 1.001 + 1e-6


def coordinate_grid(height: int, width: int) -> np.ndarray:
    """The ``(2, H, W) float32`` pixel-coordinate grid ("xym"): x first, then y.

    Within 1024 × 2048 it is the published grid (x = j·2/2047, y = i/1023). Larger frames extend
    it with the same spacing, so every pixel keeps its published coordinate.
    """
    x, y = _grid_axes(height, width)
    grid = np.empty((2, height, width), np.float32)
    grid[0] = x[None, :]
    grid[1] = y[:, None]
    return grid


def _grid_axes(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    # Rounded once from float64; torch.linspace differs from this by at most 1 ulp on a few values.
    x = (np.arange(width, dtype=np.float64) * X_STEP).astype(np.float32)
    y = (np.arange(height, dtype=np.float64) * Y_STEP).astype(np.float32)
    return x, y


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def _descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices of positive float32 ``scores`` by descending value, ties by ascending index.

    This is the order in which repeated argmax visits them. Positive float32 bit patterns sort
    like their values, so one sort of unique int64 keys replaces a slower stable float sort.
    """
    bits = scores.astype(np.float32).view(np.int32).astype(np.int64)
    keys = ((0x7FFFFFFF - bits) << 32) | np.arange(scores.size, dtype=np.int64)
    return np.sort(keys) & 0xFFFFFFFF


def _key_window(low: float, high: float, x_min: float, key_scale: float) -> tuple[int, int]:
    """Keys ``[first, last]`` of every pixel with ``low <= x <= high``.

    Pixel keys are computed in float32; computing the bounds in float64 differs from that by far
    less than one key, so one key of slack on each side makes the window a safe superset.
    """
    if not low <= high:  # NaN centre or bandwidth: the proposal is empty, as the exact test finds
        return 1, 0
    first = math.floor((low - x_min) * key_scale) - 1
    last = math.floor((high - x_min) * key_scale) + 1
    return min(max(first, 0), 65535), min(max(last, 0), 65535)


def check_raw_output(raw: np.ndarray, n_sigma: int) -> None:
    """Raises InputError unless ``raw`` is a finite ``(2 + n_sigma + 1, H, W)`` float array."""
    if not isinstance(raw, np.ndarray) or raw.ndim != 3:
        raise InputError(f"raw network output must be a (C, H, W) array, got {getattr(raw, 'shape', type(raw))}")
    if raw.shape[0] < 3 + n_sigma:
        raise InputError(f"raw network output needs {3 + n_sigma} channels for n_sigma={n_sigma}, got {raw.shape[0]}")
    if n_sigma not in (1, 2):
        raise InputError(f"n_sigma must be 1 or 2, got {n_sigma}")


def cluster_instances(
    raw: np.ndarray, threshold: float = 0.94, min_pixel: int = 160, n_sigma: int = 2
) -> np.ndarray:
    """Clusters raw SpatialEmbedding outputs into non-overlapping instances (spec §3.2).

    Args:
        raw: ``(C, H, W) float32`` network output: offset-x, offset-y, ``n_sigma`` sigma channels,
            then the seed logit (channel ``2 + n_sigma``).
        threshold: minimum seed score of a cluster centre; the loop stops at the first seed below
            it. 0.94 for the official car model.
        min_pixel: a proposal needs more than this many pixels, and clustering stops when no more
            than this many candidates are left. 160 for cars.
        n_sigma: 2 (separate x and y bandwidths, the car model) or 1 (isotropic, Cityscapes).

    Returns:
        ``(H, W) int32`` instance map: 0 is background, instances are 1..K in seed-score order.
        Later proposals overwrite earlier ids, as in the published code.
    """
    labels, _ = cluster_with_scores(raw, threshold, min_pixel, n_sigma)
    return labels


def cluster_with_scores(
    raw: np.ndarray, threshold: float = 0.94, min_pixel: int = 160, n_sigma: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cluster_instances` plus the seed score of each instance's centre.

    Returns:
        ``(labels, scores)``: the ``(H, W) int32`` map and ``(K,) float32`` scores where
        ``scores[k - 1]`` belongs to id k. An id whose pixels were all overwritten later is
        absent from the map but keeps its slot in ``scores``.
    """
    check_raw_output(raw, n_sigma)
    if min_pixel < 0:
        raise InputError(f"min_pixel must be >= 0, got {min_pixel}")
    _, height, width = raw.shape
    raw = raw.astype(np.float32, copy=False)
    labels = np.zeros((height, width), np.int32)
    no_scores = np.zeros(0, np.float32)

    # sigmoid(x) > 0.5 needs x > 0; evaluating the sigmoid only there saves a full-image pass.
    # A cropped, non-contiguous output is addressed by (row, col), so it is never copied whole.
    seed_channel = raw[2 + n_sigma]
    if raw.flags.c_contiguous:  # flat indexing is faster when it needs no copy
        flat = np.flatnonzero(seed_channel.ravel() > 0)
        rows, cols = np.divmod(flat, width)
        seed_logit = seed_channel.ravel()[flat]
    else:
        rows, cols = np.nonzero(seed_channel > 0)
        flat = rows * width + cols
        seed_logit = seed_channel[rows, cols]
    seed = _sigmoid(seed_logit)
    is_candidate = seed > 0.5
    rows, cols, flat, seed = rows[is_candidate], cols[is_candidate], flat[is_candidate], seed[is_candidate]
    n = rows.size
    if n <= min_pixel:
        return labels, no_scores

    def gather(channel: int) -> np.ndarray:
        return raw[channel].ravel()[flat] if raw.flags.c_contiguous else raw[channel][rows, cols]

    # Embedding and sigmas in one array, so that sorting by x permutes them in one pass.
    grid_x, grid_y = _grid_axes(height, width)
    values = np.empty((2 + n_sigma, n), np.float32)
    values[0] = np.tanh(gather(0)) + grid_x[cols]
    values[1] = np.tanh(gather(1)) + grid_y[rows]
    for c in range(n_sigma):
        values[2 + c] = gather(2 + c)

    # Only seeds >= threshold can ever be a centre: the loop stops at the first one below
    # (compared in float64, as the published code does).
    strong = np.flatnonzero(seed.astype(np.float64) >= threshold)
    strong = strong[_descending_order(seed[strong])]

    # Keep pixels sorted by quantised x-embedding: a proposal then only needs the slice of pixels
    # whose x-distance alone can pass the bandwidth test. A 16-bit key sorts by radix, 3x faster
    # than sorting the floats; the quantisation is monotone, so the window stays exact.
    # A NaN output never joins a proposal (its distance is NaN), so its key does not matter.
    x_nan = np.isnan(values[0])
    any_nan = bool(x_nan.any())
    x_valid = values[0][~x_nan] if any_nan else values[0]
    x_min, x_span = (float(x_valid.min()), float(x_valid.max() - x_valid.min())) if x_valid.size else (0.0, 0.0)
    key_scale = 65535.0 / x_span if x_span > 0 else 0.0
    scaled = (values[0] - np.float32(x_min)) * np.float32(key_scale)
    if any_nan:
        scaled[x_nan] = 0.0
    x_key = scaled.astype(np.uint16)
    by_x = np.argsort(x_key, kind="stable")
    x_key, values, seed_by_x = x_key[by_x], np.take(values, by_x, axis=1), seed[by_x]  # take: 2x faster here
    emb_x, emb_y, sigma = values[0], values[1], values[2:]
    x_position = np.empty(n, np.intp)
    x_position[by_x] = np.arange(n)
    strong = x_position[strong]
    strong_rank = np.full(n, -1, np.intp)
    strong_rank[strong] = np.arange(strong.size)
    strong_open = np.ones(strong.size + 1, bool)  # the extra slot marks "no seed left"

    unclustered = np.ones(n, bool)
    n_unclustered = n
    ids = np.zeros(n, np.int32)
    next_id = 1
    centre_scores = []
    cursor = 0
    while n_unclustered > min_pixel:
        cursor += int(np.argmax(strong_open[cursor:]))
        if cursor == strong.size:
            break  # the best unclustered seed is below the threshold
        centre = strong[cursor]
        strong_open[cursor] = False
        unclustered[centre] = False
        n_unclustered -= 1

        centre_x, centre_y = emb_x[centre], emb_y[centre]
        s = np.exp(sigma[:, centre] * np.float32(10.0))
        s_x, s_y = (s[0], s[0]) if n_sigma == 1 else (s[0], s[1])
        half_width = math.sqrt(_LN2_WITH_SLACK / max(float(s_x), 1e-30))
        first_key, last_key = _key_window(float(centre_x) - half_width, float(centre_x) + half_width, x_min, key_scale)
        lo = int(np.searchsorted(x_key, first_key, side="left"))
        hi = max(lo, int(np.searchsorted(x_key, last_key, side="right")))

        dx = emb_x[lo:hi] - centre_x
        dy = emb_y[lo:hi] - centre_y
        dist = np.exp(-(dx * dx * s_x + dy * dy * s_y))
        proposal = np.flatnonzero(dist > 0.5) + lo
        fresh = proposal[unclustered[proposal]]
        if proposal.size > min_pixel and 2 * fresh.size > proposal.size:
            ids[proposal] = next_id  # overwrites earlier ids, as published
            centre_scores.append(seed_by_x[centre])
            next_id += 1
        unclustered[fresh] = False
        n_unclustered -= fresh.size
        fresh_rank = strong_rank[fresh]
        strong_open[fresh_rank[fresh_rank >= 0]] = False

    labels.ravel()[flat[by_x]] = ids
    return labels, np.asarray(centre_scores, np.float32)
