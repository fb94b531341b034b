"""Association alone, on real pedestrians: ground-truth masks without ids, scored by TrackEval.

Numbers were measured with this code (CPU, deterministic) and are recorded here so that a change
in association behaviour shows up as a test failure. MOTS20 is read from ../shared, never copied.
"""

import pytest

from mots_ros.config import preset
from mots_ros.offline_tracking import evaluate_oracle
from mots_ros.pipeline import MotsPipeline

pytestmark = [pytest.mark.data, pytest.mark.slow]

IOU_ONLY = {"tracker.cues.embedding.weight": 0.0, "tracker.cues.mask_iou.weight": 1.0}


def oracle_scores(mots20, out, config, first, last, fps=10.0):
    pipeline = MotsPipeline.from_config(config.replace(**{"segmentation.kind": "ground_truth"}))
    return evaluate_oracle(pipeline, mots20, out, sequences=["0005"], first=first, last=last,
                           fps=fps).combined("pedestrian")


def test_iou_only_association_on_a_short_mots20_05_excerpt(mots20, tmp_path):
    scores = oracle_scores(mots20, tmp_path, preset("pedestrian-published").replace(**IOU_ONLY, **{"tracker.threshold": 0.0}), 1, 60)
    assert scores["DetA"] == pytest.approx(100.0)  # ground-truth masks: detection is perfect
    assert scores["TP"] == 449 and scores["FP"] == 0
    # Measured 2026-11-21: HOTA 65.17, AssA 42.47, IDS 39, IDF1 56.57.
    assert scores["IDS"] == 39
    assert scores["AssA"] == pytest.approx(42.47, abs=0.01)
    assert scores["HOTA"] == pytest.approx(65.17, abs=0.01)
    assert scores["IDF1"] == pytest.approx(56.57, abs=0.01)


def test_shipped_pedestrian_embedding_beats_iou_only_on_held_out_frames(mots20, tmp_path):
    """MOTS20-05 frames 301-400 were held out of training and calibration (models/README.md)."""
    embedding = oracle_scores(mots20, tmp_path / "embedding",
                              preset("pedestrian-published").replace(**{"inference.cache_dir": str(tmp_path / "cache")}), 301, 400)
    iou_only = oracle_scores(mots20, tmp_path / "iou", preset("pedestrian-published").replace(**IOU_ONLY, **{"tracker.threshold": 0.1}),
                             301, 400)
    # Measured 2026-11-21 with the shipped pointtrack_pedestrian (onnxruntime-cpu): HOTA 82.32, AssA 67.77,
    # IDS 26, IDF1 80.55; IoU only (threshold 0.1, the best on frames 1-300): AssA 53.39, IDS 75.
    assert embedding["AssA"] == pytest.approx(67.77, abs=1.0) and embedding["IDS"] == pytest.approx(26, abs=3)
    assert iou_only["AssA"] == pytest.approx(53.39, abs=0.01) and iou_only["IDS"] == 75
    assert embedding["AssA"] > iou_only["AssA"] + 10 and embedding["IDS"] < iou_only["IDS"] / 2


def test_measured_pedestrian_preset_associates_better_on_held_out_frames(mots20, tmp_path):
    """The ``pedestrian`` preset (embedding average, motion cue, DIS flow) on the frames its embedding never saw.

    Its tracks live 1 s by stamp, so the stamps follow MOTS20-05's real 14 frames/s.
    """
    scores = oracle_scores(mots20, tmp_path, preset("pedestrian").replace(**{"inference.cache_dir": str(tmp_path / "cache")}),
                           301, 400, fps=14.0)
    # Measured 2026-12-02 (onnxruntime-cpu): HOTA 90.77, AssA 82.39, IDS 26, IDF1 87.94; the published
    # preset on the same frames: HOTA 82.32, AssA 67.77, IDS 26 (test above).
    assert scores["AssA"] == pytest.approx(82.39, abs=1.5) and scores["HOTA"] == pytest.approx(90.77, abs=1.0)
    assert scores["IDS"] == pytest.approx(26, abs=4)
    assert scores["AssA"] > 67.77 + 10
