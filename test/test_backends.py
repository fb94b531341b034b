"""One contract for every inference backend; backends that cannot run here skip themselves."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from mots_ros.backends import available_backends
from mots_ros.backends.onnx_backend import OnnxRuntimeBackend
from mots_ros.backends.tensorrt_backend import EngineKey, cached_engine_matches, engine_paths
from mots_ros.backends.torch_backend import TorchBackend
from mots_ros.config import Config
from mots_ros.embedding import PointTrackNet
from mots_ros.errors import BackendError
from mots_ros.export import export_embedding, export_segmentation, max_relative_error, onnx_metadata
from mots_ros.segmentation import SpatialEmbeddingNet

ALL_BACKENDS = ("torch-cpu", "onnxruntime-cpu", "opencv-cpu", "openvino-cpu", "torch-cuda", "onnxruntime-cuda",
                "onnxruntime-tensorrt", "tensorrt")


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("networks")
    torch.manual_seed(0)
    se, pt = SpatialEmbeddingNet(width=0.25).eval(), PointTrackNet().eval()
    return {
        "se": se, "pt": pt, "folder": folder,
        "se_dynamic": export_segmentation(se, folder / "se_dynamic.onnx", height=None, width=None),
        "se_fixed": export_segmentation(se, folder / "se_fixed.onnx", height=64, width=128),
        "pt_onnx": export_embedding(pt, folder / "pt.onnx"),
    }


def make_backend(name, network, networks):
    runtime, _, device = name.partition("-")
    if name == "tensorrt":
        if "tensorrt" not in available_backends("cuda"):
            pytest.skip("TensorRT and a CUDA GPU are not available here")
        from mots_ros.backends.tensorrt_backend import TensorRTBackend

        path = networks["se_dynamic" if network == "se" else "pt_onnx"]
        return TensorRTBackend(path, precision="fp32", cache_dir=networks["folder"] / "engines")
    if runtime == "openvino":
        from mots_ros.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(networks["se_dynamic" if network == "se" else "pt_onnx"], precision="fp32")
    if runtime == "opencv":
        from mots_ros.backends.opencv_backend import OpenCvDnnBackend

        return OpenCvDnnBackend(networks["se_dynamic" if network == "se" else "pt_onnx"])
    if runtime == "torch":
        if device == "cuda" and not torch.cuda.is_available():
            pytest.skip("no CUDA GPU here")
        return TorchBackend(networks[network], device=device)
    provider = device
    try:
        return OnnxRuntimeBackend(networks["se_dynamic" if network == "se" else "pt_onnx"], provider=provider)
    except BackendError as err:
        pytest.skip(str(err))


@pytest.mark.parametrize("name", ALL_BACKENDS)
def test_segmentation_contract(name, networks):
    backend = make_backend(name, "se", networks)
    image = np.random.default_rng(1).random((1, 3, 72, 136), dtype=np.float32)
    out = backend.run(image)
    assert out.shape == (1, 5, 72, 136) and out.dtype == np.float32
    with torch.no_grad():
        reference = networks["se"](torch.from_numpy(image)).numpy()
    assert max_relative_error(reference, out) < 1e-4
    assert backend.name.startswith(name.split("-")[0])


@pytest.mark.parametrize("name", ALL_BACKENDS)
@pytest.mark.parametrize("instances", [1, 7])
def test_embedding_contract_with_any_number_of_instances(name, instances, networks):
    backend = make_backend(name, "pt", networks)
    rng = np.random.default_rng(instances)
    points, boxes = rng.random((instances, 1500, 8), dtype=np.float32), rng.random((instances, 4), dtype=np.float32)
    out = backend.run(points, boxes)
    assert out.shape == (instances, 32) and out.dtype == np.float32
    with torch.no_grad():
        reference = networks["pt"](torch.from_numpy(points), torch.from_numpy(boxes)).numpy()
    assert max_relative_error(reference, out) < 1e-4


def test_fixed_size_export_tells_the_segmenter_its_size(networks):
    from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter

    backend = OnnxRuntimeBackend(networks["se_fixed"])
    assert backend.fixed_input_size == (64, 128)
    assert OnnxRuntimeBackend(networks["se_dynamic"]).fixed_input_size is None
    segmenter = SpatialEmbeddingSegmenter(backend)
    assert segmenter.input_size(60, 120) == (64, 128)
    assert segmenter.predict_raw(np.zeros((60, 120, 3), np.uint8)).shape == (5, 60, 120)
    assert onnx_metadata(networks["se_fixed"])["input_size"] == "64x128"


def test_unusable_files_and_missing_runtimes_give_clear_errors(tmp_path, networks):
    (tmp_path / "broken.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(BackendError, match="ONNX Runtime cannot load"):
        OnnxRuntimeBackend(tmp_path / "broken.onnx")
    if "tensorrt" not in available_backends("cuda"):
        from mots_ros.backends import create_backend

        config = Config().replace(**{"inference.backend": "tensorrt", "segmentation.weights": str(networks["se_dynamic"])})
        with pytest.raises(BackendError, match="needs NVIDIA TensorRT's Python package"):
            create_backend("segmentation", config)


def test_auto_picks_the_fastest_available_backend(networks):
    from mots_ros.backends import create_backend

    config = Config().replace(**{"segmentation.weights": str(networks["se_dynamic"]), "inference.device": "cpu"})
    expected = available_backends("cpu")[0]
    assert create_backend("segmentation", config).name == expected


def test_engine_cache_key_covers_what_invalidates_an_engine(tmp_path):
    key = EngineKey("abc", "10.3.0", "Orin", "8.7", "fp16", "image=1x3x384x1248")
    digests = {key.digest()}
    for field, value in [("onnx_sha256", "abd"), ("tensorrt_version", "10.4.0"), ("gpu_name", "Xavier"),
                         ("compute_capability", "7.2"), ("precision", "int8"), ("input_shapes", "image=1x3x376x1248")]:
        digests.add(dataclasses.replace(key, **{field: value}).digest())
    assert len(digests) == 7
    engine, sidecar = engine_paths(tmp_path, tmp_path / "se.onnx", key)
    assert not cached_engine_matches(engine, sidecar, key)
    engine.write_bytes(b"engine")
    sidecar.write_text(json.dumps(dataclasses.asdict(key)))
    assert cached_engine_matches(engine, sidecar, key)
    assert not cached_engine_matches(engine, sidecar, dataclasses.replace(key, gpu_name="Xavier"))
    sidecar.write_text("{ corrupt")
    assert not cached_engine_matches(engine, sidecar, key)


def test_openvino_bf16_stays_close_to_fp32_where_the_cpu_has_bf16(networks):
    import openvino

    from mots_ros.backends.openvino_backend import OpenVinoBackend

    if "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(BackendError, match="no bf16 instructions"):
            OpenVinoBackend(networks["se_dynamic"], precision="bf16")
        return
    image = np.random.default_rng(1).random((1, 3, 72, 136), dtype=np.float32)
    fp32 = OpenVinoBackend(networks["se_dynamic"], precision="fp32").run(image)
    bf16 = OpenVinoBackend(networks["se_dynamic"], precision="bf16")
    assert bf16.name == "openvino-cpu-bf16"
    error = max_relative_error(fp32, bf16.run(image))
    assert 1e-6 < error < 5e-2  # really reduced (not fp32 in disguise), and still close


def test_openvino_refuses_what_it_cannot_run(networks):
    from mots_ros.backends.openvino_backend import OpenVinoBackend

    with pytest.raises(BackendError, match="int8 is a quantized file"):
        OpenVinoBackend(networks["se_dynamic"], precision="int8")
    with pytest.raises(BackendError, match="OpenVINO has no device 'NPU'"):
        OpenVinoBackend(networks["se_dynamic"], device="NPU")
