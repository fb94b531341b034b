"""ONNX Runtime backend: the CPU provider, or the CUDA and TensorRT execution providers when installed."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from pathlib import Path

import numpy as np

from mots_ros.backends import int8_model_file, nvidia_gpu_present, onnx_with_dynamic_batch, precision_for
from mots_ros.errors import BackendError

if TYPE_CHECKING:
    from mots_ros.config import Config

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendError(
            "backend 'onnxruntime' needs the onnxruntime package: pip install onnxruntime "
            "(or onnxruntime-gpu for CUDA; on a Jetson, NVIDIA's JetPack wheel)"
        ) from err
    return onnxruntime


class OnnxRuntimeBackend:
    """Runs an ONNX file with ONNX Runtime.

    Args:
        path: the ONNX file.
        provider: ``cpu``, ``cuda`` or ``tensorrt`` (the ONNX Runtime execution provider family).
        num_threads: intra-op CPU threads; 0 leaves ONNX Runtime's default.
        cache_dir: where the TensorRT provider caches its engines.
        fp16: let the TensorRT provider use fp16.
    """

    auto_priority = {"cuda": 20, "cpu": 40}

    @classmethod
    def available_devices(cls) -> list[str]:
        """``cuda`` when ONNX Runtime has its CUDA provider and there is a GPU, and ``cpu`` when installed."""
        if importlib.util.find_spec("onnxruntime") is None:
            return []
        if nvidia_gpu_present():
            import onnxruntime

            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                return ["cuda", "cpu"]
        return ["cpu"]

    @classmethod
    def for_network(cls, network: str, device: str, config: Config, *,
                    calibration_batches: Any = None) -> OnnxRuntimeBackend:
        """The network's ONNX file (a checkpoint is exported once, which needs torch); int8 quantizes it once."""
        from mots_ros.model_files import model_file

        inference = config.inference
        int8 = precision_for(config, "fp32") == "int8" and device == "cpu"
        path = int8_model_file(network, config, calibration_batches) if int8 else model_file(config, network, "onnx")
        backend = cls(path, provider=device, num_threads=inference.num_threads,
                      cache_dir=Path(inference.cache_dir).expanduser() / "engines",
                      fp16=precision_for(config, "fp16") == "fp16")
        if int8 and network == "segmentation":
            backend.name += "-int8"
        return backend

    def __init__(self, path: str | Path, *, provider: str = "cpu", num_threads: int = 0,
                 cache_dir: str | Path | None = None, fp16: bool = False):
        ort = import_onnxruntime()
        available = ort.get_available_providers()
        wanted = PROVIDERS[provider]
        if wanted[0] not in available:
            raise BackendError(
                f"ONNX Runtime has no {wanted[0]} here (available: {available}); "
                + ("install onnxruntime-gpu with a matching CUDA" if provider != "cpu" else "reinstall onnxruntime")
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if num_threads > 0:
            options.intra_op_num_threads = num_threads
        providers: list = [p for p in wanted if p in available]
        if provider == "tensorrt" and cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            providers[0] = ("TensorrtExecutionProvider", {
                "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir), "trt_fp16_enable": fp16})
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise BackendError(f"ONNX Runtime cannot load {path}: {err}") from err
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.name = f"onnxruntime-{provider}"
        self.path = Path(path)
        self._session_arguments = {"sess_options": options, "providers": providers}
        self._batch_session = None

    @property
    def fixed_input_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of a fixed-size image input, or None when the size is dynamic."""
        shape = self.session.get_inputs()[0].shape
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
            return int(shape[2]), int(shape[3])
        return None

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        return self.run_all(*inputs)[0]

    def run_batch(self, images: np.ndarray) -> np.ndarray:
        """The first output for an ``(N, ...)`` batch of first inputs (a second session, made once, takes any N)."""
        if images.shape[0] == 1:
            return self.run(images)
        if self._batch_session is None:
            ort = import_onnxruntime()
            self._batch_session = ort.InferenceSession(onnx_with_dynamic_batch(self.path), **self._session_arguments)
        return self._batch_session.run(None, {self.input_names[0]: np.ascontiguousarray(images, np.float32)})[0]

    def run_all(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Every output of the network, in the file's order."""
        feeds = {name: np.ascontiguousarray(x, dtype=np.float32) for name, x in zip(self.input_names, inputs)}
        return self.session.run(None, feeds)
