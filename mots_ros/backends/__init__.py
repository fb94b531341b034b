"""Inference backends: one small Protocol, one registry, runtimes imported only when used.

A backend runs one network on numpy arrays and returns a numpy array. Runtimes (torch,
onnxruntime, tensorrt) are imported lazily inside the backend that needs them, so a deployment
that uses ONNX Runtime or TensorRT never imports torch.

Backends are found by name in :data:`mots_ros.registry.BACKENDS` (``inference.backend``); other packages add
theirs through the ``mots_ros.backends`` entry points. A registered backend class provides, besides
the :class:`InferenceBackend` instance methods:

- ``auto_priority``: ``{device: rank}``, lower is preferred by ``backend: auto``;
- ``available_devices()`` (classmethod): the devices (``cuda``, ``cpu``) it can run on here,
  checked without importing a GPU runtime when there is no GPU;
- ``for_network(network, device, config, **options)`` (classmethod): the backend for the
  ``segmentation`` or ``embedding`` network of a config.

``backend: auto`` tries every available ``name-device`` pair by rank; with the built-in ones:
tensorrt > onnxruntime-cuda > torch-cuda > onnxruntime-cpu > torch-cpu > openvino > opencv.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mots_ros.errors import BackendError
from mots_ros.registry import BACKENDS

if TYPE_CHECKING:
    from mots_ros.config import Config

logger = logging.getLogger(__name__)



class InferenceBackend(Protocol):
    """Runs one network.

    Attributes:
        name: what runs it, e.g. ``torch-cpu`` or ``onnxruntime-cpu``; shown in diagnostics.
        fixed_input_size: ``(H, W)`` of a network built for one image size, or None when any
            size runs (the segmenter then pads each frame to a multiple of 8).
    """

    name: str

    @property
    def fixed_input_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of a network built for one image size, or None."""
        ...

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """Runs the network on float32 arrays and returns its float32 output."""
        ...


def precision_for(config: Config, backend_default: str) -> str:
    """``inference.precision``, with ``auto`` resolved to the backend's own default."""
    precision = config.inference.precision
    return backend_default if precision == "auto" else precision


def int8_model_file(network: str, config: Config, calibration_batches: Any = None) -> Path:
    """The network's int8 QDQ ONNX file for ONNX Runtime and OpenVINO, quantized once and cached.

    Only the segmentation network is quantized (its calibration images come from the segmenter,
    preprocessed as at inference); the embedding network stays fp32 under ``precision: int8``.

    Raises:
        BackendError: no calibration images were configured.
    """
    from mots_ros.backends.quantization import cached_int8_model
    from mots_ros.model_files import model_file

    source = model_file(config, network, "onnx")
    if network != "segmentation":
        return source
    if calibration_batches is None:
        raise BackendError("inference.precision int8 needs inference.calibration_images: a folder of frames from "
                           "your own camera to calibrate the segmentation network on")
    return cached_int8_model(source, Path(config.inference.cache_dir).expanduser() / "int8",
                             lambda: ((batch,) for batch in calibration_batches(None)), calibration_batches.key)


def onnx_with_dynamic_batch(path: str | Path) -> bytes:
    """The ONNX file with a symbolic batch dimension, for one forward over several cameras' frames.

    The exports fix the batch at 1; the networks are convolutions throughout, so only the declared
    shapes change (intermediate shapes recorded for batch 1 are dropped).
    """
    import onnx

    model = onnx.load(str(path))
    initialisers = {i.name for i in model.graph.initializer}
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name not in initialisers and len(dims) > 0:
            dims[0].dim_param = "batch"  # replaces the fixed value (one field of a oneof)
    del model.graph.value_info[:]
    return model.SerializeToString()


def nvidia_gpu_present() -> bool:
    """A cheap check for an NVIDIA driver (desktop or Jetson) before importing any GPU runtime."""
    return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/nvhost-ctrl-gpu"))


def available_backends(device: str = "auto") -> list[str]:
    """``name-device`` of the backends usable here for ``device`` (auto, cpu, cuda), preferred first."""
    ranked = []
    for name in BACKENDS.names():
        backend_type = BACKENDS.load(name)
        for found in backend_type.available_devices():
            if device in ("auto", found):
                ranked.append((backend_type.auto_priority.get(found, 100), f"{name}-{found}"))
    return [name for _, name in sorted(ranked)]


def create_backend(network: str, config: Config, **options: Any) -> InferenceBackend:
    """The configured backend for ``network`` (``segmentation`` or ``embedding``).

    ``backend: auto`` takes the first of :func:`available_backends` that can load the network;
    a named backend runs on CUDA when ``inference.device`` is ``cuda``, or ``auto`` and it can.
    ``options`` go to the backend's ``for_network`` (e.g. int8 calibration batches).
    """
    inference = config.inference
    if inference.backend != "auto":
        backend_type = BACKENDS.load(inference.backend)
        devices = backend_type.available_devices()
        if inference.device != "auto":
            device = inference.device
        else:
            device = "cuda" if "cuda" in devices else "cpu"
        return backend_type.for_network(network, device, config, **options)
    candidates = available_backends(inference.device)
    if not candidates:
        raise BackendError("no inference runtime is installed: pip install onnxruntime (or torch==2.13.0)")
    problems = []
    for candidate in candidates:
        name, _, device = candidate.rpartition("-")
        try:
            backend = BACKENDS.load(name).for_network(network, device, config, **options)
        except BackendError as err:
            problems.append(f"{candidate}: {err}")
            continue
        logger.info("backend auto chose %s for the %s network (order: %s)", candidate, network, ", ".join(candidates))
        return backend
    raise BackendError(f"no backend could run the {network} network: " + "; ".join(problems))
