"""Model files: shipped defaults by class, users' files, one-time ONNX export of a checkpoint."""

import pytest
import torch

from mots_ros.checkpoints import save_checkpoint
from mots_ros.config import preset
from mots_ros.errors import BackendError, ConfigError
from mots_ros.model_files import DEFAULT_MODELS, build_segmentation_network, default_model_path, model_file
from mots_ros.segmentation import SpatialEmbeddingNet


def test_shipped_defaults_are_found_by_network_and_class():
    assert default_model_path("embedding", 2).name == f"{DEFAULT_MODELS[('embedding', 'pedestrian')]}.pth"
    assert model_file(preset("car-published"), "segmentation", "onnx").suffix == ".onnx"
    assert model_file(preset("pedestrian"), "segmentation", "checkpoint").name == "spatial_embedding_pedestrian_lite.pth"
    with pytest.raises(ConfigError, match="no shipped segmentation model for class '3'; set segmentation.weights"):
        default_model_path("segmentation", 3)


def test_users_files_are_checked_and_a_checkpoint_is_exported_once(tmp_path):
    config = preset("car-published").replace(**{"segmentation.weights": str(tmp_path / "missing.pth")})
    with pytest.raises(ConfigError, match="segmentation.weights: file .*missing.pth does not exist"):
        model_file(config, "segmentation", "checkpoint")
    onnx_config = preset("car-published").replace(**{"segmentation.weights": str(model_file(preset("car-published"), "segmentation", "onnx"))})
    with pytest.raises(BackendError, match="is an ONNX file; the torch backend needs a checkpoint"):
        model_file(onnx_config, "segmentation", "checkpoint")

    torch.manual_seed(0)
    save_checkpoint(SpatialEmbeddingNet(width=0.25), tmp_path / "se.pth", build={})
    config = preset("car-published").replace(**{"segmentation.weights": str(tmp_path / "se.pth"),
                                      "inference.cache_dir": str(tmp_path / "cache")})
    exported = model_file(config, "segmentation", "onnx")
    assert exported.parent == tmp_path / "cache" / "onnx" and exported.name.startswith("se-")
    modified = exported.stat().st_mtime_ns
    assert model_file(config, "segmentation", "onnx") == exported and exported.stat().st_mtime_ns == modified
    assert build_segmentation_network(tmp_path / "se.pth").width == 0.25  # the size is read from the file


def test_files_that_are_not_what_they_claim_are_refused_at_build_time(tmp_path):
    from mots_ros.pipeline import MotsPipeline

    pointtrack = model_file(preset("car-published"), "embedding", "onnx")
    config = preset("car-published").replace(**{"segmentation.weights": str(pointtrack), "inference.backend": "onnxruntime"})
    with pytest.raises(ConfigError, match="segmentation.weights: .* takes points \\(rank 3\\), boxes \\(rank 2\\).*that is the "
                                          "embedding network's layout"):
        MotsPipeline.from_config(config)
    with pytest.raises(ConfigError, match="segmentation.weights: .* is a directory; give the model file in it"):
        model_file(preset("car-published").replace(**{"segmentation.weights": str(tmp_path)}), "segmentation", "onnx")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty.pth is empty \\(0 bytes\\)"):
        model_file(preset("car-published").replace(**{"embedding.weights": str(tmp_path / "empty.pth")}), "embedding", "checkpoint")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ConfigError, match="text.onnx is not an ONNX model"):
        model_file(preset("car-published").replace(**{"embedding.weights": str(tmp_path / "text.onnx")}), "embedding", "onnx")
