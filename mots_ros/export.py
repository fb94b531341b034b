"""ONNX export of both networks (needs torch; the exported files do not).

- SpatialEmbedding: input ``image`` (1, 3, H, W), output ``raw`` (1, 5, H, W). A fixed size
  (default 384×1248, the published KITTI canvas) or dynamic H and W (multiples of 8).
- PointTrack: inputs ``points`` (K, N, 8) and ``boxes`` (K, 4), output ``embeddings`` (K, 32), with K
  dynamic.

Each file carries ``mots_ros.*`` metadata (network, width, class, point split) so a pipeline can
be built from the ONNX files alone, and is checked with onnx's checker after export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mots_ros.atomic_files import replacing
from mots_ros.errors import BackendError

if TYPE_CHECKING:
    from mots_ros.config import Config

OPSET = 17
DEFAULT_INPUT_SIZE = (384, 1248)


def _write(model: torch.nn.Module, inputs: tuple, path: Path, input_names, output_names, dynamic_axes, metadata: dict) -> Path:
    import onnx

    path = Path(path)
    model = model.eval()
    with replacing(path) as tmp:
        # dynamo=False: the TorchScript exporter handles dynamic_axes directly and gives the graph whose
        # ONNX Runtime parity the tests check; the dynamo exporter would need export-time shape specs.
        with torch.no_grad():
            torch.onnx.export(model, inputs, str(tmp), input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
        proto = onnx.load(str(tmp))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = f"mots_ros.{key}", str(value)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return path


def export_segmentation(model, path: str | os.PathLike, *, height: int | None = DEFAULT_INPUT_SIZE[0],
                        width: int | None = DEFAULT_INPUT_SIZE[1], class_id: int = 1) -> Path:
    """Exports a SpatialEmbeddingNet; ``height=width=None`` makes H and W dynamic."""
    dynamic = height is None or width is None
    sample_h, sample_w = (64, 128) if dynamic else (height, width)
    if sample_h % 8 or sample_w % 8:
        raise BackendError(f"the input size must be a multiple of 8, got {sample_h}x{sample_w}")
    axes = {"image": {2: "height", 3: "width"}, "raw": {2: "height", 3: "width"}} if dynamic else None
    metadata = {"network": "segmentation", "width": model.width, "num_classes": ",".join(map(str, model.num_classes)),
                "class_id": class_id, "input_size": "dynamic" if dynamic else f"{height}x{width}"}
    return _write(model, (torch.rand(1, 3, sample_h, sample_w),), Path(path), ["image"], ["raw"], axes, metadata)


def export_embedding(model, path: str | os.PathLike, *, class_id: int = 1, num_environment_points: int = 500) -> Path:
    """Exports a PointTrackNet with a dynamic number of instances."""
    points = model.num_foreground_points + num_environment_points
    axes = {"points": {0: "instances"}, "boxes": {0: "instances"}, "embeddings": {0: "instances"}}
    metadata = {"network": "embedding", "class_id": class_id, "foreground_points": model.num_foreground_points,
                "environment_points": num_environment_points, "parts": getattr(model, "parts", 0),
                "aligned_scales": int(getattr(model, "aligned_scales", False))}
    sample = (torch.rand(3, points, 8), torch.rand(3, 4))
    return _write(model, sample, Path(path), ["points", "boxes"], ["embeddings"], axes, metadata)


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``mots_ros.*`` metadata of an exported file (without the prefix)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key.removeprefix("mots_ros."): p.value for p in proto.metadata_props if p.key.startswith("mots_ros.")}


def max_relative_error(reference: np.ndarray, other: np.ndarray) -> float:
    """``max |a - b| / max |a|``: the parity measure used in tests and ``mots-ros export``."""
    scale = float(np.abs(reference).max()) or 1.0
    return float(np.abs(reference - other).max()) / scale


@dataclass(frozen=True)
class ExportCheck:
    """One exported file and its agreement with torch on a random input (ONNX Runtime CPU, fp32)."""

    path: Path
    max_relative_error: float


def export_and_verify(config: Config, out_dir: str | os.PathLike, *, height: int = DEFAULT_INPUT_SIZE[0],
                      width: int = DEFAULT_INPUT_SIZE[1], dynamic: bool = False,
                      only: str | None = None) -> list[ExportCheck]:
    """Exports the config's networks (checkpoints) to ``out_dir`` and runs each file once against torch.

    Args:
        height, width: the fixed segmentation input size (ignored with ``dynamic``).
        dynamic: dynamic segmentation input height and width instead.
        only: ``segmentation`` or ``embedding`` to export one network; None exports both.
    """
    from mots_ros.backends.onnx_backend import OnnxRuntimeBackend
    from mots_ros.model_files import build_embedding_network, build_segmentation_network, model_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    class_id = config.segmentation.class_id
    jobs = []
    if only in (None, "segmentation"):
        source = model_file(config, "segmentation", "checkpoint")
        model = build_segmentation_network(source).eval()
        size = (None, None) if dynamic else (height, width)
        path = export_segmentation(model, out_dir / f"{source.stem}.onnx", height=size[0], width=size[1], class_id=class_id)
        jobs.append((path, model, (rng.random((1, 3, height, width), dtype=np.float32),)))
    if only in (None, "embedding"):
        source = model_file(config, "embedding", "checkpoint")
        model = build_embedding_network(source).eval()
        path = export_embedding(model, out_dir / f"{source.stem}.onnx", class_id=class_id)
        jobs.append((path, model, (rng.random((7, 1500, 8), dtype=np.float32), rng.random((7, 4), dtype=np.float32))))
    checks = []
    for path, model, sample in jobs:
        with torch.no_grad():
            reference = model(*(torch.from_numpy(x) for x in sample)).numpy()
        checks.append(ExportCheck(path, max_relative_error(reference, OnnxRuntimeBackend(path).run(*sample))))
    return checks
