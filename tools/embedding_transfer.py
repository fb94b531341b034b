"""Does a trained embedding associate a sequence it never saw? Leave-one-sequence-out on MOTS20.

Each model is an ``association_study.py cache`` folder made with ``--embedding-weights`` (the
uncalibrated checkpoint: instances with ground-truth masks and raw embeddings, plus DIS flow), and
the sequence it was trained on. Per model:

1. **Calibrate on the training sequence**, frames 1–200, as ``mots-ros train calibrate`` does (the
   ``pedestrian-published`` preset without flow; best AssA, ties by IDF1), two ways:
   - ``scale``: one distance scale ``s`` over ``scale_grid(4)`` (what the shipped models fold in);
   - ``adaptive``: the embedding cue's ``negative_median`` ``R`` over the same grid times the median
     distance between people of one frame on those frames (distances then follow each video).
2. **Score on the other sequence**, all frames, at its frame rate, with TrackEval: embedding
   alone (``pedestrian`` preset, mask IoU and motion at weight 0, no flow) and the default cues
   (``pedestrian`` preset with DIS flow), each with the calibrated ``s`` or ``R``.

Nothing is chosen on the scored sequence.

    python tools/association_study.py cache --data ../shared/data/mots20 --cache out/c_09_s0 \\
        --embedding-weights g_0009_s0/final.pth
    python tools/embedding_transfer.py --data ../shared/data/mots20 --model 09_s0=out/c_09_s0:0009 \\
        --out out/transfer.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from association_study import FPS, replay, score  # noqa: E402

from mots_ros.cli import _set_overrides  # noqa: E402
from mots_ros.config import preset  # noqa: E402
from mots_ros.training.calibration import best_candidate, scale_grid, within_frame_median  # noqa: E402

CALIBRATION_FRAMES = (1, 200)  # as the shipped models; --calibration-frames changes it
EMBEDDING_ALONE = {"tracker.cues.mask_iou.weight": 0.0, "tracker.cues.motion.weight": 0.0, "flow.source": "none"}
SETTINGS = {"embedding alone": ("pedestrian", EMBEDDING_ALONE), "default cues": ("pedestrian", {})}


def negative_median(cache_dir: Path, sequence: str, frame_range: tuple[int, int]) -> float:
    """The median distance between two people of one frame, over ``frame_range``, raw embeddings."""
    with open(cache_dir / f"{sequence}_instances.pkl", "rb") as file:
        frames = pickle.load(file)["frames"]
    chosen = [f for f in frames if frame_range[0] <= f[0] <= frame_range[1]]
    return within_frame_median({sequence: (chosen, frame_range[0], frame_range[1])})


def _score(job: tuple) -> tuple[tuple, dict[str, float]]:
    key, data, cache_dir, sequence, base, overrides, scale, frame_range, out = job
    config = preset(base).replace(**overrides)
    records = replay(cache_dir, sequence, config, "fast", embedding_scale=scale, frame_range=frame_range)
    return key, score(data, out, sequence, records, frame_range)


def evaluate_model(name: str, cache_dir: Path, trained_on: str, data: Path, out: Path, workers: int,
                   calibration_frames: tuple[int, int] = CALIBRATION_FRAMES,
                   common: dict[str, Any] | None = None) -> dict[str, Any]:
    """Calibration table on the training sequence, then the scores on the other one.

    ``common`` overrides apply to every calibration and scoring run (a cue option under test).
    """
    common = common or {}
    scored_on = next(s for s in FPS if s != trained_on)
    median = negative_median(cache_dir, trained_on, calibration_frames)
    grid = scale_grid(4)
    jobs = []
    for scale in grid:
        jobs.append((("scale", scale), data, cache_dir, trained_on, "pedestrian-published", common, scale,
                     calibration_frames, out / name / "calibration" / f"scale_{scale:.3f}"))
        jobs.append((("adaptive", scale), data, cache_dir, trained_on, "pedestrian-published",
                     {**common, "tracker.cues.embedding.negative_median": scale * median}, 1.0,
                     calibration_frames, out / name / "calibration" / f"adaptive_{scale:.3f}"))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        table = dict(pool.map(_score, jobs))
    chosen = {mode: best_candidate([(s, table[(mode, s)]) for s in grid]) for mode in ("scale", "adaptive")}
    jobs = []
    for setting, (base, overrides) in SETTINGS.items():
        overrides = {**overrides, **common}
        jobs.append((("scale", setting), data, cache_dir, scored_on, base, overrides, chosen["scale"], None,
                     out / name / "scored" / f"scale_{setting.replace(' ', '_')}"))
        adaptive = {**overrides, "tracker.cues.embedding.negative_median": chosen["adaptive"] * median}
        jobs.append((("adaptive", setting), data, cache_dir, scored_on, base, adaptive, 1.0, None,
                     out / name / "scored" / f"adaptive_{setting.replace(' ', '_')}"))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        scored = dict(pool.map(_score, jobs))
    return {"trained_on": trained_on, "scored_on": scored_on, "calibration_frames": list(calibration_frames),
            "overrides": common,
            "training_negative_median": median,
            "chosen_scale": chosen["scale"], "chosen_negative_median": chosen["adaptive"] * median,
            "calibration": {f"{mode} {s:.3f}": table[(mode, s)] for mode, s in table},
            "scored": {f"{mode}, {setting}": values for (mode, setting), values in scored.items()}}


def print_table(results: dict[str, dict[str, Any]]) -> None:
    """One markdown row per model and mode: the calibrated constant and both settings' scores."""
    print("\n| model | trained → scored | distance | calibrated | embedding alone: HOTA / AssA / IDS / IDF1 "
          "| default cues: HOTA / AssA / IDS / IDF1 |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        for mode, constant in (("scale", f"×{result['chosen_scale']:.2f}"),
                               ("adaptive", f"R = {result['chosen_negative_median']:.2f}")):
            cells = []
            for setting in SETTINGS:
                v = result["scored"][f"{mode}, {setting}"]
                cells.append(f"{v['HOTA']:.2f} / {v['AssA']:.2f} / {v['IDS']:.0f} / {v['IDF1']:.2f}")
            print(f"| {name} | {result['trained_on']} → {result['scored_on']} | {mode} | {constant} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=CACHE:SEQUENCE",
                        help="a cache folder and the sequence its network was trained on")
    parser.add_argument("--out", type=Path, default=Path("out/embedding_transfer.json"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calibration-frames", type=int, nargs=2, default=CALIBRATION_FRAMES, metavar=("FIRST", "LAST"),
                        help="the training sequence's frames the constants are fitted on")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every calibration and scoring run")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for spec in args.model:
        name, rest = spec.split("=", 1)
        cache_dir, trained_on = rest.rsplit(":", 1)
        if name not in results:
            results[name] = evaluate_model(name, Path(cache_dir), trained_on, args.data,
                                           args.out.parent / f"{args.out.stem}_runs", args.workers,
                                           tuple(args.calibration_frames), _set_overrides(args.set))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
        print(f"{name}: scale ×{results[name]['chosen_scale']:.2f}, R {results[name]['chosen_negative_median']:.2f}",
              flush=True)
    print_table(results)


if __name__ == "__main__":
    main()
