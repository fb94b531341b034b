"""Offline tracking: the pipeline over image sequences on disk and over rosbags, scored by TrackEval.

Used by ``mots-ros track``, ``oracle`` and ``bag eval``, the benchmark and the tests. Frames of a
sequence are fed in frame-number order with stamps ``(frame - first) / fps``, so track ages in
frames and in seconds agree. Oracle runs use the ``ground_truth`` segmenter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from mots_ros.datasets import (
    MotsRecord,
    SeqmapEntry,
    SequenceFiles,
    find_sequences,
    list_frames,
    read_annotations,
    read_image_rgb,
    records_by_frame,
    write_mots_txt,
    write_seqmap,
)
from mots_ros.datatypes import Frame, FrameResult
from mots_ros.errors import ConfigError, MotsError
from mots_ros.evaluation import EvaluationResult, evaluate, save_result
from mots_ros.pipeline import MotsPipeline
from mots_ros.segmenters.ground_truth import GroundTruthSegmenter

logger = logging.getLogger(__name__)

DEFAULT_FPS = 10.0  # KITTI's camera rate
#: Frame rates of the MOTSChallenge (MOTS20) training sequences, from their seqinfo.ini files.
MOTS20_FPS = {"0002": 30.0, "0005": 14.0, "0009": 30.0, "0011": 30.0}


def result_records(result: FrameResult, frame: int) -> list[MotsRecord]:
    """The txt records of one frame's tracked instances (small track ids, KITTI MOTS class ids)."""
    return [MotsRecord(frame, t.track_id, t.class_id, t.rle) for t in result.instances]


def iterate_frames(
    image_dir: str | os.PathLike, first: int | None = None, last: int | None = None
) -> Iterator[tuple[int, Path]]:
    """``(frame_number, path)`` of the sequence's images within ``[first, last]``."""
    for frame, path in list_frames(image_dir):
        if (first is None or frame >= first) and (last is None or frame <= last):
            yield frame, path


def track_sequence(
    pipeline: MotsPipeline,
    frames: Iterable[tuple[int, Path]],
    *,
    fps: float = DEFAULT_FPS,
    on_result: Callable[[int, np.ndarray, FrameResult], None] | None = None,
    progress: bool = False,
) -> list[MotsRecord]:
    """Tracks one sequence from scratch and returns its result records.

    Args:
        pipeline: reset before the first frame (ids restart at 1, sampling restarts from its seed).
        frames: ``(frame_number, image_path)`` in order.
        fps: frame rate, for stamps.
        on_result: called with ``(frame, image_rgb, result)`` after each frame (overlays, ...).
        progress: show a progress bar.
    """
    frames = list(frames)
    pipeline.reset(restart_ids=True)
    records: list[MotsRecord] = []
    first = frames[0][0] if frames else 0
    iterator: Iterable[tuple[int, Path]] = frames
    if progress:
        from tqdm import tqdm

        iterator = tqdm(frames, unit="frame", desc="tracking")
    for frame, path in iterator:
        image = read_image_rgb(path)
        stamp_ns = int(round((frame - first) * 1e9 / fps))
        try:
            result = pipeline.process(Frame(image, stamp_ns=stamp_ns, frame_index=frame))
        except MotsError as err:
            # One bad frame must not lose the sequence; it simply has no output.
            logger.error("frame %d (%s) skipped: %s", frame, path, err)
            continue
        records.extend(result_records(result, frame))
        if on_result is not None:
            on_result(frame, image, result)
    return records


def track_dataset(
    pipeline: MotsPipeline,
    sequences: list[SequenceFiles],
    out_dir: str | os.PathLike,
    *,
    first: int | None = None,
    last: int | None = None,
    fps: float | Mapping[str, float] = DEFAULT_FPS,
    progress: bool = False,
) -> list[Path]:
    """Tracks every sequence and writes ``<out_dir>/<seq>.txt``.

    With the ``ground_truth`` segmenter, each sequence's own annotations are its segmentation.
    ``fps`` is one rate for all, or a rate per sequence name (others get ``DEFAULT_FPS``).
    """
    written = []
    for sequence in sequences:
        if isinstance(pipeline.segmenter, GroundTruthSegmenter):
            pipeline.segmenter.use_annotations(records_by_frame(read_annotations(sequence)))
        rate = fps.get(sequence.name, DEFAULT_FPS) if isinstance(fps, Mapping) else fps
        records = track_sequence(pipeline, iterate_frames(sequence.image_dir, first, last), fps=rate, progress=progress)
        path = Path(out_dir) / f"{sequence.name}.txt"
        write_mots_txt(path, records)
        written.append(path)
    return written


def evaluate_oracle(
    pipeline: MotsPipeline,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    sequences: list[str] | None = None,
    first: int | None = None,
    last: int | None = None,
    fps: float | Mapping[str, float] = DEFAULT_FPS,
    progress: bool = False,
) -> EvaluationResult:
    """Association alone: ground-truth masks without ids through ``pipeline``, scored by TrackEval.

    ``pipeline`` must use the ``ground_truth`` segmenter (``segmentation.kind: ground_truth``).
    Writes ``<out_dir>/<seq>.txt``, the seqmap of the frames it tracked and ``metrics.json``;
    returns the scores.
    """
    if not isinstance(pipeline.segmenter, GroundTruthSegmenter):
        raise ConfigError("oracle evaluation needs segmentation.kind ground_truth, "
                          f"this pipeline segments with {pipeline.segmenter.name}")
    chosen = [s for s in find_sequences(data) if not sequences or s.name in sequences]
    if not chosen:
        raise MotsError(f"{data}: none of the sequences {sequences} found")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    track_dataset(pipeline, chosen, out_dir, first=first, last=last, fps=fps, progress=progress)
    entries = []
    for sequence in chosen:
        frames = [f for f, _ in list_frames(sequence.image_dir)]
        entries.append(SeqmapEntry(sequence.name, frames[0] if first is None else first,
                                   frames[-1] if last is None else last))
    return score_results(data, out_dir, entries)


def score_results(ground_truth: str | os.PathLike, out_dir: str | os.PathLike,
                  seqmap: str | os.PathLike | list[SeqmapEntry]) -> EvaluationResult:
    """TrackEval on the ``<seq>.txt`` files in ``out_dir``; also writes ``metrics.json`` there.

    ``seqmap`` is a seqmap file, or the entries to write to ``<out_dir>/evaluated.seqmap`` first.
    """
    out_dir = Path(out_dir)
    if isinstance(seqmap, list):
        entries, seqmap = seqmap, out_dir / "evaluated.seqmap"
        write_seqmap(seqmap, entries)
    result = evaluate(ground_truth, out_dir, seqmap=seqmap)
    save_result(result, out_dir / "metrics.json")
    return result


def track_bag(pipeline: MotsPipeline, bag: str | os.PathLike, *, fps: float | None = None, progress: bool = False) -> list[MotsRecord]:
    """Runs every image of a bag through the pipeline exactly as mots_node does in replay mode.

    Frames are decoded with the node's decoder and carry only their stamp (no frame index), so
    the results equal the live node's for the same bag and parameters. Frame numbers of the
    returned records come from the stamps (see :mod:`mots_ros.bags`).
    """
    from mots_ros.bags import STAMP_ORIGIN_NS, bag_metadata, read_bag_frames, stamp_frame

    metadata = bag_metadata(bag)
    fps = fps or float(metadata.get("mots_ros.fps", DEFAULT_FPS))
    origin = int(metadata.get("mots_ros.stamp_origin_ns", STAMP_ORIGIN_NS))
    pipeline.reset(restart_ids=True)
    records: list[MotsRecord] = []
    frames: Iterable = read_bag_frames(bag, max_pixels=pipeline.max_image_pixels)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, unit="frame", desc="bag eval")
    for item in frames:
        if item.image_rgb is None:
            logger.error("image stamped %d skipped: %s", item.stamp_ns, item.problem)
            continue
        try:
            result = pipeline.process(Frame(item.image_rgb, stamp_ns=item.stamp_ns, flow=item.flow))
        except MotsError as err:
            logger.error("image stamped %d skipped: %s", item.stamp_ns, err)
            continue
        records.extend(result_records(result, stamp_frame(item.stamp_ns, fps, origin)))
    return records


def evaluate_bag(
    pipeline: MotsPipeline,
    bag: str | os.PathLike,
    ground_truth: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    sequence: str | None = None,
    fps: float | None = None,
    seqmap: str | os.PathLike | None = None,
    first: int | None = None,
    last: int | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Tracks a bag as the node would (:func:`track_bag`) and scores it against ground truth.

    Writes ``<out_dir>/<sequence>.txt``, ``metrics.json`` and, without ``seqmap``, a seqmap of the
    bag's frames (``first``/``last`` narrow it). The sequence name defaults to the bag's metadata,
    then to the bag folder's name.
    """
    from mots_ros.bags import bag_metadata

    sequence = sequence or bag_metadata(bag).get("mots_ros.sequence") or Path(bag).name
    records = track_bag(pipeline, bag, fps=fps, progress=progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_mots_txt(out_dir / f"{sequence}.txt", records)
    if seqmap is None:
        frames = sorted({r.frame for r in records}) or [0]
        return score_results(ground_truth, out_dir, [SeqmapEntry(sequence, first if first is not None else frames[0],
                                                                 last if last is not None else frames[-1])])
    return score_results(ground_truth, out_dir, seqmap)
