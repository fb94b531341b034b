"""Scoring through real TrackEval on small hand-checkable cases."""

import json
import subprocess
import sys

import numpy as np
import pytest

from mots_ros.datasets import MotsRecord, write_mots_txt
from mots_ros.errors import FormatError
from mots_ros.evaluation import evaluate
from mots_ros.masks import encode_rle

H, W = 40, 60


def box(x0, y0, x1, y1):
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return encode_rle(mask)


def write_case(tmp_path, gt, results, first_frame=0):
    write_mots_txt(tmp_path / "gt" / "instances_txt" / "0001.txt", gt)
    write_mots_txt(tmp_path / "res" / "0001.txt", results)
    return tmp_path / "gt", tmp_path / "res"


def test_perfect_tracking_scores_100(tmp_path):
    gt = [MotsRecord(f, 1000 + i, 1, box(5 + 20 * i + f, 5, 15 + 20 * i + f, 20)) for f in range(5) for i in range(2)]
    results = [MotsRecord(r.frame, r.track_id % 1000, 1, r.rle) for r in gt]
    scores = evaluate(*write_case(tmp_path, gt, results)).combined("car")
    assert scores["HOTA"] == pytest.approx(100) and scores["sMOTSA"] == pytest.approx(100)
    assert scores["IDS"] == 0 and scores["TP"] == 10


def test_an_identity_switch_costs_what_the_formulas_say(tmp_path):
    gt = [MotsRecord(f, 1001, 1, box(10, 10, 30, 30)) for f in range(4)]
    results = [MotsRecord(f, 1 if f < 2 else 2, 1, box(10, 10, 30, 30)) for f in range(4)]
    scores = evaluate(*write_case(tmp_path, gt, results)).combined("car")
    assert scores["IDS"] == 1 and scores["TP"] == 4 and scores["FP"] == 0
    assert scores["MOTSA"] == pytest.approx(75.0)  # 1 - (FN + FP + IDS) / #GT = 1 - 1/4
    assert scores["sMOTSA"] == pytest.approx(75.0)  # (sum IoU - FP - IDS) / #GT = (4 - 1) / 4


def test_false_positives_inside_ignore_regions_are_not_counted(tmp_path):
    gt = [MotsRecord(0, 1001, 1, box(0, 0, 10, 10)), MotsRecord(0, 10000, 10, box(30, 0, 60, 40))]
    results = [
        MotsRecord(0, 1, 1, box(0, 0, 10, 10)),
        MotsRecord(0, 2, 1, box(35, 5, 45, 15)),  # inside the ignore region
        MotsRecord(0, 3, 1, box(12, 20, 25, 35)),  # a real false positive
    ]
    scores = evaluate(*write_case(tmp_path, gt, results)).combined("car")
    assert scores["TP"] == 1 and scores["FP"] == 1


def test_seqmap_excerpts_start_mid_sequence(tmp_path):
    gt = [MotsRecord(f, 2001, 2, box(10, 10, 30, 30)) for f in range(1, 11)]
    results = [MotsRecord(f, 7, 2, box(10, 10, 30, 30)) for f in range(1, 11) if f != 8]
    gt_dir, res_dir = write_case(tmp_path, gt, results)
    (tmp_path / "excerpt.seqmap").write_text("0001 empty 000006 000010\n")
    scores = evaluate(gt_dir, res_dir, seqmap=tmp_path / "excerpt.seqmap").combined("pedestrian")
    assert scores["TP"] == 4 and scores["FN"] == 1


def test_missing_results_are_named(tmp_path):
    gt_dir, res_dir = write_case(tmp_path, [MotsRecord(0, 1001, 1, box(0, 0, 5, 5))], [])
    (res_dir / "0001.txt").unlink()
    with pytest.raises(FormatError, match="no results for sequence 0001"):
        evaluate(gt_dir, res_dir)


def test_eval_command_prints_a_table_and_writes_json(tmp_path):
    gt = [MotsRecord(f, 1001, 1, box(10, 10, 30, 30)) for f in range(3)]
    gt_dir, res_dir = write_case(tmp_path, gt, [MotsRecord(r.frame, 1, 1, r.rle) for r in gt])
    run = subprocess.run(
        [sys.executable, "-m", "mots_ros.cli", "eval", "--gt", str(gt_dir), "--results", str(res_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "sMOTSA" in run.stdout and "COMBINED" in run.stdout
    saved = json.loads((res_dir / "metrics.json").read_text())
    assert saved["COMBINED"]["car"]["HOTA"] == pytest.approx(100.0)
    bad = subprocess.run(
        [sys.executable, "-m", "mots_ros.cli", "eval", "--gt", str(tmp_path / "nowhere"), "--results", str(res_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def test_excerpts_need_no_seqmap_and_classes_missing_from_the_ground_truth_are_named(tmp_path, caplog):
    import numpy as np

    from mots_ros.datasets import MotsRecord, write_mots_txt
    from mots_ros.evaluation import evaluate
    from mots_ros.masks import encode_rle

    mask = np.zeros((10, 10), bool)
    mask[2:5, 2:5] = True
    gt = [MotsRecord(frame, 2001, 2, encode_rle(mask)) for frame in range(1, 11)]
    write_mots_txt(tmp_path / "gt" / "instances_txt" / "0001.txt", gt)
    results = [MotsRecord(frame, 1, 2, encode_rle(mask)) for frame in range(1, 11)]
    results += [MotsRecord(frame, 2, 1, encode_rle(~mask)) for frame in range(1, 11)]  # cars: the GT has none
    write_mots_txt(tmp_path / "res" / "0001.txt", results)
    excerpt = evaluate(tmp_path / "gt", tmp_path / "res", first=3, last=6)
    assert excerpt.combined("pedestrian")["TP"] == 4  # frames 3-6 only
    assert "the results hold 10 car masks, but the ground truth has no car" in caplog.text
