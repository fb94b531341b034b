"""Model files: the shipped defaults, users' checkpoints and ONNX files, and networks built from them.

``weights: default`` means the model shipped in the package's ``models/`` folder for the
configured class, as a checkpoint (``.pth``, for torch) and as ONNX (``.onnx``, for ONNX Runtime
and TensorRT, so those deployments need no torch). A user's checkpoint runs on torch directly and
is exported to ONNX on first use for the other backends (that export needs torch); a user's ONNX
file runs on ONNX Runtime or TensorRT. The network's size (width, outputs) is read from the file.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

from mots_ros.config import Config
from mots_ros.datatypes import CLASS_NAMES
from mots_ros.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

#: Shipped default models (file stems), by network and class name.
DEFAULT_MODELS = {
    ("segmentation", "car"): "spatial_embedding_car_lite",
    ("segmentation", "pedestrian"): "spatial_embedding_pedestrian_lite",
    ("embedding", "car"): "pointtrack_car",
    ("embedding", "pedestrian"): "pointtrack_pedestrian",
}
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pthCar")


def models_dirs() -> list[Path]:
    """Where shipped models are looked for: the source tree, then the installed share folder."""
    return [Path(__file__).resolve().parent.parent / "models", Path(sys.prefix) / "share" / "mots_ros" / "models"]


def default_model_path(network: str, class_id: int, suffix: str = ".pth") -> Path:
    """The shipped model file for ``network`` ('segmentation' or 'embedding') and a class."""
    class_name = CLASS_NAMES.get(class_id, str(class_id))
    stem = DEFAULT_MODELS.get((network, class_name))
    if stem is None:
        raise ConfigError(f"no shipped {network} model for class {class_name!r}; set {network}.weights to a model file")
    for folder in models_dirs():
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise ConfigError(f"shipped model {stem}{suffix} not found in {[str(d) for d in models_dirs()]}; reinstall mots_ros")


def model_file(config: Config, network: str, kind: str) -> Path:
    """The ``kind`` ('checkpoint' or 'onnx') file of a network, exporting a checkpoint to ONNX if needed."""
    weights = getattr(config, network).weights
    if weights == "default":
        try:
            return default_model_path(network, config.segmentation.class_id, ".pth" if kind == "checkpoint" else ".onnx")
        except ConfigError:
            if kind == "checkpoint":
                raise
            source = default_model_path(network, config.segmentation.class_id, ".pth")
    else:
        source = Path(weights).expanduser()
        if source.is_dir():
            raise ConfigError(f"{network}.weights: {source} is a directory; give the model file in it")
        if not source.is_file():
            raise ConfigError(f"{network}.weights: file {source} does not exist")
        if source.stat().st_size == 0:
            raise ConfigError(f"{network}.weights: {source} is empty (0 bytes)")
    if kind == "onnx" and source.suffix == ".onnx":
        check_onnx_signature(source, network)
        return source
    if kind == "checkpoint":
        if source.suffix == ".onnx":
            raise BackendError(f"{network}.weights is an ONNX file; the torch backend needs a checkpoint (.pth). "
                               "Use backend onnxruntime or tensorrt, or give the checkpoint")
        return source
    return _exported_onnx(source, network, config)


#: What each network's ONNX file takes and gives: (input ranks, output rank), as exported here.
ONNX_SIGNATURES = {"segmentation": ((4,), 4), "embedding": ((3, 2), 2)}


def check_onnx_signature(path: Path, network: str) -> None:
    """Refuses an ONNX file whose inputs and output do not have the network's ranks.

    A PointTrack file given as ``segmentation.weights`` (or the reverse) then fails at configure,
    naming what it found, instead of failing on every frame. Needs the ``onnx`` package; without it
    the check is skipped (the first frame then tells).
    """
    try:
        import onnx
    except ImportError:
        return
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as err:  # onnx raises DecodeError and others for files that are not ONNX
        raise ConfigError(f"{network}.weights: {path} is not an ONNX model ({type(err).__name__}: {err})") from err
    initialisers = {i.name for i in graph.initializer}
    inputs = [(i.name, len(i.type.tensor_type.shape.dim)) for i in graph.input if i.name not in initialisers]
    outputs = [(o.name, len(o.type.tensor_type.shape.dim)) for o in graph.output]
    input_ranks, output_rank = ONNX_SIGNATURES[network]
    if tuple(rank for _, rank in inputs) != input_ranks or not outputs or outputs[0][1] != output_rank:
        found = ", ".join(f"{name} (rank {rank})" for name, rank in inputs)
        other = next((n for n, sig in ONNX_SIGNATURES.items() if n != network and sig[0] == tuple(r for _, r in inputs)), None)
        hint = f"; that is the {other} network's layout" if other else ""
        raise ConfigError(f"{network}.weights: {path} takes {found} and gives rank {outputs[0][1] if outputs else '-'}; "
                          f"a {network} network takes inputs of ranks {input_ranks} and gives rank {output_rank}{hint}")


def _exported_onnx(checkpoint: Path, network: str, config: Config) -> Path:
    """ONNX export of a checkpoint, cached by the checkpoint's content."""
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
    target = Path(config.inference.cache_dir).expanduser() / "onnx" / f"{checkpoint.stem}-{digest}.onnx"
    if target.is_file():
        return target
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise BackendError(f"{checkpoint} must be exported to ONNX first (mots-ros export onnx), which needs torch") from err
    from mots_ros.export import export_embedding, export_segmentation

    logger.info("exporting %s to %s (once)", checkpoint, target)
    if network == "segmentation":
        export_segmentation(build_segmentation_network(checkpoint), target, height=None, width=None,
                            class_id=config.segmentation.class_id)
    else:
        export_embedding(build_embedding_network(checkpoint), target, class_id=config.segmentation.class_id)
    return target


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
    from mots_ros.embedding.network import PointTrackNet, network_options_in_state_dict

    state_dict, _ = read_checkpoint(path)
    model = PointTrackNet(**network_options_in_state_dict(state_dict))
    apply_state_dict(model, state_dict, source=str(path))
    return model
