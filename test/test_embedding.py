import math

import numpy as np
import pytest
import torch

from conftest import load_manifest
from mots_ros.embedding import PointTrackNet, location_encoding, sample_points
from mots_ros.embedding.points import CATEGORY_EMBEDDING, _context_span
from mots_ros.errors import InputError


def test_state_dict_matches_official_manifest_key_for_key():
    model = PointTrackNet()
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == load_manifest("pointtrack_car_state_dict.json")
    assert sum(p.numel() for p in model.parameters()) == 1_419_809  # spec §6


def test_location_encoding_hand_checked():
    box = torch.tensor([[0.1, 0.2, 0.3, 0.6]], dtype=torch.float64)
    # cx = 0.2, cy = 0.4, w = 0.2 + 1 = 1.2, h = 0.4 + 1 = 1.4 (the published +1 quirk)
    encoding = location_encoding(box)[0]
    assert encoding.shape == (64,)
    assert encoding[0].item() == pytest.approx(math.sin(20.0))  # cx, k=0: 100 * 0.2
    assert encoding[1].item() == pytest.approx(math.sin(20.0 / 1000 ** (1 / 8)))  # cx, k=1
    assert encoding[8].item() == pytest.approx(math.sin(40.0))  # cy, k=0
    assert encoding[16].item() == pytest.approx(math.sin(120.0))  # w, k=0
    assert encoding[31].item() == pytest.approx(math.sin(140.0 / 1000 ** (7 / 8)))  # h, k=7
    assert encoding[32].item() == pytest.approx(math.cos(20.0))  # cosines follow the 32 sines


def _numpy_reference(model: PointTrackNet, points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Spec §6 re-derived with plain numpy matrix products (eval-mode BatchNorm)."""
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items() if "num_batches" not in k}

    def conv(name, x):  # x: (N, C) per-point features
        return x @ p[f"{name}.weight"][:, :, 0].T + p[f"{name}.bias"]

    def bn(name, x):
        return (x - p[f"{name}.running_mean"]) / np.sqrt(p[f"{name}.running_var"] + 1e-5) * p[f"{name}.weight"] + p[f"{name}.bias"]

    def lrelu(x):
        return np.where(x > 0, x, 0.01 * x)

    out = []
    for cloud, box in zip(points.astype(np.float64), boxes.astype(np.float64)):
        fg, env = cloud[:1000], cloud[1000:]
        pre = "point_feat."
        x = lrelu(bn(pre + "conv1_bn", conv(pre + "conv1", fg[:, 3:5])))
        x = lrelu(bn(pre + "conv2_bn", conv(pre + "conv2", x)))
        x = lrelu(bn(pre + "conv3_bn", conv(pre + "conv3", x)))
        e = lrelu(bn(pre + "e_conv1_bn", conv(pre + "e_conv1", fg[:, 0:3])))
        e = lrelu(bn(pre + "e_conv2_bn", conv(pre + "e_conv2", e)))
        e = lrelu(bn(pre + "e_conv3_bn", conv(pre + "e_conv3", e)))
        f = np.concatenate([x, e], 1)
        a = lrelu(conv(pre + "conv6", lrelu(bn(pre + "conv5_bn", conv(pre + "conv5", lrelu(bn(pre + "conv4_bn", conv(pre + "conv4", f))))))))
        b = lrelu(conv(pre + "conv9", lrelu(bn(pre + "conv8_bn", conv(pre + "conv8", lrelu(bn(pre + "conv7_bn", conv(pre + "conv7", f))))))))
        logits = conv(pre + "conv_weight", np.concatenate([a, b], 1))[:, 0]
        w = np.exp(logits - logits.max())
        w /= w.sum()
        c = (f * w[:, None]).sum(0)
        bc = pre + "borderConv."
        ex = lrelu(conv(bc + "conv3", lrelu(conv(bc + "conv2", lrelu(conv(bc + "conv1", env[:, 3:5]))))))
        ee = lrelu(conv(bc + "e_conv3", lrelu(conv(bc + "e_conv2", lrelu(conv(bc + "e_conv1", env[:, 0:3]))))))
        et = lrelu(conv(bc + "t_conv3", lrelu(conv(bc + "t_conv2", lrelu(conv(bc + "t_conv1", env[:, 5:8]))))))
        d = np.concatenate([ex, ee, et], 1)
        d = lrelu(conv(bc + "conv6", lrelu(conv(bc + "conv5", lrelu(conv(bc + "conv4", d)))))).max(0)
        cx, cy, w_, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0] + 1, box[3] - box[1] + 1
        angles = np.array([100 * v / 1000 ** (k / 8) for v in (cx, cy, w_, h) for k in range(8)])
        z = np.concatenate([a.mean(0), b.max(0), c, d, np.sin(angles), np.cos(angles)])
        hidden = lrelu(z @ p[pre + "last_emb.0.weight"].T + p[pre + "last_emb.0.bias"])
        out.append(hidden @ p[pre + "last_emb.2.weight"].T + p[pre + "last_emb.2.bias"])
    return np.array(out)


def test_forward_matches_an_independent_numpy_derivation():
    torch.manual_seed(0)
    model = PointTrackNet().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (3, 1500, 8)).astype(np.float32)
    points[:, :1000, 5:] = 0
    boxes = rng.uniform(0, 1, (3, 4)).astype(np.float32)
    with torch.no_grad():
        ours = model(torch.from_numpy(points), torch.from_numpy(boxes)).numpy()
    assert ours.shape == (3, 32)
    np.testing.assert_allclose(ours, _numpy_reference(model, points, boxes), rtol=1e-4, atol=1e-5)


class EnumeratingGenerator:
    """Stands in for numpy's Generator: row k draws 0, 1, 2, ... modulo its own ``high``."""

    def integers(self, low, high, size):
        return np.arange(size[1])[None, :] % np.broadcast_to(high, (size[0], 1))


def _frame(rng, height=60, width=90):
    labels = np.zeros((height, width), np.int32)
    labels[5:25, 10:40] = 3
    labels[15:35, 30:60] = 7  # overlaps instance 3
    labels[height - 1, 70:80] = 9  # only on the last row: has no pixel in its published crop
    labels[40:52, width - 8 :] = 4  # touches the last column
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return labels, image


def test_sampling_enumerates_exactly_the_published_crop(rng):
    labels, image_bgr = _frame(rng)
    height, width = labels.shape
    clouds = sample_points(labels, image_bgr, EnumeratingGenerator(), num_foreground=3000, num_environment=3000)
    assert clouds.instance_ids.tolist() == [3, 4, 7, 9]
    for k, instance_id in enumerate(clouds.instance_ids):
        mask = labels == instance_id
        rows, cols = np.nonzero(mask)
        top, bottom = (int(v[0]) for v in _context_span(np.array([rows.min()]), np.array([rows.max()]), 0.2, height))
        left, right = (int(v[0]) for v in _context_span(np.array([cols.min()]), np.array([cols.max()]), 0.2, width))
        if not mask[top:bottom, left:right].any():  # edge-only instance: the crop reaches the edge
            bottom, right = min(bottom + 1, height), min(right + 1, width)
        crop = mask[top:bottom, left:right]
        fg_rows, fg_cols = np.nonzero(crop)
        env_rows, env_cols = np.nonzero(~crop)
        centre_v, centre_u = fg_rows.mean() + top, fg_cols.mean() + left
        fg, env = clouds.points[k, : fg_rows.size], clouds.points[k, 3000 : 3000 + env_rows.size]
        np.testing.assert_allclose(fg[:, 3] * 128 + centre_v, fg_rows + top, atol=1e-3)
        np.testing.assert_allclose(fg[:, 4] * 128 + centre_u, fg_cols + left, atol=1e-3)
        np.testing.assert_array_equal(fg[:, 0:3], image_bgr[fg_rows + top, fg_cols + left] / np.float32(255))
        assert not fg[:, 5:].any()
        np.testing.assert_allclose(env[:, 3] * 128 + centre_v, env_rows + top, atol=1e-3)
        np.testing.assert_allclose(env[:, 4] * 128 + centre_u, env_cols + left, atol=1e-3)
        np.testing.assert_array_equal(env[:, 0:3], image_bgr[env_rows + top, env_cols + left] / np.float32(255))
        other = labels[env_rows + top, env_cols + left] > 0
        np.testing.assert_array_equal(env[:, 5:8], CATEGORY_EMBEDDING[np.where(other, 2, 0)])
        box = np.array([cols.min(), rows.min(), cols.max(), rows.max()]) / np.array([1242, 375, 1242, 375])
        np.testing.assert_allclose(clouds.boxes[k], box, rtol=1e-6)  # KITTI constants, whatever the frame size
        if instance_id == 4:
            assert right == width - 1  # the published clamp: the last column is never in a crop


def test_context_span_follows_the_published_arithmetic():
    top, bottom = _context_span(np.array([10, 20]), np.array([19, 29]), 0.2, 30)
    assert top.tolist() == [8, 18] and bottom.tolist() == [22, 29]  # grow 2; end clamped to H-1 = 29


def test_sampling_budget_and_reproducibility(rng):
    labels, image_bgr = _frame(rng)
    first = sample_points(labels, image_bgr, np.random.default_rng(5))
    again = sample_points(labels, image_bgr, np.random.default_rng(5))
    other = sample_points(labels, image_bgr, np.random.default_rng(6))
    assert first.points.shape == (4, 1500, 8) and first.points.dtype == np.float32
    np.testing.assert_array_equal(first.points, again.points)
    assert not np.array_equal(first.points, other.points)


def test_crop_without_environment_pixels_gives_zero_environment_points():
    labels = np.ones((10, 10), np.int32)  # the crop (9x9 after the clamp) is all instance
    clouds = sample_points(labels, np.zeros((10, 10, 3), np.uint8), np.random.default_rng(0))
    assert not clouds.points[0, 1000:].any()


def test_empty_map_gives_no_clouds():
    clouds = sample_points(np.zeros((20, 20), np.int32), np.zeros((20, 20, 3), np.uint8), np.random.default_rng(0))
    assert clouds.points.shape == (0, 1500, 8)


def test_mismatched_image_is_refused():
    with pytest.raises(InputError, match="match the label map"):
        sample_points(np.ones((20, 20), np.int32), np.zeros((20, 21, 3), np.uint8), np.random.default_rng(0))
