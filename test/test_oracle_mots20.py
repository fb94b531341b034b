"""Association alone, on real pedestrians: ground-truth masks without ids, scored by TrackEval.

Numbers were measured with this code (CPU, deterministic) and are recorded here so that a change
in association behaviour shows up as a test failure. MOTS20 is read from ../shared, never copied.
"""

import pytest

from mots_ros.config import preset
from mots_ros.datasets import SeqmapEntry, find_sequences, write_seqmap
from mots_ros.evaluation import evaluate
from mots_ros.offline import track_dataset
from mots_ros.pipeline import MotsPipeline

pytestmark = [pytest.mark.data, pytest.mark.slow]

FIRST, LAST = 1, 60  # a short MOTS20-05 excerpt keeps CI fast; the benchmark runs both sequences


def oracle_scores(mots20, tmp_path, config):
    sequences = [s for s in find_sequences(mots20) if s.name == "0005"]
    pipeline = MotsPipeline.from_config(config, segment=False)
    track_dataset(pipeline, sequences, tmp_path, oracle=True, first=FIRST, last=LAST)
    write_seqmap(tmp_path / "excerpt.seqmap", [SeqmapEntry("0005", FIRST, LAST)])
    return evaluate(mots20, tmp_path, seqmap=tmp_path / "excerpt.seqmap").combined("pedestrian")


def test_iou_only_association_on_mots20_05(mots20, tmp_path):
    config = preset("pedestrian").replace(
        **{"tracker.reid_scale": 0.0, "tracker.mask_iou_weight": 1.0, "tracker.threshold": 0.0}
    )
    scores = oracle_scores(mots20, tmp_path, config)
    assert scores["DetA"] == pytest.approx(100.0)  # ground-truth masks: detection is perfect
    assert scores["TP"] == 449 and scores["FP"] == 0
    # Measured 2026-11-21: HOTA 65.17, AssA 42.47, IDS 39, IDF1 56.57.
    assert scores["IDS"] == 39
    assert scores["AssA"] == pytest.approx(42.47, abs=0.01)
    assert scores["HOTA"] == pytest.approx(65.17, abs=0.01)
    assert scores["IDF1"] == pytest.approx(56.57, abs=0.01)
