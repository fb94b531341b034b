import numpy as np
import pytest
from pycocotools import mask as coco_mask

from mots_ros.errors import InputError
from mots_ros.masks import (
    bbox_from_mask,
    decode_rle,
    encode_label_map,
    encode_rle,
    mask_iou,
    rle_counts,
    rle_from_string,
    rle_problem,
    rle_to_string,
)


def test_rle_round_trip_is_column_major_coco(rng):
    mask = rng.random((37, 53)) < 0.3
    rle = encode_rle(mask)
    assert rle["size"] == [37, 53]
    np.testing.assert_array_equal(decode_rle(rle), mask)
    text = rle_to_string(rle)
    np.testing.assert_array_equal(decode_rle(rle_from_string(text, 37, 53)), mask)
    # COCO counts run down columns first: a single top-left pixel is "0 run, 1 on, rest off".
    single = np.zeros((4, 3), bool)
    single[1, 0] = True
    assert rle_counts(encode_rle(single)["counts"]).tolist() == [1, 1, 10]


@pytest.mark.parametrize("fill", ["random", "empty", "full", "edges"])
def test_label_map_encoding_equals_per_mask_encoding(rng, fill):
    labels = rng.integers(0, 5, (40, 70))
    if fill == "empty":
        labels[:] = 0
    elif fill == "full":
        labels[:] = 3
    elif fill == "edges":
        labels[:] = 0
        labels[:, -1], labels[:, 0], labels[-1, :] = 1, 2, 4
    ids = [1, 2, 3, 4, 9]
    for ours, reference in zip(encode_label_map(labels, ids), (encode_rle(labels == i) for i in ids)):
        assert ours["counts"] == reference["counts"] and ours["size"] == reference["size"]


def test_counts_decoder_agrees_with_pycocotools(rng):
    for _ in range(100):
        h, w = rng.integers(1, 40, 2)
        mask = rng.random((h, w)) < rng.random()
        rle = encode_rle(mask)
        runs = rle_counts(rle["counts"])
        rebuilt = np.repeat(np.arange(runs.size) % 2, runs).astype(bool).reshape(w, h).T
        np.testing.assert_array_equal(rebuilt, coco_mask.decode(rle).astype(bool))
        assert rle_problem(rle) is None


@pytest.mark.parametrize(
    "counts, reason",
    [(b"", "covers 0 pixels"), (b"abc", "middle of a run"), (b"\x7f", "outside '0'..'o'"), (b"9" * 30, "covers")],
)
def test_malformed_rle_is_described(counts, reason):
    assert reason in rle_problem({"size": [10, 10], "counts": counts})


def test_counts_syntax_errors_raise():
    with pytest.raises(InputError, match="middle of a run"):
        rle_counts(b"abc")


def test_mask_iou_and_bbox():
    a, b = np.zeros((10, 10), bool), np.zeros((10, 10), bool)
    a[0:4, 0:4], b[2:6, 2:6] = True, True
    iou = mask_iou([encode_rle(a)], [encode_rle(a), encode_rle(b)])
    np.testing.assert_allclose(iou, [[1.0, 4 / 28]])
    assert mask_iou([], [encode_rle(a)]).shape == (0, 1)
    assert bbox_from_mask(b) == (2, 2, 5, 5) and bbox_from_mask(np.zeros((3, 3), bool)) is None


def test_column_run_helpers_agree_with_the_decoded_mask(rng):
    from mots_ros.masks import rle_centroid, rle_contains, rle_crop, translate_rle

    for _ in range(200):
        height, width = (int(v) for v in rng.integers(5, 40, 2))
        mask = rng.random((height, width)) < rng.random()
        rle = encode_rle(mask)
        dx, dy = (int(v) for v in rng.integers(-12, 12, 2))
        expected = np.zeros_like(mask)
        rows, cols = np.nonzero(mask)
        keep = (rows + dy >= 0) & (rows + dy < height) & (cols + dx >= 0) & (cols + dx < width)
        expected[rows[keep] + dy, cols[keep] + dx] = True
        assert (decode_rle(translate_rle(rle, dx, dy)) == expected).all()
        xs, ys = rng.uniform(-3, width + 3, 50), rng.uniform(-3, height + 3, 50)
        px, py = np.rint(xs).astype(int), np.rint(ys).astype(int)
        inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
        truth = np.zeros(50, bool)
        truth[inside] = mask[py[inside], px[inside]]
        assert (rle_contains(rle, xs, ys) == truth).all()
        if mask.any():
            x, y, area = rle_centroid(rle)
            assert (x, y, area) == pytest.approx((cols.mean(), rows.mean(), mask.sum()))
            crop, x0, y0 = rle_crop(rle, margin=2)
            rebuilt = np.zeros_like(mask)
            rebuilt[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
            assert (rebuilt == mask).all()
