"""Association study on MOTS20: every cue combination on ground-truth masks, leave-one-sequence-out.

Two steps, because the embedding network and DIS dominate the cost and do not depend on the
association settings:

1. ``cache``: runs the real pipeline (``pedestrian-published``, ``segmentation.kind ground_truth``)
   once per sequence and stores each frame's instances (masks, boxes, embeddings) and the DIS flow
   of the chosen preset (float16) under ``--cache``;
2. ``run``: replays the cached frames through the real :class:`mots_ros.tracker.Tracker` and cues
   for every setting of a grid (a JSON file of named overrides), scores each sequence with
   TrackEval, picks the settings on one sequence and reports them on the other.

The images are read again in ``run`` only when a cue looks at pixels (``points``).

    python tools/association_study.py cache --data ../shared/data/mots20 --cache out/assoc_cache
    python tools/association_study.py run --data ../shared/data/mots20 --cache out/assoc_cache \\
        --grid tools/association_grid.json --out out/assoc_study
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mots_ros.config import Config, preset
from mots_ros.datasets import (
    MotsRecord,
    SeqmapEntry,
    find_sequences,
    list_frames,
    read_annotations,
    read_image_rgb,
    records_by_frame,
    write_mots_txt,
)
from mots_ros.datatypes import FrameResult, Instance
from mots_ros.offline_tracking import MOTS20_FPS, score_results, track_sequence
from mots_ros.optical_flow import DisFlow
from mots_ros.pipeline import MotsPipeline
from mots_ros.tracker import Tracker

FPS = {name: MOTS20_FPS[name] for name in ("0005", "0009")}  # the sequences in ../shared
METRICS = ("HOTA", "AssA", "DetA", "IDS", "IDF1")


def cache(data: Path, cache_dir: Path, dis_preset: str, embedding_weights: str = "default",
          flow_cache: Path | None = None) -> None:
    """Step 1: instances with embeddings, and DIS flow, per frame of each sequence.

    ``embedding_weights`` picks the embedding network; ``flow_cache`` is a folder whose flow files
    are reused (linked) instead of computing DIS again, since flow does not depend on the network.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    config = preset("pedestrian-published").replace(**{"segmentation.kind": "ground_truth", "flow.source": "none",
                                                       "embedding.weights": embedding_weights})
    pipeline = MotsPipeline.from_config(config)
    for sequence in find_sequences(data):
        if sequence.name not in FPS:
            continue
        started = time.monotonic()
        pipeline.segmenter.use_annotations(records_by_frame(read_annotations(sequence)))
        frames = list_frames(sequence.image_dir)
        height, width = read_image_rgb(frames[0][1]).shape[:2]
        flow_name = f"{sequence.name}_flow_{dis_preset}.npy"
        reused = flow_cache is not None and (flow_cache / flow_name).is_file()
        if reused:
            assert flow_cache is not None
            (cache_dir / flow_name).unlink(missing_ok=True)
            (cache_dir / flow_name).symlink_to((flow_cache / flow_name).resolve())
        flows = None if reused else np.lib.format.open_memmap(cache_dir / flow_name, mode="w+", dtype=np.float16,
                                                              shape=(len(frames), height, width, 2))
        dis = DisFlow(dis_preset)
        per_frame: list[tuple[int, int, list[Instance]]] = []

        def keep(frame: int, image: np.ndarray, result: FrameResult, dis: DisFlow = dis, flows: np.ndarray | None = flows,
                 per_frame: list = per_frame) -> None:
            per_frame.append((frame, result.stamp_ns, [t.instance for t in result.instances]))
            flow = dis.next_flow(image) if flows is not None else None
            if flow is not None and flows is not None:
                flows[len(per_frame) - 1] = flow.astype(np.float16)

        track_sequence(pipeline, frames, fps=FPS[sequence.name], on_result=keep)
        if flows is not None:
            flows.flush()
        with open(cache_dir / f"{sequence.name}_instances.pkl", "wb") as file:
            pickle.dump({"frames": per_frame, "image_dir": str(sequence.image_dir)}, file)
        print(f"{sequence.name}: {len(frames)} frames cached in {time.monotonic() - started:.0f} s", flush=True)


def replay(cache_dir: Path, sequence: str, config: Config, dis_preset: str, *, embedding_scale: float = 1.0,
           frame_range: tuple[int, int] | None = None) -> list[MotsRecord]:
    """Step 2 for one sequence: the cached frames through a real Tracker built from ``config``.

    ``embedding_scale`` multiplies every embedding (as calibration folds a scale into the
    network); ``frame_range`` (inclusive) tracks only those frames.
    """
    with open(cache_dir / f"{sequence}_instances.pkl", "rb") as file:
        cached = pickle.load(file)
    flows = np.load(cache_dir / f"{sequence}_flow_{dis_preset}.npy", mmap_mode="r")
    tracker = Tracker(config.tracker)
    needs_image = any(getattr(cue, "needs_image", False) for cue in tracker.cues)
    use_flow = config.flow.source != "none"
    image_paths = dict(list_frames(cached["image_dir"])) if needs_image else {}
    records = []
    for position, (frame, stamp_ns, instances) in enumerate(cached["frames"]):
        if frame_range is not None and not frame_range[0] <= frame <= frame_range[1]:
            continue
        if embedding_scale != 1.0:
            instances = [replace(i, embedding=i.embedding * embedding_scale) for i in instances]
        flow = np.asarray(flows[position], np.float32) if use_flow and position > 0 else None
        image = read_image_rgb(image_paths[frame]) if needs_image else None
        for tracked in tracker.update(instances, stamp_ns=stamp_ns, frame_index=frame, flow=flow, image_rgb=image):
            records.append(MotsRecord(frame, tracked.track_id, tracked.class_id, tracked.rle))
    return records


#: Frames scored on their own as well: the only MOTS20 frames the shipped pedestrian embedding
#: was not trained on (models/README.md), tracked as part of the whole sequence.
EMBEDDING_HELD_OUT = {"0005": (301, 400)}


def score(data: Path, out_dir: Path, sequence: str, records: list[MotsRecord],
          frame_range: tuple[int, int] | None = None) -> dict[str, float]:
    """TrackEval on one sequence's records (only ``frame_range``, inclusive, when given)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_mots_txt(out_dir / f"{sequence}.txt", records)
    frames = [f for f, _ in list_frames(Path(data) / "images" / sequence)]
    first, last = frame_range or (frames[0], frames[-1])
    combined = score_results(data, out_dir, [SeqmapEntry(sequence, first, last)]).combined("pedestrian")
    return {key: float(combined[key]) for key in METRICS}


def _one(job: tuple[Path, Path, Path, str, str, str, dict[str, Any], str]) -> tuple[str, str, dict[str, float], float]:
    data, cache_dir, out, name, sequence, base, overrides, dis_preset = job
    started = time.monotonic()
    config = preset(base).replace(**overrides)
    records = replay(cache_dir, sequence, config, dis_preset)
    tracking_s = time.monotonic() - started
    values = score(data, out / name / sequence, sequence, records)
    if sequence in EMBEDDING_HELD_OUT:
        held_out = score(data, out / name / f"{sequence}_held_out", sequence, records, EMBEDDING_HELD_OUT[sequence])
        values.update({f"held_out_{key}": value for key, value in held_out.items()})
    return name, sequence, values, tracking_s / len({r.frame for r in records} or {1})


def run(data: Path, cache_dir: Path, grid_path: Path, out: Path, dis_preset: str, workers: int) -> None:
    """Step 2: every grid entry on every sequence, then leave-one-sequence-out choices per group."""
    grid = json.loads(grid_path.read_text())
    base = grid.get("base", "pedestrian-published")
    jobs = [(data, cache_dir, out, name, sequence, base, overrides, dis_preset)
            for name, overrides in grid["settings"].items() for sequence in FPS]
    results_path = out / "scores.json"
    scores: dict[str, dict[str, dict[str, float]]] = json.loads(results_path.read_text()) if results_path.exists() else {}
    jobs = [job for job in jobs if job[4] not in scores.get(job[3], {})]
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for name, sequence, values, s_per_frame in pool.map(_one, jobs):
            scores.setdefault(name, {})[sequence] = values
            results_path.write_text(json.dumps(scores, indent=1))
            print(f"{name:<40} {sequence}: " + "  ".join(f"{k} {v:6.2f}" for k, v in values.items() if k != "DetA")
                  + f"  ({s_per_frame * 1e3:.0f} ms/frame)", flush=True)
    print_table(scores, grid)


def print_table(scores: dict[str, dict[str, dict[str, float]]], grid: dict[str, Any]) -> None:
    """Markdown table of every setting, and the leave-one-out choice of each group."""
    print("\n| setting | 05 HOTA | 05 AssA | 05 IDS | 05 IDF1 | 05 301–400 HOTA | 05 301–400 AssA "
          "| 09 HOTA | 09 AssA | 09 IDS | 09 IDF1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in grid["settings"]:
        if name in scores and len(scores[name]) == len(FPS):
            five, nine = scores[name]["0005"], scores[name]["0009"]
            cells = [five["HOTA"], five["AssA"], five["IDS"], five["IDF1"], five.get("held_out_HOTA", float("nan")),
                     five.get("held_out_AssA", float("nan")), nine["HOTA"], nine["AssA"], nine["IDS"], nine["IDF1"]]
            print(f"| {name} | " + " | ".join(f"{v:.0f}" if i in (2, 8) else f"{v:.2f}" for i, v in enumerate(cells)) + " |")
    for group, names in grid.get("groups", {}).items():
        names = [n for n in names if n in scores and len(scores[n]) == len(FPS)]
        if not names:
            continue
        for tuned, reported in (("0009", "0005"), ("0005", "0009")):
            best = max(names, key=lambda n: (scores[n][tuned]["HOTA"], -scores[n][tuned]["IDS"]))
            print(f"{group}: tuned on {tuned} -> {best}; on {reported}: "
                  + "  ".join(f"{k} {scores[best][reported][k]:.2f}" for k in METRICS if k != "DetA"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("cache", "run", "table"))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--grid", type=Path)
    parser.add_argument("--out", type=Path, default=Path("out/assoc_study"))
    parser.add_argument("--dis-preset", default="fast")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--embedding-weights", default="default", help="cache: the embedding checkpoint")
    parser.add_argument("--flow-cache", type=Path, help="cache: reuse the DIS flow files of this cache folder")
    args = parser.parse_args()
    if args.step == "cache":
        cache(args.data, args.cache, args.dis_preset, args.embedding_weights, args.flow_cache)
    elif args.step == "run":
        run(args.data, args.cache, args.grid, args.out, args.dis_preset, args.workers)
    else:
        print_table(json.loads((args.out / "scores.json").read_text()), json.loads(args.grid.read_text()))


if __name__ == "__main__":
    main()
