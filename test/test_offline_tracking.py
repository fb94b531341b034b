"""Offline tracking: sequences and bags through the pipeline, and the oracle's requirements."""

import pytest

from mots_ros.bags import images_to_bag
from mots_ros.config import preset
from mots_ros.errors import ConfigError
from mots_ros.offline_tracking import evaluate_bag, evaluate_oracle, iterate_frames
from mots_ros.pipeline import MotsPipeline
from mots_ros.synthetic.driving import DrivingConfig, write_sequence

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    root = tmp_path_factory.mktemp("drive")
    write_sequence(root, "0000", DrivingConfig(frames=4, seed=5))
    return root


def test_frames_are_chosen_by_number(drive):
    assert [f for f, _ in iterate_frames(drive / "images" / "0000", 1, 2)] == [1, 2]


def test_the_oracle_needs_the_ground_truth_segmenter(drive, tmp_path):
    with pytest.raises(ConfigError, match="oracle evaluation needs segmentation.kind ground_truth"):
        evaluate_oracle(MotsPipeline.from_config(preset("car-published")), drive, tmp_path)
    result = evaluate_oracle(MotsPipeline.from_config(preset("car-published").replace(**{"segmentation.kind": "ground_truth"})),
                             drive, tmp_path)
    assert result.combined("car")["DetA"] == pytest.approx(100.0)  # the masks are the ground truth


def test_evaluate_bag_writes_results_seqmap_and_metrics(drive, tmp_path):
    images_to_bag(drive / "images" / "0000", tmp_path / "bag", fps=10)
    result = evaluate_bag(MotsPipeline.from_config(preset("car-published")), tmp_path / "bag", drive, tmp_path / "out", first=1)
    assert (tmp_path / "out" / "0000.txt").is_file() and (tmp_path / "out" / "metrics.json").is_file()
    assert [int(v) for v in (tmp_path / "out" / "evaluated.seqmap").read_text().split()[-2:]] == [1, 3]
    assert "car" in result.scores["COMBINED"]
