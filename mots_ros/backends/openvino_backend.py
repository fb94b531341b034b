"""OpenVINO as a backend: the ONNX exports on Intel and AMD CPUs (fp32, or bf16 where the CPU has it).

bf16 runs on CPUs with AVX-512-BF16 or AMX (``mots_ros.cpu_features``); elsewhere OpenVINO would
quietly compute in fp32, so asking for bf16 there is an error instead. OpenVINO's GPU and NPU
plugins are reached through ``inference.openvino_device`` (untested here: this machine has neither).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mots_ros.backends import int8_model_file, precision_for
from mots_ros.errors import BackendError

if TYPE_CHECKING:
    from mots_ros.config import Config

#: ``inference.precision`` -> OpenVINO's ``INFERENCE_PRECISION_HINT``.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


class OpenVinoBackend:
    """Runs an ONNX file with OpenVINO.

    Args:
        path: the ONNX file (the exports of :mod:`mots_ros.export`).
        device: an OpenVINO device name (``CPU``, ``GPU``, ``NPU``, ``AUTO``, ...).
        precision: ``fp32``, ``bf16`` (CPU with AVX-512-BF16 or AMX) or ``fp16`` (GPU).
        num_threads: inference threads on the CPU; 0 leaves OpenVINO's default.
    """

    auto_priority = {"cpu": 55}  # after ONNX Runtime and torch: auto keeps their (golden-tested) outputs

    @classmethod
    def available_devices(cls) -> list[str]:
        """``cpu`` when the ``openvino`` package is installed."""
        return ["cpu"] if importlib.util.find_spec("openvino") is not None else []

    @classmethod
    def for_network(cls, network: str, device: str, config: Config, *,
                    calibration_batches: Any = None) -> OpenVinoBackend:
        """The network's ONNX file (a checkpoint is exported once, which needs torch); int8 quantizes it once."""
        from mots_ros.model_files import model_file

        inference = config.inference
        precision = precision_for(config, "fp32")
        if precision == "int8":
            # OpenVINO runs the QDQ file's quantized layers in int8 and the rest in f32.
            path = int8_model_file(network, config, calibration_batches)
            backend = cls(path, device=inference.openvino_device, precision="fp32", num_threads=inference.num_threads)
            if network == "segmentation":
                backend.name = backend.name.replace("-fp32", "-int8")
            return backend
        return cls(model_file(config, network, "onnx"), device=inference.openvino_device,
                   precision=precision, num_threads=inference.num_threads)

    def __init__(self, path: str | Path, *, device: str = "CPU", precision: str = "fp32", num_threads: int = 0):
        try:
            import openvino
        except ImportError as err:
            raise BackendError("backend openvino needs the openvino package: pip install openvino") from err
        if precision not in PRECISION_HINTS:
            raise BackendError(f"backend openvino runs fp32, bf16 (CPU) or fp16 (GPU) files, not {precision} "
                               "(int8 is a quantized file: OpenVinoBackend.for_network makes it)")
        if _is_quantized_with_fixed_size(Path(path)):
            # Measured: OpenVINO 2026.4 crashes the process compiling such a file (a dynamic-size one works).
            raise BackendError(f"{path} is an int8 file with a fixed input size, which OpenVINO {openvino.__version__} "
                               "cannot compile (it crashes); quantize a dynamic-size export (mots-ros export onnx --dynamic)")
        core = openvino.Core()
        plugin = device.split(".")[0]  # "GPU.1" names the second GPU; AUTO, MULTI and HETERO choose themselves
        available = {name.split(".")[0] for name in core.available_devices}
        if plugin not in ("AUTO", "MULTI", "HETERO") and plugin not in available:
            raise BackendError(f"OpenVINO has no device {device!r} here (available: {core.available_devices})")
        if precision == "bf16" and device == "CPU" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise BackendError("this CPU has no bf16 instructions (AVX-512-BF16 or AMX); use precision fp32")
        properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
                                      "PERFORMANCE_HINT": "LATENCY"}
        if num_threads > 0 and device == "CPU":
            properties["INFERENCE_NUM_THREADS"] = num_threads
        try:
            self._compiled = core.compile_model(core.read_model(str(path)), device, properties)
        except RuntimeError as err:
            raise BackendError(f"OpenVINO cannot load {path} on {device}: {err}") from err
        self._request = self._compiled.create_infer_request()
        self._core, self._device, self._properties, self.path = core, device, properties, Path(path)
        self._batch_request: Any = None
        self.precision = precision
        self.name = f"openvino-{device.lower()}-{precision}"

    fixed_input_size = None  # the exports have dynamic image sizes; OpenVINO reshapes per input

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        """The first output for an ``(N, ...)`` batch of first inputs (a second model, compiled once, takes any N)."""
        if images.shape[0] == 1:
            return self.run(images)
        if self._batch_request is None:
            model = self._core.read_model(self.path)
            model.reshape({0: [-1, *model.input(0).get_partial_shape()[1:]]})
            self._batch_request = self._core.compile_model(model, self._device, self._properties).create_infer_request()
        self._batch_request.infer([np.ascontiguousarray(images, dtype=np.float32)])
        return np.array(self._batch_request.get_output_tensor(0).data, np.float32)

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """The network's first output for float32 inputs, in the file's input order."""
        arrays = [np.ascontiguousarray(array, dtype=np.float32) for array in inputs]
        self._request.infer(arrays)
        return np.array(self._request.get_output_tensor(0).data, np.float32)  # a copy: the request reuses its buffer


def _is_quantized_with_fixed_size(path: Path) -> bool:
    """A QDQ (int8) ONNX file whose image input has a fixed height and width."""
    if path.suffix != ".onnx":
        return False
    try:
        import onnx
    except ImportError:
        return False
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # not readable as ONNX: OpenVINO's own error will say so
        return False
    if not any(node.op_type == "QuantizeLinear" for node in graph.node):
        return False
    dims = graph.input[0].type.tensor_type.shape.dim if graph.input else []
    return len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:])
