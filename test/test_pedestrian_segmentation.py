"""The shipped pedestrian SpatialEmbedding on real video it never saw (MOTS20-05; it was trained on MOTS20-09).

Numbers were measured with the shipped files on this code and are recorded here, with the
model card's tolerance for CPU float differences, so that a changed model or pipeline shows.
MOTS20 is read from ../shared, never copied.
"""

import pytest

from conftest import REPO
from mots_ros.config import preset
from mots_ros.datasets import SeqmapEntry, find_sequences, write_mots_txt
from mots_ros.evaluation import evaluate
from mots_ros.model_files import DEFAULT_MODELS, build_segmentation_network
from mots_ros.offline_tracking import iterate_frames, track_sequence
from mots_ros.pipeline import MotsPipeline

pytestmark = [pytest.mark.data, pytest.mark.slow]
MODELS = REPO / "models"
FIRST, LAST = 301, 340  # frames neither shipped pedestrian network saw

# Measured 2026-12-03 with the shipped files (`pedestrian` preset, backend auto, 10 fps stamps as `mots-ros track`):
# HOTA 19.11, DetA 9.83, AssA 37.92, sMOTSA -2.74, TP 56, FP 45, FN 345 (a weak model: models/README.md).
EXCERPT = {"HOTA": 19.11, "DetA": 9.83, "sMOTSA": -2.74}


def test_the_pedestrian_preset_finds_and_tracks_real_people_out_of_the_box(mots20, tmp_path):
    pipeline = MotsPipeline.from_config(preset("pedestrian").replace(**{"inference.cache_dir": str(tmp_path / "cache")}))
    sequence = next(s for s in find_sequences(mots20) if s.name == "0005")
    write_mots_txt(tmp_path / "res" / "0005.txt", track_sequence(pipeline, iterate_frames(sequence.image_dir, FIRST, LAST)))
    scores = evaluate(mots20, tmp_path / "res", seqmap=_seqmap(tmp_path), classes=["pedestrian"]).combined("pedestrian")
    print({k: round(v, 2) for k, v in scores.items()})
    for metric, expected in EXCERPT.items():
        assert scores[metric] == pytest.approx(expected, abs=1.5), metric
    assert scores["TP"] >= 45 and scores["TP"] > scores["FP"]  # real people found, more right than wrong


def _seqmap(tmp_path):
    from mots_ros.datasets import write_seqmap

    path = tmp_path / "excerpt.seqmap"
    write_seqmap(path, [SeqmapEntry("0005", FIRST, LAST)])
    return path


def test_shipped_pedestrian_onnx_file_matches_its_checkpoint_on_a_real_frame(mots20):
    import numpy as np

    from mots_ros.backends.onnx_backend import OnnxRuntimeBackend
    from mots_ros.backends.torch_backend import TorchBackend
    from mots_ros.datasets import read_image_rgb
    from mots_ros.export import max_relative_error
    from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter

    config = preset("pedestrian")
    stem = DEFAULT_MODELS[("segmentation", "pedestrian")]
    on_torch = SpatialEmbeddingSegmenter(TorchBackend(build_segmentation_network(MODELS / f"{stem}.pth")), config.segmentation)
    on_ort = SpatialEmbeddingSegmenter(OnnxRuntimeBackend(MODELS / f"{stem}.onnx"), config.segmentation)
    image = read_image_rgb(next(p for f, p in iterate_frames(mots20 / "images" / "0005", FIRST, FIRST)))
    raw_torch, raw_ort = on_torch.predict_raw(image), on_ort.predict_raw(image)
    assert max_relative_error(raw_torch, raw_ort) < 1e-4
    labels = on_torch.cluster(raw_torch)[0]
    assert labels.max() > 0, "a MOTS20-05 frame full of people should give instances"
    np.testing.assert_array_equal(labels, on_ort.cluster(raw_ort)[0])
