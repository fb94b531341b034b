"""FineTrack-style part embeddings: optional, exported with parity, and scored by the embedding cue."""

import numpy as np
import pytest
import torch

from mots_ros.backends.onnx_backend import OnnxRuntimeBackend
from mots_ros.checkpoints import save_checkpoint
from mots_ros.cues.embedding import EmbeddingCue
from mots_ros.datatypes import Instance
from mots_ros.embedding.network import PointTrackNet, network_options_in_state_dict, parts_in_state_dict, resample_points
from mots_ros.errors import ConfigError
from mots_ros.export import export_embedding, max_relative_error, onnx_metadata
from mots_ros.masks import encode_rle
from mots_ros.model_files import build_embedding_network
from mots_ros.training.embedding import EmbeddingTrainingConfig, augment_crop, train_embedding
from mots_ros.training.losses import part_diversity_loss


def test_parts_leave_the_published_network_and_its_keys_unchanged():
    torch.manual_seed(0)
    published, with_parts = PointTrackNet().eval(), PointTrackNet(parts=4).eval()
    missing, unexpected = with_parts.load_state_dict(published.state_dict(), strict=False)
    assert not unexpected and all(".parts." in key for key in missing) and missing
    assert [k for k in with_parts.state_dict() if ".parts." not in k] == list(published.state_dict())
    points, boxes = torch.randn(3, 1500, 8), torch.rand(3, 4)
    with torch.no_grad():
        full = with_parts(points, boxes)
        assert full.shape == (3, 32 * 5)
        assert torch.equal(full[:, :32], published(points, boxes))  # the global embedding is the published one
    assert published.parts == 0 and with_parts.parts == 4 and parts_in_state_dict(with_parts.state_dict()) == 4


def assert_onnx_parity_for_any_instance_count(model, onnx_path):
    backend = OnnxRuntimeBackend(onnx_path)
    for count in (1, 7):
        points, boxes = torch.randn(count, 1500, 8), torch.rand(count, 4)
        with torch.no_grad():
            expected = model(points, boxes).numpy()
        result = backend.run(points.numpy(), boxes.numpy())
        assert result.shape == (count, 96) and max_relative_error(expected, result) < 1e-4


def test_part_checkpoint_loads_and_exports_with_parity_and_any_instance_count(tmp_path):
    torch.manual_seed(1)
    model = PointTrackNet(parts=2).eval()
    path = tmp_path / "parts.pth"
    save_checkpoint(model, path, build={"model": "PointTrackNet", "parts": 2})
    loaded = build_embedding_network(path).eval()
    assert loaded.parts == 2
    onnx_path = export_embedding(loaded, tmp_path / "parts.onnx")
    assert onnx_metadata(onnx_path)["parts"] == "2"
    assert_onnx_parity_for_any_instance_count(loaded, onnx_path)


def instance(embedding):
    return Instance(encode_rle(np.ones((4, 4), bool)), (0, 0, 3, 3), 2, 1.0, np.asarray(embedding, np.float32))


class _Track:
    def __init__(self, embedding):
        self.embedding = np.asarray(embedding, np.float64)
        self.cue_state = {}


@pytest.mark.parametrize("statistic, expected_part", [("median", 2.0), ("trimmed", 1.5), ("mean", 14 / 3)])
def test_cue_combines_the_global_distance_with_a_robust_statistic_over_parts(statistic, expected_part):
    track = np.zeros(32 * 4)
    detection = np.zeros(32 * 4)
    detection[0] = 3.0  # global distance 3
    detection[32], detection[64], detection[96] = 1.0, 2.0, 11.0  # part distances 1, 2 and 11 (an occluded part)
    cue = EmbeddingCue(weight=1.0, offset=10.0, part_weight=0.5, part_statistic=statistic)
    similarity = cue.similarity([instance(detection)], [_Track(track)], None)
    assert similarity[0, 0] == pytest.approx(10.0 - (0.5 * 3.0 + 0.5 * expected_part))
    published = EmbeddingCue(weight=1.0, offset=10.0)
    assert published.similarity([instance(detection[:32])], [_Track(track[:32])], None)[0, 0] == pytest.approx(7.0)
    with pytest.raises(ValueError, match="part_statistic"):
        EmbeddingCue(weight=1.0, offset=1.0, part_statistic="max")


def test_diversity_loss_is_zero_for_disjoint_heads_and_one_for_identical_heads():
    disjoint = torch.zeros(2, 3, 6)
    for head in range(3):
        disjoint[:, head, 2 * head : 2 * head + 2] = 0.5
    assert part_diversity_loss(disjoint).item() == pytest.approx(0.0)
    identical = torch.full((2, 3, 6), 1 / 6)
    assert part_diversity_loss(identical).item() == pytest.approx(1.0)
    assert part_diversity_loss(torch.full((2, 1, 6), 1 / 6)).item() == 0.0


def test_augmentation_keeps_the_instance_and_occludes_some_of_it():
    rng = np.random.default_rng(0)
    image = np.full((40, 30, 3), 128, np.uint8)
    categories = np.zeros((40, 30), np.uint8)
    categories[5:35, 5:25] = 1
    categories[0:5, :] = 2
    occluded = 0
    for _ in range(20):
        new_image, new_categories = augment_crop(image, categories, rng)
        assert new_image.shape[:2] == new_categories.shape and (new_categories == 1).any()
        scale = new_categories.shape[0] / 40
        occluded += (new_categories == 1).sum() < 0.97 * 600 * scale**2
    assert 3 <= occluded <= 17  # about half of the crops get a cut-out


def test_resampling_reads_a_point_exactly_at_its_position_and_learns_where_to_read():
    features = torch.arange(12.0).reshape(1, 3, 4)  # channel c of point n holds 4c + n
    positions = torch.tensor([[[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]]])
    at_points = resample_points(features, positions, positions)
    assert torch.allclose(at_points, features, atol=1e-4)
    query = torch.tensor([[[0.9], [0.1]]], requires_grad=True)  # beside point 1, (1, 0)
    read = resample_points(features, positions, query)
    assert read.shape == (1, 3, 1) and abs(read[0, 0, 0].item() - 1.0) < 0.1
    read.sum().backward()
    assert query.grad is not None and query.grad.abs().sum() > 0  # a displacement layer gets a gradient


def test_aligned_scales_leave_the_global_embedding_published_and_export_with_parity(tmp_path):
    torch.manual_seed(2)
    published, aligned = PointTrackNet().eval(), PointTrackNet(parts=2, aligned_scales=True).eval()
    aligned.load_state_dict(published.state_dict(), strict=False)
    assert [k for k in aligned.state_dict() if ".parts." not in k and ".aligned_scales." not in k] == list(published.state_dict())
    with torch.no_grad():
        for layer in aligned.point_feat.aligned_scales.flow:  # trained-like displacements, not the zero start
            layer.weight.normal_(0, 0.05)
            layer.bias.normal_(0, 0.01)
    points, boxes = torch.randn(3, 1500, 8), torch.rand(3, 4)
    with torch.no_grad():
        assert torch.equal(aligned(points, boxes)[:, :32], published(points, boxes))
    assert network_options_in_state_dict(aligned.state_dict()) == {"parts": 2, "aligned_scales": True, "scale_flow": True}
    assert network_options_in_state_dict(published.state_dict()) == {"parts": 0, "aligned_scales": False}
    fused = PointTrackNet(parts=2, aligned_scales=True, scale_flow=False)  # the same merge without alignment
    assert network_options_in_state_dict(fused.state_dict()) == {"parts": 2, "aligned_scales": True, "scale_flow": False}
    assert set(fused.state_dict()) == {k for k in aligned.state_dict() if ".aligned_scales.flow." not in k}
    fused.load_state_dict(aligned.state_dict(), strict=False)
    with torch.no_grad():
        fused_out = fused.eval()(points, boxes)
    assert torch.equal(fused_out[:, :32], published(points, boxes)) and not torch.equal(fused_out, aligned(points, boxes))
    path = tmp_path / "aligned.pth"
    save_checkpoint(aligned, path, build={"model": "PointTrackNet", "parts": 2, "aligned_scales": True})
    loaded = build_embedding_network(path).eval()
    assert loaded.aligned_scales and loaded.parts == 2
    onnx_path = export_embedding(loaded, tmp_path / "aligned.onnx")
    assert onnx_metadata(onnx_path)["aligned_scales"] == "1"
    assert_onnx_parity_for_any_instance_count(loaded, onnx_path)


def test_aligned_scales_without_parts_are_refused_with_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="parts > 0"):
        PointTrackNet(aligned_scales=True)
    config = EmbeddingTrainingConfig(data=[str(tmp_path)], out=str(tmp_path / "out"), aligned_scales=True)
    with pytest.raises(ConfigError, match="--parts"):
        train_embedding(config, progress=False)
