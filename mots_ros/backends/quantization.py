"""int8 post-training quantization of an ONNX network, calibrated on real inputs (ONNX Runtime's QDQ tools).

The result is a standard QDQ ONNX file (QuantizeLinear/DequantizeLinear pairs around int8 weights
and activations). ONNX Runtime runs it with its int8 kernels, and OpenVINO reads the same file and
runs int8 where the CPU has VNNI or AMX, so one quantizer serves both backends. It is ONNX
Runtime's own ``onnxruntime.quantization``, already installed with the runtime: no NNCF (which
would add its own dependency tree) and no OpenVINO-only format.

Two choices keep int8 usable for SpatialEmbedding, both measured (README, "int8"):

- the layers that write the graph's outputs stay in float: the sigma channels are used as
  ``exp(10 * s)``, so an int8 step there changes every bandwidth by several percent;
- weights are quantized per output channel, activations per tensor from their min/max over the
  calibration images (percentile and entropy calibration scored no better here).

Quantized files are cached by the content of the float file and the list of calibration files.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mots_ros.atomic_files import replacing
from mots_ros.errors import BackendError

logger = logging.getLogger(__name__)

#: Ops that only move data: walking back from an output through them finds the layer that computed it.
_DATA_MOVEMENT_OPS = {"Concat", "Reshape", "Transpose", "Slice", "Split", "Squeeze", "Unsqueeze", "Identity", "Flatten"}
#: Ops ONNX Runtime's quantizer turns into int8 compute.
_COMPUTE_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}

#: ``calibration_inputs()`` yields network inputs, one array per input of the graph, in order.
CalibrationInputs = Callable[[], Iterable[tuple[np.ndarray, ...]]]


def output_layers(model: Any) -> list[str]:
    """Names of the compute nodes whose results reach a graph output through data-movement ops only."""
    producers = {output: node for node in model.graph.node for output in node.output}
    found, stack, seen = [], [o.name for o in model.graph.output], set()
    while stack:
        tensor = stack.pop()
        node = producers.get(tensor)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in _COMPUTE_OPS:
            found.append(node.name)
        elif node.op_type in _DATA_MOVEMENT_OPS:
            stack.extend(node.input)
    return found


def quantize_int8(source: Path, target: Path, calibration_inputs: CalibrationInputs, *,
                  keep_outputs_float: bool = True) -> Path:
    """Writes the int8 QDQ version of the ONNX file ``source`` to ``target``.

    Args:
        source: a float ONNX file.
        target: where the quantized file goes.
        calibration_inputs: yields the network's inputs for calibration (real frames, preprocessed
            as at inference).
        keep_outputs_float: leave the layers that write the outputs in float (see the module doc).

    Raises:
        BackendError: the ONNX Runtime quantization tools are missing, no calibration input came,
            or quantization failed.
    """
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as err:
        raise BackendError("int8 quantization needs onnxruntime and onnx: pip install onnxruntime onnx") from err

    model = onnx.load(str(source))
    initialisers = {i.name for i in model.graph.initializer}
    input_names = [i.name for i in model.graph.input if i.name not in initialisers]

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
        def __init__(self) -> None:
            self.count = 0
            self._inputs: Iterator[tuple[np.ndarray, ...]] = iter(calibration_inputs())

        def get_next(self) -> dict[str, np.ndarray] | None:
            arrays = next(self._inputs, None)
            if arrays is None:
                return None
            self.count += 1
            return {name: np.ascontiguousarray(a, np.float32) for name, a in zip(input_names, arrays)}

    reader = Reader()
    excluded = output_layers(model) if keep_outputs_float else []
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mots_int8_") as work:
        prepared = Path(work) / "prepared.onnx"
        try:
            # Symbolic shape inference cannot resolve the dynamic image size; ONNX's own is enough.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(target), reader, quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded)
        except BackendError:
            raise
        except Exception as err:  # the quantizer raises plain Exceptions and ONNX errors
            target.unlink(missing_ok=True)
            raise BackendError(f"int8 quantization of {source} failed: {type(err).__name__}: {err}") from err
    if reader.count == 0:
        target.unlink(missing_ok=True)
        raise BackendError("int8 quantization got no calibration input (inference.calibration_images is empty?)")
    logger.info("quantized %s to int8 on %d calibration inputs (float outputs: %s)", source.name, reader.count,
                ", ".join(excluded) or "none")
    return target


def cached_int8_model(source: Path, cache_dir: Path, calibration_inputs: CalibrationInputs,
                      calibration_key: str) -> Path:
    """The int8 file of ``source``, quantized once per float file and calibration set.

    Args:
        source: the float ONNX file.
        cache_dir: the folder of quantized files.
        calibration_inputs: as for :func:`quantize_int8`.
        calibration_key: names the calibration set (e.g. its file names and sizes); a different set
            makes a new file.
    """
    digest = hashlib.sha256(source.read_bytes() + calibration_key.encode()).hexdigest()[:16]
    target = cache_dir / f"{source.stem}-int8-{digest}.onnx"
    if target.is_file():
        return target
    logger.info("quantizing %s to int8 (once; cached as %s)", source, target)
    with replacing(target) as partial:  # a crash mid-way never leaves a file that looks finished
        quantize_int8(source, partial, calibration_inputs)
    return target
