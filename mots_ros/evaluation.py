"""MOTS scoring with TrackEval (``trackeval==1.3.0``): HOTA, CLEAR (sMOTSA, MOTSA, MOTSP, IDS), Identity.

Ground truth and results are read and checked with :mod:`mots_ros.datasets`, restricted to each
sequence's frame range, and re-based so that the range starts at frame 0. TrackEval's KITTI MOTS
dataset then scores them; its matching and ignore-region rules are the same for MOTSChallenge, so
both layouts, 1-based frames and excerpts (a seqmap starting mid-sequence) go through one path.
"""

from __future__ import annotations

import contextlib
import logging
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mots_ros.datasets import (
    MotsRecord,
    SeqmapEntry,
    read_instance_png_folder,
    read_mots_txt,
    read_seqmap,
    write_mots_txt,
)
from mots_ros.datatypes import CLASS_NAMES
from mots_ros.errors import FormatError

#: Reported columns: (name, trackeval metric family, field, scale).
METRICS = (
    ("HOTA", "HOTA", "HOTA", 100.0),
    ("DetA", "HOTA", "DetA", 100.0),
    ("AssA", "HOTA", "AssA", 100.0),
    ("sMOTSA", "CLEAR", "sMOTA", 100.0),
    ("MOTSA", "CLEAR", "MOTA", 100.0),
    ("MOTSP", "CLEAR", "MOTP", 100.0),
    ("IDS", "CLEAR", "IDSW", 1.0),
    ("IDF1", "Identity", "IDF1", 100.0),
    ("TP", "CLEAR", "CLR_TP", 1.0),
    ("FP", "CLEAR", "CLR_FP", 1.0),
    ("FN", "CLEAR", "CLR_FN", 1.0),
)
COMBINED = "COMBINED"

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Scores per sequence and class, plus all sequences combined (``COMBINED``).

    ``scores[sequence][class_name][metric]``; percentages are in 0..100, counts are integers.
    """

    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def combined(self, class_name: str) -> dict[str, float]:
        return self.scores[COMBINED][class_name]

    def to_json(self) -> str:
        return json.dumps(self.scores, indent=2, sort_keys=True)

    def table(self) -> str:
        """A fixed-width text table, one row per sequence and class."""
        names = [m[0] for m in METRICS]
        header = f"{'sequence':<10} {'class':<11} " + " ".join(f"{n:>7}" for n in names)
        lines = [header, "-" * len(header)]
        for sequence, per_class in self.scores.items():
            for class_name, values in per_class.items():
                cells = " ".join(
                    f"{values[n]:>7.2f}" if scale != 1.0 else f"{int(values[n]):>7d}" for n, _, _, scale in METRICS
                )
                lines.append(f"{sequence:<10} {class_name:<11} {cells}")
        return "\n".join(lines)


def find_ground_truth(gt_dir: Path, sequence: str) -> Path | None:
    """The annotation file or PNG folder of ``sequence`` in a ground-truth folder, if any."""
    for candidate in (
        gt_dir / "instances_txt" / f"{sequence}.txt",
        gt_dir / f"{sequence}.txt",
        gt_dir / "label_02" / f"{sequence}.txt",
        gt_dir / "instances" / sequence,
    ):
        if candidate.exists():
            return candidate
    return None


def _gt_sequences(gt_dir: Path) -> list[str]:
    for folder in (gt_dir / "instances_txt", gt_dir / "label_02", gt_dir):
        names = sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []
        if names:
            return names
    if (gt_dir / "instances").is_dir():
        return sorted(p.name for p in (gt_dir / "instances").iterdir() if p.is_dir())
    raise FormatError(f"{gt_dir}: no ground truth found (instances_txt/<seq>.txt, <seq>.txt or instances/<seq>/)")


def evaluate(
    gt_dir: str | os.PathLike,
    results_dir: str | os.PathLike,
    *,
    seqmap: str | os.PathLike | None = None,
    classes: list[str] | None = None,
    first: int | None = None,
    last: int | None = None,
) -> EvaluationResult:
    """Scores tracker results against ground truth.

    Args:
        gt_dir: folder holding ``instances_txt/<seq>.txt`` (or ``<seq>.txt``, or ``instances/<seq>/`` PNGs).
        results_dir: folder holding one ``<seq>.txt`` per sequence.
        seqmap: sequences and frame ranges to score; default: every ground-truth sequence over
            the frames that either side annotates.
        classes: ``car`` and/or ``pedestrian``; default: the classes present in the ground truth.
        first, last: without a seqmap, score only the frames from ``first`` to ``last`` (each end
            open when None) of every sequence: an excerpt, with no hand-written seqmap.

    Raises:
        FormatError: a missing or malformed file, named with its line.
    """
    import trackeval
    from trackeval.metrics import CLEAR, HOTA, Identity

    gt_dir, results_dir = Path(gt_dir), Path(results_dir)
    entries = read_seqmap(seqmap) if seqmap else [SeqmapEntry(name, -1, -1) for name in _gt_sequences(gt_dir)]
    with tempfile.TemporaryDirectory(prefix="mots_eval_") as tmp:
        tmp = Path(tmp)
        seq_info = {}
        present_classes: set[int] = set()
        result_classes: dict[int, int] = {}
        for entry in entries:
            gt_path = find_ground_truth(gt_dir, entry.name)
            if gt_path is None:
                raise FormatError(f"{gt_dir}: no ground truth for sequence {entry.name}")
            result_path = results_dir / f"{entry.name}.txt"
            if not result_path.is_file():
                raise FormatError(f"{results_dir}: no results for sequence {entry.name} (expected {result_path.name})")
            gt = read_instance_png_folder(gt_path) if gt_path.is_dir() else read_mots_txt(gt_path)
            results = read_mots_txt(result_path)
            start, end = entry.first_frame, entry.last_frame
            if start < 0:
                frames = [r.frame for r in gt + results]
                start = 0 if not frames or min(frames) == 0 else 1
                end = max(frames, default=start)
                start, end = start if first is None else first, end if last is None else last
            present_classes |= {r.class_id for r in gt if not r.is_ignore}
            for record in results:
                result_classes[record.class_id] = result_classes.get(record.class_id, 0) + 1
            write_mots_txt(tmp / "gt" / f"{entry.name}.txt", _rebase(gt, start, end))
            write_mots_txt(tmp / "trackers" / "mots_ros" / f"{entry.name}.txt", _rebase(results, start, end))
            seq_info[entry.name] = end - start + 1
        for class_id, count in sorted(result_classes.items()):
            if class_id not in present_classes:
                name = CLASS_NAMES.get(class_id, f"class {class_id}")
                logger.warning("the results hold %d %s masks, but the ground truth has no %s: they are not scored "
                               "(ground-truth classes: %s)", count, name, name,
                               ", ".join(CLASS_NAMES.get(c, str(c)) for c in sorted(present_classes)) or "none")

        class_names = classes or [CLASS_NAMES[c] for c in sorted(present_classes) if c in CLASS_NAMES] or ["car"]
        dataset_config = {
            "GT_FOLDER": str(tmp / "gt"),
            "TRACKERS_FOLDER": str(tmp / "trackers"),
            "TRACKERS_TO_EVAL": ["mots_ros"],
            "TRACKER_SUB_FOLDER": "",
            "OUTPUT_FOLDER": str(tmp / "out"),
            "CLASSES_TO_EVAL": class_names,
            "SEQ_INFO": seq_info,
            "GT_LOC_FORMAT": "{gt_folder}/{seq}.txt",
            "PRINT_CONFIG": False,
        }
        eval_config = {
            "USE_PARALLEL": False,
            "PRINT_RESULTS": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
            "BREAK_ON_ERROR": True,
            "LOG_ON_ERROR": None,
        }
        quiet = {"PRINT_CONFIG": False}
        with contextlib.redirect_stdout(io.StringIO()):  # trackeval prints progress unconditionally
            raw, _ = trackeval.Evaluator(eval_config).evaluate(
                [trackeval.datasets.KittiMOTS(dataset_config)], [HOTA(quiet), CLEAR(quiet), Identity(quiet)]
            )
    return _summarise(raw["KittiMOTS"]["mots_ros"], class_names)


def _rebase(records: list[MotsRecord], first: int, last: int) -> list[MotsRecord]:
    return [
        MotsRecord(r.frame - first, r.track_id, r.class_id, r.rle) for r in records if first <= r.frame <= last
    ]


def _summarise(raw: dict, class_names: list[str]) -> EvaluationResult:
    result = EvaluationResult()
    for sequence, per_class in raw.items():
        name = COMBINED if sequence == "COMBINED_SEQ" else sequence
        result.scores[name] = {}
        for class_name in class_names:
            metrics = per_class[class_name]
            result.scores[name][class_name] = {
                column: float(np.mean(metrics[family][key])) * scale if scale != 1.0 else int(metrics[family][key])
                for column, family, key, scale in METRICS
            }
    # COMBINED last, so tables read top to bottom.
    if COMBINED in result.scores:
        result.scores[COMBINED] = result.scores.pop(COMBINED)
    return result


def save_result(result: EvaluationResult, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(result.to_json())
