"""Native TensorRT backend with an engine cache. Not verified on a GPU in this project's CI.

Engines are built from the exported ONNX files in fp32, fp16 or int8 (int8 calibrated from an
image folder, segmentation only) and cached. The cache key covers everything that makes an
engine invalid: the ONNX file's hash, the TensorRT version, the GPU's name and compute
capability, the precision and the input shape. A sidecar JSON next to each engine repeats the
key's fields; an engine whose sidecar does not match, or that fails to deserialize, is rebuilt.

Device memory comes from torch CUDA tensors when torch is installed, otherwise from cuda-python,
so a TensorRT deployment does not need torch. The first build on a Jetson takes minutes: the
build logs a line every 30 s, and ``mots-ros export engine`` builds ahead of time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from collections.abc import Callable, Iterable

import numpy as np

from mots_ros.atomic_files import replacing
from mots_ros.backends import nvidia_gpu_present, precision_for
from mots_ros.errors import BackendError

if TYPE_CHECKING:
    from mots_ros.config import Config

#: ``calibration_batches(input_shape)`` yields ``(1, 3, H, W) float32`` network inputs for int8 calibration.
CalibrationBatches = Callable[[tuple[int, ...]], Iterable[np.ndarray]]

logger = logging.getLogger(__name__)

MAX_INSTANCES_PER_RUN = 64  # optimisation-profile maximum for the embedding's K; larger frames run in chunks


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as err:
        raise BackendError(
            "backend 'tensorrt' needs NVIDIA TensorRT's Python package: on a Jetson it comes with JetPack "
            "(apt install python3-libnvinfer); on a desktop GPU, pip install tensorrt from NVIDIA's index"
        ) from err
    return tensorrt


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shapes: str  # e.g. "image=1x3x384x1248" or "points=1..64x1500x8;boxes=1..64x4"

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:20]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def engine_paths(cache_dir: Path, onnx_path: Path, key: EngineKey) -> tuple[Path, Path]:
    stem = f"{Path(onnx_path).stem}-{key.precision}-{key.digest()}"
    return cache_dir / f"{stem}.engine", cache_dir / f"{stem}.json"


def cached_engine_matches(engine_path: Path, sidecar_path: Path, key: EngineKey) -> bool:
    """True when the cached engine exists and its sidecar records exactly this key."""
    if not engine_path.is_file() or not sidecar_path.is_file():
        return False
    try:
        return json.loads(sidecar_path.read_text()) == asdict(key)
    except (OSError, json.JSONDecodeError):
        return False


class _DeviceMemory:
    """Device buffers and a stream from torch when available, else from cuda-python."""

    def __init__(self):
        try:
            import torch

            if not torch.cuda.is_available():
                raise BackendError("TensorRT needs a CUDA GPU, and torch sees none")
            self._torch = torch
            self.stream = torch.cuda.Stream()
            self.stream_handle = self.stream.cuda_stream
        except ImportError:
            self._torch = None
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                try:
                    from cuda import cudart
                except ImportError as err:
                    raise BackendError("TensorRT without torch needs cuda-python: pip install cuda-python") from err
            self._cudart = cudart
            self.stream_handle = self._check(cudart.cudaStreamCreate())

    def _check(self, result):
        error, *values = result
        if int(error) != 0:
            raise BackendError(f"CUDA call failed with error {error}")
        return values[0] if values else None

    def upload(self, array: np.ndarray):
        """Returns ``(handle, device_pointer)``; keep the handle alive while the pointer is used."""
        array = np.ascontiguousarray(array, dtype=np.float32)
        if self._torch is not None:
            tensor = self._torch.from_numpy(array).to("cuda", non_blocking=False)
            return tensor, tensor.data_ptr()
        pointer = self._check(self._cudart.cudaMalloc(array.nbytes))
        self._check(self._cudart.cudaMemcpy(pointer, array.ctypes.data, array.nbytes,
                                            self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
        return pointer, pointer

    def empty(self, shape: tuple[int, ...]):
        if self._torch is not None:
            tensor = self._torch.empty(shape, dtype=self._torch.float32, device="cuda")
            return tensor, tensor.data_ptr()
        pointer = self._check(self._cudart.cudaMalloc(int(np.prod(shape)) * 4))
        return pointer, pointer

    def download(self, handle, shape: tuple[int, ...]) -> np.ndarray:
        if self._torch is not None:
            return handle.cpu().numpy()
        out = np.empty(shape, np.float32)
        self._check(self._cudart.cudaMemcpy(out.ctypes.data, handle, out.nbytes,
                                            self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost))
        return out

    def release(self, handle) -> None:
        if self._torch is None:
            self._check(self._cudart.cudaFree(handle))

    def synchronize(self) -> None:
        if self._torch is not None:
            self.stream.synchronize()
        else:
            self._check(self._cudart.cudaStreamSynchronize(self.stream_handle))

    def gpu(self) -> tuple[str, str]:
        if self._torch is not None:
            properties = self._torch.cuda.get_device_properties(0)
            return properties.name, f"{properties.major}.{properties.minor}"
        properties = self._check(self._cudart.cudaGetDeviceProperties(0))
        name = properties.name.decode() if isinstance(properties.name, bytes) else str(properties.name)
        return name, f"{properties.major}.{properties.minor}"


class TensorRTBackend:
    """Runs an ONNX network as a cached TensorRT engine.

    Args:
        onnx_path: exported network (see :mod:`mots_ros.export`).
        precision: ``fp32``, ``fp16`` or ``int8``.
        cache_dir: engine cache folder.
        image_size: ``(H, W)`` for a segmentation network with dynamic size; a fixed-size export
            ignores it. Without it, the engine is built for the first frame's size.
        calibration_batches: int8 calibration inputs (segmentation only), preprocessed by the
            segmenter that owns the network (see :class:`mots_ros.segmenters.spatial_embedding.CalibrationImages`).
    """

    auto_priority = {"cuda": 10}

    @classmethod
    def available_devices(cls) -> list[str]:
        """``cuda`` when TensorRT is installed and there is an NVIDIA GPU."""
        return ["cuda"] if nvidia_gpu_present() and importlib.util.find_spec("tensorrt") is not None else []

    @classmethod
    def for_network(cls, network: str, device: str, config: Config, *,
                    calibration_batches: CalibrationBatches | None = None) -> TensorRTBackend:
        """The network's ONNX file as a cached engine; ``device`` is always the GPU."""
        from mots_ros.model_files import model_file

        import_tensorrt()  # before any export: a missing TensorRT is the message the user needs
        seg, inference = config.segmentation, config.inference
        size = (seg.input_height, seg.input_width) if seg.input_height and network == "segmentation" else None
        precision = precision_for(config, "fp16")
        if precision not in ("fp32", "fp16", "int8"):
            raise BackendError(f"backend tensorrt builds fp32, fp16 or int8 engines, not {precision}")
        return cls(model_file(config, network, "onnx"), precision=precision,
                   cache_dir=Path(inference.cache_dir).expanduser() / "engines", image_size=size,
                   calibration_batches=calibration_batches if network == "segmentation" else None)

    def __init__(self, onnx_path: str | Path, *, precision: str = "fp16", cache_dir: str | Path,
                 image_size: tuple[int, int] | None = None, calibration_batches: CalibrationBatches | None = None):
        self._trt = import_tensorrt()
        self.onnx_path = Path(onnx_path)
        self.precision = precision
        self.cache_dir = Path(os.path.expanduser(str(cache_dir)))
        self.calibration_batches = calibration_batches
        self.memory = _DeviceMemory()
        self.name = f"tensorrt-{precision}"
        self._engines: dict[str, tuple] = {}  # input-shape key -> (engine, context)
        self._lock = threading.Lock()
        self.is_embedding = self._input_names()[0] == "points"
        if image_size is not None and not self.is_embedding:
            self._engine_for({"image": (1, 3, *image_size)})

    @property
    def fixed_input_size(self) -> tuple[int, int] | None:
        """None: engines are built per input size (a fixed-size ONNX export has one)."""
        return None

    def _input_names(self) -> list[str]:
        import onnx

        model = onnx.load(str(self.onnx_path), load_external_data=False)
        return [i.name for i in model.graph.input]

    def _shape_text(self, shapes: dict[str, tuple[int, ...]]) -> str:
        if self.is_embedding:  # one engine for every K, through an optimisation profile
            return ";".join(f"{n}=1..{MAX_INSTANCES_PER_RUN}x" + "x".join(map(str, s[1:])) for n, s in shapes.items())
        return ";".join(f"{n}=" + "x".join(map(str, s)) for n, s in shapes.items())

    def _engine_for(self, shapes: dict[str, tuple[int, ...]]):
        shape_text = self._shape_text(shapes)
        with self._lock:
            if shape_text in self._engines:
                return self._engines[shape_text]
            gpu_name, capability = self.memory.gpu()
            key = EngineKey(file_sha256(self.onnx_path), self._trt.__version__, gpu_name, capability, self.precision, shape_text)
            engine_path, sidecar = engine_paths(self.cache_dir, self.onnx_path, key)
            runtime = self._trt.Runtime(self._trt.Logger(self._trt.Logger.WARNING))
            engine = None
            if cached_engine_matches(engine_path, sidecar, key):
                engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
                if engine is None:
                    logger.warning("cached engine %s is corrupt; rebuilding it", engine_path)
            elif engine_path.exists():
                logger.warning("cached engine %s does not match this GPU/TensorRT/model; rebuilding it", engine_path)
            if engine is None:
                serialized = self._build(shapes)
                with replacing(engine_path) as tmp:
                    tmp.write_bytes(serialized)
                sidecar.write_text(json.dumps(asdict(key), indent=2))
                engine = runtime.deserialize_cuda_engine(serialized)
                if engine is None:
                    raise BackendError(f"TensorRT built an engine for {self.onnx_path} that it cannot load")
            self._engines[shape_text] = (engine, engine.create_execution_context())
            return self._engines[shape_text]

    def _build(self, shapes: dict[str, tuple[int, ...]]) -> bytes:
        trt = self._trt
        trt_logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(trt_logger)
        # TensorRT 8.x (JetPack 5) must be asked for explicit batch; 10.x always is and deprecates the flag.
        explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
        network = builder.create_network(1 << int(explicit) if explicit is not None else 0)
        parser = trt.OnnxParser(network, trt_logger)
        if not parser.parse(self.onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT cannot parse {self.onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        if self.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if self.precision == "int8":
            if self.is_embedding or self.calibration_batches is None:
                raise BackendError("int8 needs calibration images and is available for the segmentation network only")
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = _array_calibrator(trt, self.calibration_batches(shapes["image"]), self.memory,
                                                       self.cache_dir / f"{self.onnx_path.stem}.calibration")
        profile = builder.create_optimization_profile()
        for name, shape in shapes.items():
            if self.is_embedding:
                rest = tuple(shape[1:])
                profile.set_shape(name, (1, *rest), (16, *rest), (MAX_INSTANCES_PER_RUN, *rest))
            else:
                profile.set_shape(name, shape, shape, shape)
        config.add_optimization_profile(profile)
        logger.info("building a %s TensorRT engine for %s (%s); the first build can take minutes on a Jetson",
                    self.precision, self.onnx_path.name, self._shape_text(shapes))
        done = threading.Event()
        started = time.monotonic()

        def heartbeat():
            while not done.wait(30.0):
                logger.info("still building the TensorRT engine for %s (%.0f s)", self.onnx_path.name, time.monotonic() - started)

        threading.Thread(target=heartbeat, daemon=True).start()
        try:
            serialized = builder.build_serialized_network(network, config)
        finally:
            done.set()
        if serialized is None:
            raise BackendError(f"TensorRT failed to build an engine for {self.onnx_path}")
        logger.info("engine for %s built in %.0f s", self.onnx_path.name, time.monotonic() - started)
        return bytes(serialized)

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        if self.is_embedding and inputs[0].shape[0] > MAX_INSTANCES_PER_RUN:
            chunks = range(0, inputs[0].shape[0], MAX_INSTANCES_PER_RUN)
            return np.concatenate([self.run(*(x[i : i + MAX_INSTANCES_PER_RUN] for x in inputs)) for i in chunks])
        names = ["points", "boxes"] if self.is_embedding else ["image"]
        shapes = {name: tuple(x.shape) for name, x in zip(names, inputs)}
        engine, context = self._engine_for(shapes)
        handles = []
        try:
            for name, array in zip(names, inputs):
                context.set_input_shape(name, array.shape)
                handle, pointer = self.memory.upload(array)
                handles.append(handle)
                context.set_tensor_address(name, pointer)
            output_name = next(engine.get_tensor_name(i) for i in range(engine.num_io_tensors)
                               if engine.get_tensor_mode(engine.get_tensor_name(i)) == self._trt.TensorIOMode.OUTPUT)
            output_shape = tuple(context.get_tensor_shape(output_name))
            output, pointer = self.memory.empty(output_shape)
            handles.append(output)
            context.set_tensor_address(output_name, pointer)
            if not context.execute_async_v3(self.memory.stream_handle):
                raise BackendError(f"TensorRT execution failed for {self.onnx_path.name}")
            self.memory.synchronize()
            return self.memory.download(output, output_shape)
        finally:
            for handle in handles:
                self.memory.release(handle)


def _array_calibrator(trt, batches: Iterable[np.ndarray], memory: _DeviceMemory, cache_file: Path):
    """A ``trt.IInt8EntropyCalibrator2`` fed with preprocessed network inputs.

    Built by a function because the TensorRT base class exists only once TensorRT is imported.
    """

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = iter(batches)
            self.handle = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None:
                return None
            if self.handle is not None:
                memory.release(self.handle)
            self.handle, pointer = memory.upload(np.ascontiguousarray(batch, np.float32))
            return [pointer]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return _Calibrator()
