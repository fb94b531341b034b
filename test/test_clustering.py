"""cluster_instances must equal a literal implementation of spec §3.2 on crafted outputs."""

import numpy as np
import pytest

from mots_ros.errors import InputError
from mots_ros.segmentation import cluster_instances, cluster_with_scores, coordinate_grid
from mots_ros.synthetic.network_outputs import ideal_raw_output, random_instance_map


def reference_clustering(raw, threshold=0.94, min_pixel=160, n_sigma=2):
    """Spec §3.2 step by step: argmax seed each round, full distance map, plain loops."""
    _, height, width = raw.shape
    xym = np.zeros((2, height, width), np.float32)
    for i in range(height):
        for j in range(width):
            xym[0, i, j] = np.float32(j * (2.0 / 2047))
            xym[1, i, j] = np.float32(i * (1.0 / 1023))
    embedding = np.tanh(raw[0:2]) + xym
    sigma = raw[2 : 2 + n_sigma]
    seed = (np.float32(1) / (np.float32(1) + np.exp(-raw[2 + n_sigma]))).astype(np.float32)
    out = np.zeros((height, width), np.int32)
    candidate = seed > 0.5
    if candidate.sum() <= min_pixel:
        return out
    emb, sig, score = embedding[:, candidate], sigma[:, candidate], seed[candidate]
    unclustered = np.ones(score.size, np.float32)
    ids = np.zeros(score.size, np.int32)
    count = 1
    while unclustered.sum() > min_pixel:
        masked_scores = score * unclustered
        index = int(np.argmax(masked_scores))
        if float(masked_scores[index]) < threshold:
            break
        centre = emb[:, index : index + 1]
        unclustered[index] = 0
        s = np.exp(sig[:, index : index + 1] * np.float32(10))
        dist = np.exp(-np.sum((emb - centre) ** 2 * s, 0))
        proposal = dist > 0.5
        if proposal.sum() > min_pixel and unclustered[proposal].sum() / proposal.sum() > 0.5:
            ids[proposal] = count
            count += 1
        unclustered[proposal] = 0
    out[candidate] = ids
    return out


def crafted_output(height, width, n_instances, rng, noise):
    """Overlapping ellipses with noisy offsets, varied bandwidths and seeds, plus weak background seeds."""
    grid = coordinate_grid(height, width)
    raw = np.zeros((5, height, width), np.float32)
    raw[4] = rng.normal(-2.0, 1.5, (height, width))  # background: some candidates, few strong seeds
    raw[2:4] = rng.uniform(0.5, 0.8, (2, height, width))  # ... with small proposals, mostly rejected
    target = grid + rng.normal(0, 0.05, grid.shape).astype(np.float32)
    rows, cols = np.mgrid[0:height, 0:width]
    for _ in range(n_instances):
        cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        ry, rx = rng.uniform(6, 30), rng.uniform(10, 60)
        inside = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 < 1
        centre = np.array([cx * 2 / 2047, cy / 1023], np.float32) + rng.normal(0, 0.01, 2).astype(np.float32)
        target[:, inside] = centre[:, None] + rng.normal(0, noise, (2, inside.sum())).astype(np.float32)
        raw[2][inside] = rng.uniform(0.4, 0.75) + rng.normal(0, 0.03, inside.sum())
        raw[3][inside] = rng.uniform(0.4, 0.75) + rng.normal(0, 0.03, inside.sum())
        raw[4][inside] = rng.normal(3.5, 1.5, inside.sum())
    raw[0:2] = np.arctanh(np.clip(target - grid, -0.999, 0.999))
    return raw


@pytest.mark.parametrize("case", range(12))
def test_matches_reference_on_crafted_overlapping_instances(case):
    rng = np.random.default_rng(case)
    raw = crafted_output(int(rng.integers(60, 140)), int(rng.integers(80, 220)), int(rng.integers(2, 9)), rng,
                         noise=[0.001, 0.004, 0.012][case % 3])
    for threshold, min_pixel in [(0.94, 160), (0.9, 128), (0.6, 20), (0.51, 0)]:
        expected = reference_clustering(raw, threshold, min_pixel)
        assert np.array_equal(cluster_instances(raw, threshold, min_pixel), expected)


def test_crafted_cases_have_several_instances():
    """Guards the test above: the crafted outputs must not collapse into one cluster."""
    found = []
    for case in range(12):
        rng = np.random.default_rng(case)
        raw = crafted_output(int(rng.integers(60, 140)), int(rng.integers(80, 220)), int(rng.integers(2, 9)), rng,
                             noise=[0.001, 0.004, 0.012][case % 3])
        labels = cluster_instances(raw, 0.6, 20)
        found.append(np.unique(labels[labels > 0]).size)
    assert sum(n >= 3 for n in found) >= 6, found


def test_later_proposal_overwrites_an_earlier_instance():
    """A (strong seed, tight bandwidth) is accepted first; B's wide proposal then swallows it."""
    height, width = 40, 120
    grid = coordinate_grid(height, width)
    target = grid.copy()
    raw = np.full((5, height, width), -6.0, np.float32)
    a = np.zeros((height, width), bool)
    a[15:25, 20:40] = True  # 200 px
    b = np.zeros((height, width), bool)
    b[5:35, 10:70] = True
    b &= ~a  # 1600 px
    centre = grid[:, 20, 40]
    target[:, a | b] = centre[:, None]
    spread = np.linspace(0.004, 0.03, b.sum(), dtype=np.float32)
    target[0, b] += np.where(np.arange(b.sum()) % 2 == 0, spread, -spread)  # outside A's bandwidth
    raw[0:2] = np.arctanh(np.clip(target - grid, -0.999, 0.999))
    raw[2:4][:, a], raw[2:4][:, b] = 1.2, 0.45
    raw[4][a], raw[4][b] = 9.0, 5.0
    expected = reference_clustering(raw, 0.94, 100)
    labels, scores = cluster_with_scores(raw, 0.94, 100)
    np.testing.assert_array_equal(labels, expected)
    assert scores.size == 2  # two proposals accepted ...
    assert np.unique(labels[a | b]).tolist() == [2]  # ... and id 1 was overwritten entirely


def test_isotropic_sigma_matches_reference():
    rng = np.random.default_rng(7)
    raw = crafted_output(90, 160, 5, rng, noise=0.003)[[0, 1, 2, 4]]  # n_sigma = 1 layout
    np.testing.assert_array_equal(cluster_instances(raw, 0.9, 50, n_sigma=1), reference_clustering(raw, 0.9, 50, 1))


def test_ideal_output_recovers_every_instance_in_seed_order():
    rng = np.random.default_rng(3)
    labels = random_instance_map(200, 400, 6, rng)
    found, scores = cluster_with_scores(ideal_raw_output(labels), 0.94, 160)
    for instance_id in np.unique(labels[labels > 0]):
        if (labels == instance_id).sum() > 160:
            overlap = np.unique(found[labels == instance_id])
            assert overlap.size == 1 and overlap[0] > 0
    assert np.all(scores >= 0.94)


def test_ids_follow_seed_score_order():
    labels = np.zeros((60, 200), np.int32)
    labels[10:50, 10:60], labels[10:50, 120:180] = 1, 2
    raw = ideal_raw_output(labels)
    raw[4][labels == 2] = 8.0  # the right-hand instance has the stronger seed
    found = cluster_instances(raw)
    assert found[30, 150] == 1 and found[30, 30] == 2


def test_too_few_candidates_give_an_empty_map():
    raw = np.full((5, 40, 40), -5.0, np.float32)
    raw[4, :10, :10] = 5.0  # 100 candidates <= 160
    assert not cluster_instances(raw).any()


def test_threshold_stops_the_loop():
    labels = np.zeros((40, 100), np.int32)
    labels[5:35, 5:45] = 1
    raw = ideal_raw_output(labels, seed_logit=2.0)  # sigmoid(2) = 0.88 < 0.94
    assert not cluster_instances(raw).any()
    assert cluster_instances(raw, threshold=0.85).max() == 1


def test_frames_beyond_the_published_grid_extend_it_with_the_same_spacing():
    grid = coordinate_grid(1100, 2100)
    np.testing.assert_allclose(grid[0, 0, 2047], 2.0, rtol=1e-7)
    np.testing.assert_allclose(grid[1, 1023, 0], 1.0, rtol=1e-7)
    np.testing.assert_allclose(np.diff(grid[0, 0, 2040:2060]), 2 / 2047, rtol=1e-4)
    np.testing.assert_allclose(np.diff(grid[1, 1015:1030, 0]), 1 / 1023, rtol=1e-4)
    labels = np.zeros((1100, 2100), np.int32)
    labels[1040:1090, 2030:2090] = 1  # entirely outside the published 1024x2048 grid
    labels[100:150, 100:200] = 2
    found = cluster_instances(ideal_raw_output(labels))
    assert len(np.unique(found[labels == 1])) == 1 and found[1060, 2060] > 0
    assert found[1060, 2060] != found[120, 150]


def test_nan_outputs_do_not_crash():
    labels = np.zeros((60, 100), np.int32)
    labels[10:50, 10:90] = 1
    raw = ideal_raw_output(labels)
    raw[0, 20:30, 20:30] = np.nan
    raw[2, 40:45, 40:45] = np.nan
    raw[4, 0:5, 0:5] = np.nan
    found = cluster_instances(raw)
    np.testing.assert_array_equal(found, reference_clustering(raw))


@pytest.mark.parametrize("bad", [np.zeros((4, 10, 10), np.float32), np.zeros((10, 10), np.float32)])
def test_malformed_raw_output_is_refused(bad):
    with pytest.raises(InputError):
        cluster_instances(bad)
