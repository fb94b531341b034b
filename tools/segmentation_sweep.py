"""The full pipeline on one MOTS20 sequence at several clustering settings, scored by TrackEval.

The segmentation network runs once per frame; every setting re-clusters that same output and
tracks it with its own embeddings and tracker, so the settings differ in clustering alone. Prints
HOTA, DetA, AssA, sMOTSA, MOTSA, IDS, IDF1, mask recall and precision at IoU 0.5 (CLEAR's
matching) and the share of people inside merged masks (one mask over half of two or more people)
per setting, and writes them to JSON. It also reports how many annotated people hold a
seed score of at least each threshold anywhere in their mask: the recall clustering could reach.

    python tools/segmentation_sweep.py --data ../shared/data/mots20 --sequence 0009 \
        --weights se_05/final.pth --seed-thresholds 0.5 0.6 0.7 0.8 0.9 0.94 --out sweep_09.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from mots_ros.backends import create_backend
from mots_ros.config import preset
from mots_ros.datasets import (MotsRecord, SeqmapEntry, find_sequences, read_annotations, read_image_rgb, records_by_frame,
                               write_mots_txt)
from mots_ros.datatypes import Frame
from mots_ros.masks import decode_rle
from mots_ros.offline_tracking import iterate_frames, result_records, score_results
from mots_ros.pipeline import MotsPipeline
from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter

COLUMNS = ("HOTA", "DetA", "AssA", "sMOTSA", "MOTSA", "IDS", "IDF1", "recall", "precision")


class LastOutput:
    """A backend that remembers its last input and output: the settings of one frame share one forward."""

    def __init__(self, backend):
        self.backend, self.name, self.fixed_input_size = backend, backend.name, backend.fixed_input_size
        self._last: tuple[bytes, np.ndarray] | None = None

    @property
    def last_output(self) -> np.ndarray:
        assert self._last is not None
        return self._last[1]

    def run(self, network_input: np.ndarray) -> np.ndarray:
        key = network_input.tobytes()
        if self._last is None or self._last[0] != key:
            self._last = (key, self.backend.run(network_input))
        return self._last[1]


def with_rates(scores: dict[str, float]) -> dict[str, float]:
    """TrackEval's scores plus mask recall and precision (CLEAR's matches at IoU 0.5), in %."""
    true_positives = scores["TP"]
    return {**scores, "recall": 100.0 * true_positives / max(1, true_positives + scores["FN"]),
            "precision": 100.0 * true_positives / max(1, true_positives + scores["FP"])}


def peak_seed_scores(raw: np.ndarray, frame_shape: tuple[int, ...], annotated) -> list[tuple[float, int]]:
    """``(highest seed score in the mask, mask height in px)`` of each annotated person of a frame."""
    import cv2

    height, width = frame_shape[:2]
    scale_rows, scale_cols = raw.shape[2] / height, raw.shape[3] / width
    network_rows, network_cols = round(height * min(scale_rows, scale_cols)), round(width * min(scale_rows, scale_cols))
    seed = 1.0 / (1.0 + np.exp(-raw[0, -1, :network_rows, :network_cols].astype(np.float64)))
    if seed.shape != (height, width):
        seed = cv2.resize(seed, (width, height), interpolation=cv2.INTER_LINEAR)
    peaks = []
    for record in annotated:
        if record.is_ignore or record.track_id // 1000 != 2:
            continue
        mask = decode_rle(record.rle).astype(bool)
        rows = np.flatnonzero(mask.any(1))
        if rows.size:
            peaks.append((float(seed[mask].max()), int(rows[-1] - rows[0] + 1)))
    return peaks


def merges(annotations: dict, predicted: list[MotsRecord]) -> dict[str, float]:
    """Predicted masks that cover at least half of two or more annotated people, and the people inside them, in %.

    A person with a strong seed whose pixels a neighbour's cluster swallows is lost to recall even
    though the seed map found them; this counts how often that happens.
    """
    by_frame = records_by_frame(predicted)
    people = masks = merged_masks = merged_people = 0
    for frame, annotated in annotations.items():
        persons = [decode_rle(r.rle).ravel() for r in annotated if not r.is_ignore and r.track_id // 1000 == 2]
        found = [decode_rle(r.rle).ravel() for r in by_frame.get(frame, ())]
        people += len(persons)
        masks += len(found)
        if not persons or not found:
            continue
        person_matrix = np.stack(persons).astype(np.float32)
        overlap = person_matrix @ np.stack(found).astype(np.float32).T  # pixels of person i inside mask j
        covered = overlap >= 0.5 * person_matrix.sum(1, keepdims=True)
        merged = covered.sum(0) >= 2
        merged_masks += int(merged.sum())
        merged_people += int(covered[:, merged].any(1).sum())
    return {"people_in_merged_masks": 100.0 * merged_people / max(1, people),
            "merged_masks": 100.0 * merged_masks / max(1, masks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="MOTS20 folder")
    parser.add_argument("--sequence", required=True, help="sequence name, e.g. 0005")
    parser.add_argument("--weights", required=True, help="segmentation checkpoint")
    parser.add_argument("--preset", default="pedestrian", help="tracking preset")
    parser.add_argument("--seed-thresholds", type=float, nargs="+", default=[0.94])
    parser.add_argument("--min-pixels", type=int, nargs="+", default=[160])
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate for stamps (default 10, as mots-ros track)")
    parser.add_argument("--first", type=int, help="first frame number (default: the sequence's first)")
    parser.add_argument("--last", type=int, help="last frame number (default: the sequence's last)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another config change")
    parser.add_argument("--out", type=Path, required=True, help="JSON file; the tracks go beside it")
    args = parser.parse_args()

    overrides = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in args.set)}
    base = preset(args.preset).replace(**{"segmentation.weights": args.weights, **overrides})
    network = LastOutput(create_backend("segmentation", base))
    sequence = next(s for s in find_sequences(args.data) if s.name == args.sequence)
    frames = list(iterate_frames(sequence.image_dir, args.first, args.last))
    settings = [(t, m) for t in args.seed_thresholds for m in args.min_pixels]
    pipelines = []
    for threshold, min_pixel in settings:
        config = base.replace(**{"segmentation.seed_threshold": threshold, "segmentation.min_pixel": min_pixel})
        pipelines.append(MotsPipeline.from_config(config, segmenter=SpatialEmbeddingSegmenter(network, config.segmentation)))

    # Frame by frame across all settings, so each network output is reused while it is cached.
    fps = args.fps
    records: list[list[MotsRecord]] = [[] for _ in settings]
    for pipeline in pipelines:
        pipeline.reset(restart_ids=True)
    annotations = records_by_frame(read_annotations(sequence))
    peak_seeds: list[tuple[float, int]] = []  # per annotated person: best seed score in the mask, mask height
    for frame, path in tqdm(frames, unit="frame", desc=f"{args.sequence}, {len(settings)} settings"):
        image = read_image_rgb(path)
        stamp_ns = int(round((frame - frames[0][0]) * 1e9 / fps))
        for pipeline, out in zip(pipelines, records):
            out.extend(result_records(pipeline.process(Frame(image, stamp_ns=stamp_ns, frame_index=frame)), frame))
        peak_seeds += peak_seed_scores(network.last_output, image.shape, annotations.get(frame, ()))

    results = {}
    for (threshold, min_pixel), sequence_records in zip(settings, records):
        out_dir = args.out.parent / f"{args.out.stem}_t{threshold:g}_m{min_pixel}"
        out_dir.mkdir(parents=True, exist_ok=True)
        write_mots_txt(out_dir / f"{args.sequence}.txt", sequence_records)
        entry = SeqmapEntry(args.sequence, frames[0][0], frames[-1][0])
        scores = with_rates(score_results(args.data, out_dir, [entry]).combined("pedestrian"))
        merge = merges({f: annotations[f] for f, _ in frames if f in annotations}, sequence_records)
        results[f"{threshold:g}/{min_pixel}"] = {"seed_threshold": threshold, "min_pixel": min_pixel,
                                                 **{k: float(scores[k]) for k in COLUMNS}, **merge}
        print(f"seed {threshold:<5g} min_pixel {min_pixel:<5d} " + "  ".join(f"{k} {scores[k]:.2f}" for k in COLUMNS)
              + f"  people in merged masks {merge['people_in_merged_masks']:.1f}%", flush=True)
    reachable = {}
    for threshold in sorted({*args.seed_thresholds, 0.5, 0.7, 0.9, 0.94}):
        row = {}
        for name, low, high in (("all", 0, 10**6), ("under 100 px tall", 0, 100), ("100 px tall or more", 100, 10**6)):
            chosen = [peak for peak, tall in peak_seeds if low <= tall < high]
            row[name] = {"people": len(chosen), "reaching": 100.0 * float(np.mean([p >= threshold for p in chosen])) if chosen else 0.0}
        reachable[f"{threshold:g}"] = row
        print(f"people with a seed >= {threshold:g} in their mask: " +
              "  ".join(f"{name} {v['reaching']:.1f}% of {v['people']}" for name, v in row.items()))
    args.out.write_text(json.dumps({"sequence": args.sequence, "weights": args.weights, "preset": args.preset,
                                    "overrides": overrides, "results": results, "seed_reached": reachable}, indent=2))



if __name__ == "__main__":
    main()
