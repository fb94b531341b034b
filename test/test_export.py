"""ONNX export: metadata, sizes, and export_and_verify's parity check against torch."""

import pytest
import torch

from mots_ros.checkpoints import save_checkpoint
from mots_ros.config import preset
from mots_ros.embedding import PointTrackNet
from mots_ros.errors import BackendError
from mots_ros.export import export_and_verify, export_segmentation, onnx_metadata
from mots_ros.segmentation import SpatialEmbeddingNet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    save_checkpoint(SpatialEmbeddingNet(width=0.25), folder / "se_tiny.pth", build={})
    save_checkpoint(PointTrackNet(), folder / "pt.pth", build={})
    return folder


def test_export_and_verify_writes_both_networks_at_parity_with_torch(checkpoints, tmp_path):
    config = preset("pedestrian-published").replace(**{"segmentation.weights": str(checkpoints / "se_tiny.pth"),
                                             "embedding.weights": str(checkpoints / "pt.pth")})
    checks = export_and_verify(config, tmp_path, height=64, width=128)
    assert [c.path.name for c in checks] == ["se_tiny.onnx", "pt.onnx"]
    assert all(c.max_relative_error < 1e-4 for c in checks)
    assert onnx_metadata(checks[0].path) == {"network": "segmentation", "width": "0.25", "num_classes": "4,1",
                                             "class_id": "2", "input_size": "64x128"}
    assert onnx_metadata(checks[1].path)["network"] == "embedding"
    (dynamic,) = export_and_verify(config, tmp_path / "dynamic", height=72, width=136, dynamic=True, only="segmentation")
    assert onnx_metadata(dynamic.path)["input_size"] == "dynamic" and dynamic.max_relative_error < 1e-4


def test_sizes_that_are_not_multiples_of_8_are_refused(tmp_path):
    with pytest.raises(BackendError, match="multiple of 8, got 60x128"):
        export_segmentation(SpatialEmbeddingNet(width=0.25), tmp_path / "se.onnx", height=60, width=128)
