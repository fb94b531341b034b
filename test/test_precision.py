"""int8 quantization, agreement with fp32, and the choice backend/precision auto makes from a measured record."""

import json

import cv2
import numpy as np
import onnx
import pytest
import torch

from mots_ros.backends.onnx_backend import OnnxRuntimeBackend
from mots_ros.backends.quantization import cached_int8_model, output_layers
from mots_ros.config import preset
from mots_ros.errors import BackendError
from mots_ros.export import export_segmentation
from mots_ros.pipeline import MotsPipeline
from mots_ros.precision import (
    AGREEMENT_BOUNDS,
    choose,
    format_agreement,
    instance_agreement,
    measure_agreement,
    record_path,
    resolve_auto,
    save_record,
)
from mots_ros.segmentation import SpatialEmbeddingNet
from mots_ros.segmenters.spatial_embedding import CalibrationImages, to_network_input
from mots_ros.synthetic.driving import DrivingConfig, DrivingScene


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """A short synthetic drive (KITTI size, seed 905): calibration images (first 4), frames to measure on (last 4)."""
    folder = tmp_path_factory.mktemp("drive")
    frames = [frame.image_rgb for frame in DrivingScene(DrivingConfig(frames=8, seed=905)).frames()]
    (folder / "calibration").mkdir()
    for index, image in enumerate(frames[:4]):
        cv2.imwrite(str(folder / "calibration" / f"{index:06d}.png"), image[..., ::-1])
    return folder, frames[4:]


def test_instance_agreement_counts_matched_lost_and_gained():
    reference = np.zeros((20, 20), np.int32)
    reference[0:10, 0:10] = 1  # kept exactly
    reference[12:20, 0:10] = 2  # shrunk to IoU 0.75 (paired, not matched)
    reference[0:5, 12:20] = 3  # missing in the other map (lost)
    other = np.zeros_like(reference)
    other[0:10, 0:10] = 7
    other[14:20, 0:10] = 8
    other[10:12, 12:20] = 9  # no overlap with anything (gained)
    assert instance_agreement(reference, other) == (3, 1, 1, 1)
    assert instance_agreement(reference, reference) == (3, 3, 0, 0)
    assert instance_agreement(reference, np.zeros_like(reference)) == (3, 0, 3, 0)


def test_int8_file_is_quantized_except_its_output_layers_and_runs_close_to_fp32(tmp_path, drive):
    folder, frames = drive
    torch.manual_seed(0)
    source = export_segmentation(SpatialEmbeddingNet(width=0.25).eval(), tmp_path / "se.onnx", height=None, width=None)
    images = CalibrationImages(folder / "calibration")
    quantized = cached_int8_model(source, tmp_path / "int8", lambda: ((b,) for b in images()), images.key)
    assert cached_int8_model(source, tmp_path / "int8", lambda: iter(()), images.key) == quantized  # cached
    model = onnx.load(str(quantized))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    kept_float = output_layers(onnx.load(str(source)))
    assert len(kept_float) == 2  # the two decoders' output convolutions
    quantized_inputs = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    for node in model.graph.node:
        if node.name in kept_float:
            assert node.input[1] not in quantized_inputs  # its weight is float, not dequantized int8
    image = to_network_input(frames[0], 376, 1248)
    fp32 = OnnxRuntimeBackend(source).run(image)
    int8 = OnnxRuntimeBackend(quantized).run(image)
    assert int8.shape == fp32.shape and np.isfinite(int8).all()
    assert 0 < np.abs(int8 - fp32).max() < 0.5 * np.abs(fp32).max()  # really changed, still the same function


def test_int8_needs_calibration_images_and_says_so():
    config = preset("car-published").replace(**{"inference.backend": "onnxruntime", "inference.precision": "int8"})
    with pytest.raises(BackendError, match="int8 needs inference.calibration_images"):
        MotsPipeline.from_config(config)


def test_measured_record_drives_auto_and_nothing_else(tmp_path, drive):
    folder, frames = drive
    config = preset("car-published").replace(**{
        "inference.cache_dir": str(tmp_path / "cache"), "inference.calibration_images": str(folder / "calibration")})
    record = measure_agreement(config, frames, threads=1)
    reference = record["segmentation"]["onnxruntime_fp32"]
    assert reference["matched_share"] == 1.0 and reference["lost"] == reference["gained"] == 0
    assert reference["instances_fp32"] > 0
    for name in ("onnxruntime_int8", "openvino_int8", "openvino_fp32"):
        assert name in record["segmentation"]
    assert record["segmentation"]["openvino_fp32"]["matched_share"] == 1.0
    assert "onnxruntime_int8" not in record["embedding"]  # int8 quantizes the segmentation network only
    assert record["embedding"]["openvino_fp32"]["drift_share"] < 1e-4
    text = format_agreement(record)
    assert "auto runs the segmentation network on:" in text

    # A record in which OpenVINO bf16 is within the bounds and fastest: auto takes it for the embedding.
    record["embedding"]["openvino_bf16"] = {"backend": "openvino", "precision": "bf16", "drift_median": 0.1,
                                            "drift_share": AGREEMENT_BOUNDS["embedding_drift_share"] / 2,
                                            "median_ms": 0.001, "drift_max": 0.2,
                                            "distance_between_instances_median": 10.0}
    record["segmentation"]["openvino_int8"].update(median_ms=0.001, matched_share=0.5)  # fastest, but outside
    path = save_record(config, record)
    assert path == record_path(config) and json.loads(path.read_text())["frames"] == len(frames)
    assert choose(record, "embedding") == ("openvino", "bf16")
    assert choose(record, "segmentation")[1] != "int8"
    import openvino

    if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert MotsPipeline.from_config(config).backend_names["embedding"] == "openvino-cpu-bf16"
    # A named backend or precision is never overridden, and other model files have no record.
    assert resolve_auto(config.replace(**{"inference.backend": "onnxruntime"}), "embedding").inference.precision == "auto"
    assert resolve_auto(config.replace(**{"inference.precision": "fp32"}), "embedding").inference.backend == "auto"
    other_models = config.replace(**{"segmentation.weights": str(folder / "calibration" / "000000.png")})
    assert resolve_auto(other_models, "embedding") == other_models
    # A record made where another runtime was installed never breaks the pipeline here.
    record["embedding"]["tensorrt_fp16"] = dict(record["embedding"]["openvino_bf16"], backend="tensorrt",
                                                precision="fp16", median_ms=0.0001)
    save_record(config, record)
    assert choose(record, "embedding") == ("tensorrt", "fp16")
    from mots_ros.registry import BACKENDS

    if not BACKENDS.load("tensorrt").available_devices():
        assert resolve_auto(config, "embedding") == config
