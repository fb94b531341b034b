import os

import pytest
import torch

from mots_ros.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from mots_ros.embedding import PointTrackNet
from mots_ros.errors import CheckpointError
from mots_ros.model_files import build_embedding_network, build_segmentation_network
from mots_ros.segmentation import SpatialEmbeddingNet


def _official_style_file(model, path, *, legacy=True):
    """What the official training code writes: a DataParallel state dict inside a wrapper dict."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 16, 16)).sum().backward() if isinstance(model, SpatialEmbeddingNet) else None
    optimizer.step()
    wrapper = {
        "epoch": 199,
        "best_iou": 0.0,
        "best_seed": 0.8551,
        "model_state_dict": torch.nn.DataParallel(model).state_dict(),
        "optim_state_dict": optimizer.state_dict(),
        "logger_data": {"train": [1.0, 0.5], "val": [0.9]},
    }
    torch.save(wrapper, path, _use_new_zipfile_serialization=not legacy)


@pytest.mark.parametrize("legacy", [True, False])
def test_official_wrapper_with_module_prefix_loads(tmp_path, legacy):
    torch.manual_seed(0)
    source = SpatialEmbeddingNet(width=0.25)
    path = tmp_path / "best_seed_model.pthCar"
    _official_style_file(source, path, legacy=legacy)
    assert next(iter(torch.load(path, weights_only=True)["model_state_dict"])).startswith("module.")
    target = SpatialEmbeddingNet(width=0.25)
    metadata = load_checkpoint(target, path)
    assert metadata["epoch"] == 199 and "optim_state_dict" not in metadata
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key]), key


def test_bare_state_dict_and_missing_batch_counters_load(tmp_path):
    source = PointTrackNet()
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "bare.pth")
    target = PointTrackNet()
    assert load_checkpoint(target, tmp_path / "bare.pth") == {}  # a bare state dict carries no metadata
    for key, value in state.items():
        assert torch.equal(value, target.state_dict()[key]), key


def test_shape_mismatch_names_the_keys_and_shapes(tmp_path):
    save_checkpoint(SpatialEmbeddingNet(width=0.5), tmp_path / "half.pth", build={"width": 0.5})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(SpatialEmbeddingNet(width=1.0), tmp_path / "half.pth")
    message = str(err.value)
    assert "shape mismatches" in message and "encoder.initial_block.conv.weight: checkpoint [5, 3, 3, 3] vs model [13, 3, 3, 3]" in message


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = SpatialEmbeddingNet(width=0.25).state_dict()
    state.pop("decoders.1.output_conv.bias")
    state["extra.weight"] = torch.zeros(1)
    torch.save({"model_state_dict": state}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"1 missing keys \(decoders.1.output_conv.bias\); 1 unexpected keys \(extra.weight\)"):
        load_checkpoint(SpatialEmbeddingNet(width=0.25), tmp_path / "odd.pth")


def test_segmentation_checkpoint_into_embedding_model_is_refused(tmp_path):
    save_checkpoint(SpatialEmbeddingNet(width=0.25), tmp_path / "se.pth", build={})
    with pytest.raises(CheckpointError, match="does not fit PointTrackNet"):
        load_checkpoint(PointTrackNet(), tmp_path / "se.pth")


class _Payload:
    """Unpickling this would run code: it must never happen."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": SpatialEmbeddingNet(width=0.25).state_dict(), "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused by safe \\(weights_only\\) loading"):
        load_checkpoint(SpatialEmbeddingNet(width=0.25), path)
    assert not marker.exists()


def test_non_finite_weights_are_refused(tmp_path):
    state = SpatialEmbeddingNet(width=0.25).state_dict()
    state["decoders.0.output_conv.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN or infinite values in 1 tensors \\(decoders.0.output_conv.weight\\)"):
        load_checkpoint(SpatialEmbeddingNet(width=0.25), tmp_path / "nan.pth")


def test_unreadable_files_give_clear_errors(tmp_path):
    (tmp_path / "garbage.pth").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_checkpoint(tmp_path / "garbage.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        read_checkpoint(tmp_path / "list.pth")


def test_own_format_round_trip_rebuilds_the_model_size(tmp_path):
    torch.manual_seed(1)
    model = SpatialEmbeddingNet(width=0.5)
    save_checkpoint(model, tmp_path / "own.pth", build={"model": "SpatialEmbeddingNet", "width": 0.5}, epoch=3)
    state, metadata = read_checkpoint(tmp_path / "own.pth")
    assert metadata["mots_ros"]["width"] == 0.5 and metadata["epoch"] == 3
    raw = torch.load(tmp_path / "own.pth", weights_only=True)
    assert all(k.startswith("module.") for k in raw["model_state_dict"])  # official loaders read it
    rebuilt = build_segmentation_network(tmp_path / "own.pth")
    assert rebuilt.width == 0.5
    assert all(torch.equal(v, rebuilt.state_dict()[k]) for k, v in model.state_dict().items())
    save_checkpoint(PointTrackNet(), tmp_path / "emb.pth", build={"model": "PointTrackNet"})
    assert isinstance(build_embedding_network(tmp_path / "emb.pth"), PointTrackNet)


def test_empty_files_and_folders_are_named_as_such(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth is empty \\(0 bytes\\)"):
        load_checkpoint(PointTrackNet(), tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        load_checkpoint(PointTrackNet(), tmp_path)
