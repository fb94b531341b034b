"""Finding model files and turning them into inference backends.

``weights: default`` means the model shipped in the package's ``models/`` folder for the
configured class. Checkpoints (``.pth``/``.pt``) run on the torch backend; the network's size
(width, output channels) is read from the checkpoint itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mots_ros.backends import InferenceBackend
from mots_ros.config import Config
from mots_ros.datatypes import CLASS_NAMES
from mots_ros.errors import BackendError, ConfigError

#: Shipped default model files, by network and class name.
DEFAULT_MODELS = {
    ("segmentation", "car"): "spatial_embedding_car_lite.pth",
    ("embedding", "car"): "pointtrack_car.pth",
    ("embedding", "pedestrian"): "pointtrack_pedestrian.pth",
}


def models_dirs() -> list[Path]:
    """Where shipped models are looked for: the source tree, then the installed share folder."""
    return [Path(__file__).resolve().parent.parent / "models", Path(sys.prefix) / "share" / "mots_ros" / "models"]


def default_model_path(network: str, class_id: int) -> Path:
    """The shipped model file for ``network`` ('segmentation' or 'embedding') and a class."""
    class_name = CLASS_NAMES.get(class_id, str(class_id))
    file_name = DEFAULT_MODELS.get((network, class_name))
    if file_name is None:
        raise ConfigError(
            f"no shipped {network} model for class {class_name!r}; set {network}.weights to a checkpoint file"
        )
    for folder in models_dirs():
        if (folder / file_name).is_file():
            return folder / file_name
    raise ConfigError(f"shipped model {file_name} not found in {[str(d) for d in models_dirs()]}; reinstall mots_ros")


def resolve_weights(config: Config, network: str) -> Path:
    weights = getattr(config, network).weights
    if weights == "default":
        return default_model_path(network, config.segmentation.class_id)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"{network}.weights: file {path} does not exist")
    return path


def build_segmentation_network(path: str | Path):
    """A SpatialEmbeddingNet sized and loaded from a checkpoint (width and outputs read from it)."""
    from mots_ros.checkpoints import apply_state_dict, read_checkpoint
    from mots_ros.errors import CheckpointError
    from mots_ros.segmentation.network import SpatialEmbeddingNet, infer_num_classes, infer_width

    state_dict, _ = read_checkpoint(path)
    try:
        model = SpatialEmbeddingNet(num_classes=infer_num_classes(state_dict), width=infer_width(state_dict))
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path} is not a SpatialEmbedding checkpoint (missing or odd key {err})") from err
    apply_state_dict(model, state_dict, source=str(path))
    return model


def build_embedding_network(path: str | Path):
    """A PointTrackNet loaded from a checkpoint."""
    from mots_ros.checkpoints import apply_state_dict, read_checkpoint
    from mots_ros.embedding.network import PointTrackNet

    state_dict, _ = read_checkpoint(path)
    model = PointTrackNet()
    apply_state_dict(model, state_dict, source=str(path))
    return model


def create_backend(network: str, path: Path, config: Config) -> InferenceBackend:
    """An inference backend running the network stored at ``path``."""
    inference = config.inference
    backend = inference.backend
    if backend in ("auto", "torch"):
        from mots_ros.backends.torch_backend import TorchBackend

        builder = build_segmentation_network if network == "segmentation" else build_embedding_network
        return TorchBackend(builder(path), device=inference.device, num_threads=inference.num_threads)
    raise BackendError(f"backend {backend!r} is not available in this build")


def create_segmentation_backend(config: Config) -> InferenceBackend:
    return create_backend("segmentation", resolve_weights(config, "segmentation"), config)


def create_embedding_backend(config: Config) -> InferenceBackend:
    return create_backend("embedding", resolve_weights(config, "embedding"), config)
