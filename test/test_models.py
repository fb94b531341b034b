"""The shipped default models load through every path and reproduce their model-card numbers.

The card (models/README.md) reports four held-out synthetic sequences; this test scores the first
30 frames of one of them (seed 901, never used in training) and compares with the numbers
measured for that excerpt when the card was written. Tolerance: 1.0 point, which absorbs float
differences between CPUs; a changed model or pipeline moves these numbers by far more.
"""

import itertools

import pytest

from conftest import REPO
from mots_ros.checkpoints import read_checkpoint
from mots_ros.config import preset
from mots_ros.datasets import SeqmapEntry, records_from_instance_map, write_mots_txt, write_seqmap
from mots_ros.evaluation import evaluate
from mots_ros.model_files import DEFAULT_MODELS, build_embedding_network, build_segmentation_network
from mots_ros.offline_tracking import track_dataset
from mots_ros.pipeline import MotsPipeline
from mots_ros.synthetic.driving import DrivingConfig, DrivingScene

pytestmark = pytest.mark.slow
MODELS = REPO / "models"
EXCERPT_FRAMES = 30

# Measured 2026-11-21 with the shipped files (onnxruntime-cpu, the default backend here).
CAR_EXCERPT = {"HOTA": 56.34, "sMOTSA": 46.05, "IDF1": 68.66}


def test_every_shipped_model_has_a_checkpoint_an_onnx_file_and_a_card():
    card = (MODELS / "README.md").read_text()
    for stem in DEFAULT_MODELS.values():
        assert (MODELS / f"{stem}.pth").is_file() and (MODELS / f"{stem}.onnx").is_file(), stem
        assert stem in card
        assert (MODELS / f"{stem}.pth").stat().st_size < 8e6 and (MODELS / f"{stem}.onnx").stat().st_size < 8e6


def test_shipped_checkpoints_load_strictly():
    segmentation = build_segmentation_network(MODELS / "spatial_embedding_car_lite.pth")
    assert segmentation.width <= 0.5
    for class_name in ("car", "pedestrian"):
        build_embedding_network(MODELS / f"{DEFAULT_MODELS[('embedding', class_name)]}.pth")
        assert read_checkpoint(MODELS / f"{DEFAULT_MODELS[('embedding', class_name)]}.pth")[1]["mots_ros"]["embedding_scale"] > 0


@pytest.fixture(scope="module")
def excerpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("excerpt")
    records = []
    import cv2

    (root / "images" / "0101").mkdir(parents=True)
    scene = DrivingScene(DrivingConfig(frames=100, seed=901))  # held-out sequence 0101 of the card
    for frame in itertools.islice(scene.frames(), EXCERPT_FRAMES):
        cv2.imwrite(str(root / "images" / "0101" / f"{frame.frame_index:06d}.png"), frame.image_rgb[..., ::-1])
        records += records_from_instance_map(frame.frame_index, frame.instance_map)
    write_mots_txt(root / "instances_txt" / "0101.txt", records)
    write_seqmap(root / "excerpt.seqmap", [SeqmapEntry("0101", 0, EXCERPT_FRAMES - 1)])
    return root


def test_default_car_models_reproduce_the_card_on_a_held_out_excerpt(excerpt, tmp_path):
    pipeline = MotsPipeline.from_config(preset("car-published").replace(**{"inference.cache_dir": str(tmp_path / "cache")}))
    from mots_ros.datasets import find_sequences

    track_dataset(pipeline, find_sequences(excerpt), tmp_path)
    scores = evaluate(excerpt, tmp_path, seqmap=excerpt / "excerpt.seqmap", classes=["car"]).combined("car")
    print({k: round(v, 2) for k, v in scores.items()})
    for metric, expected in CAR_EXCERPT.items():
        assert scores[metric] == pytest.approx(expected, abs=1.0), metric


def test_shipped_onnx_files_match_their_checkpoints_and_cluster_identically():
    """The .onnx files ONNX Runtime and TensorRT load are the .pth checkpoints, to fp32 rounding."""
    import numpy as np

    from mots_ros.backends.onnx_backend import OnnxRuntimeBackend
    from mots_ros.backends.torch_backend import TorchBackend
    from mots_ros.embedding.embedder import Embedder
    from mots_ros.export import max_relative_error
    from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter

    config = preset("car-published")
    stem = DEFAULT_MODELS[("segmentation", "car")]
    on_torch = SpatialEmbeddingSegmenter(TorchBackend(build_segmentation_network(MODELS / f"{stem}.pth")), config.segmentation)
    on_ort = SpatialEmbeddingSegmenter(OnnxRuntimeBackend(MODELS / f"{stem}.onnx"), config.segmentation)
    with_cars = None
    for frame in itertools.islice(DrivingScene(DrivingConfig(frames=100, seed=902)).frames(), 0, 12, 4):
        raw_torch, raw_ort = on_torch.predict_raw(frame.image_rgb), on_ort.predict_raw(frame.image_rgb)
        assert max_relative_error(raw_torch, raw_ort) < 1e-4
        labels = on_torch.cluster(raw_torch)[0]
        np.testing.assert_array_equal(labels, on_ort.cluster(raw_ort)[0])
        if labels.max() > 0:
            with_cars = (labels, frame.image_rgb)
    assert with_cars is not None, "the frames should contain cars for the comparisons to mean something"

    for class_name in ("car", "pedestrian"):
        stem = DEFAULT_MODELS[("embedding", class_name)]
        torch_embedder = Embedder(TorchBackend(build_embedding_network(MODELS / f"{stem}.pth")), config.embedding)
        ort_embedder = Embedder(OnnxRuntimeBackend(MODELS / f"{stem}.onnx"), config.embedding)
        clouds = torch_embedder.sample(*with_cars)
        assert len(clouds.instance_ids) > 0
        assert max_relative_error(torch_embedder.embed(clouds), ort_embedder.embed(clouds)) < 1e-4, class_name
