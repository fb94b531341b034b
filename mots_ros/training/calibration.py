"""Fitting a trained embedding's distance scale to the published association constants.

The published constants (α, β, τ, γ; spec §7.1) were tuned for the official embedding. A newly
trained embedding has its own distance scale, so this step multiplies its output by one factor
``s`` (chosen on training sequences, never on evaluation data) and folds ``s`` into the last
linear layer. The published constants then hold for the shipped model too, and presets stay the
same for every checkpoint.

Embeddings are computed once per frame with ground-truth masks; only the tracker is re-run per
candidate scale, scored by TrackEval (association accuracy, AssA).

The embedding cue's ``negative_median`` (distances rescaled per video by the median distance
between people of one frame) is fitted the same way, over the same grid times the median of the
collected frames; that constant does not depend on the network's output scale, so nothing is
folded for it.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path


from mots_ros.config import Config
from mots_ros.datasets import MotsRecord, SeqmapEntry, find_sequences, read_annotations, records_by_frame, write_mots_txt, write_seqmap
from mots_ros.datatypes import Frame, Instance
from mots_ros.evaluation import evaluate
from mots_ros.offline_tracking import iterate_frames
from mots_ros.tracker import Tracker
from mots_ros.training.data import is_held_out_identity, parse_selection

logger = logging.getLogger(__name__)



def scale_grid(steps_per_octave: int = 2, smallest: float = 0.25, largest: float = 64.0) -> tuple[float, ...]:
    """Powers of two from ``smallest`` to ``largest``, ``steps_per_octave`` of them per doubling.

    Every coarser grid's points are on a finer one when the step counts divide (2 within 4).
    """
    if steps_per_octave < 1:
        raise ValueError(f"steps_per_octave must be at least 1, got {steps_per_octave}")
    low, high = round(math.log2(smallest) * steps_per_octave), round(math.log2(largest) * steps_per_octave)
    return tuple(float(2 ** (k / steps_per_octave)) for k in range(low, high + 1))


DEFAULT_SCALES = scale_grid(2)  # 0.25 .. 64, steps of sqrt(2)


def collect_instances(pipeline, data: Path, selections: list[str], fps: float = 10.0, held_out_identities: float = 0.0):
    """Per sequence: the (frame, stamp, instances) of every frame, with embeddings, from GT masks.

    ``pipeline`` uses the ``ground_truth`` segmenter. With ``held_out_identities``, only the
    identities that training with the same fraction left out are tracked (ignore regions stay),
    so the scale is fitted to distances between people the network never saw. The other
    ground-truth people are then simply missed, which leaves AssA (scored over matches) fair.
    """
    from mots_ros.datasets import read_image_rgb

    collected = {}
    wanted = {name: (first, last) for name, first, last in map(parse_selection, selections)}
    for sequence in find_sequences(data):
        if sequence.name not in wanted:
            continue
        first, last = wanted[sequence.name]
        records = read_annotations(sequence)
        if held_out_identities:
            records = [r for r in records if r.is_ignore or is_held_out_identity(sequence.name, r.track_id, held_out_identities)]
        pipeline.segmenter.use_annotations(records_by_frame(records))
        pipeline.reset(restart_ids=True)
        frames = []
        for frame, path in iterate_frames(sequence.image_dir, first, last):
            image = read_image_rgb(path)
            stamp = int(round(frame * 1e9 / fps))
            result = pipeline.process(Frame(image, stamp_ns=stamp, frame_index=frame))
            frames.append((frame, stamp, [t.instance for t in result.instances]))
        collected[sequence.name] = (frames, first if first is not None else frames[0][0], frames[-1][0])
    return collected


def score_scale(collected: dict, data: Path, config: Config, scale: float) -> dict[str, float]:
    """TrackEval scores of tracking the collected instances with embeddings multiplied by ``scale``."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        entries = []
        for name, (frames, first, last) in collected.items():
            tracker = Tracker(config.tracker)
            records = []
            for frame, stamp, instances in frames:
                scaled = [Instance(i.rle, i.bbox, i.class_id, i.score, i.embedding * scale) for i in instances]
                tracked = tracker.update(scaled, stamp_ns=stamp, frame_index=frame)
                records += [MotsRecord(frame, t.track_id, t.class_id, t.rle) for t in tracked]
            write_mots_txt(tmp / f"{name}.txt", records)
            entries.append(SeqmapEntry(name, first, last))
        write_seqmap(tmp / "calibration.seqmap", entries)
        result = evaluate(data, tmp, seqmap=tmp / "calibration.seqmap")
    class_name = next(iter(result.scores["COMBINED"]))
    return result.combined(class_name)


def best_candidate(table: list) -> float:
    """The candidate of ``(value, scores)`` pairs with the best AssA (ties: the best IDF1)."""
    return max(table, key=lambda item: (round(item[1]["AssA"], 6), item[1]["IDF1"]))[0]


def calibrate_scale(collected: dict, data: Path, config: Config, scales=DEFAULT_SCALES) -> tuple[float, list]:
    """The scale with the best AssA (ties: the best IDF1), and every scale's scores."""
    table = [(scale, score_scale(collected, data, config, scale)) for scale in scales]
    for scale, scores in table:
        logger.info("scale %.2f: AssA %.2f IDF1 %.2f IDS %d", scale, scores["AssA"], scores["IDF1"], scores["IDS"])
    return best_candidate(table), table


def within_frame_median(collected: dict) -> float:
    """The median distance between two instances of one frame, over every collected frame."""
    import numpy as np

    distances: list[float] = []
    for frames, _, _ in collected.values():
        for _, _, instances in frames:
            if len(instances) > 1:
                embeddings = np.stack([i.embedding for i in instances]).astype(np.float64)
                pairs = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
                distances += pairs[np.triu_indices(len(instances), 1)].tolist()
    if not distances:
        raise ValueError("no frame of the calibration sequences holds two instances")
    return float(np.median(distances))


def calibrate_negative_median(collected: dict, data: Path, config: Config, factors=DEFAULT_SCALES) -> tuple[float, list]:
    """The embedding cue's ``negative_median`` with the best AssA (ties: IDF1), and every candidate's scores.

    Candidates are ``factor × within_frame_median(collected)``.
    """
    median = within_frame_median(collected)
    table = []
    for factor in factors:
        candidate = config.replace(**{"tracker.cues.embedding.negative_median": factor * median})
        table.append((factor * median, score_scale(collected, data, candidate, 1.0)))
    return best_candidate(table), table


def fold_scale(checkpoint: Path, out: Path, scale: float, extra: dict) -> Path:
    """Writes ``checkpoint`` with its output multiplied by ``scale`` (folded into last_emb.2).

    The recorded ``embedding_scale`` is the total: an already calibrated checkpoint's scale times ``scale``.
    """
    import torch

    from mots_ros.checkpoints import read_checkpoint, save_checkpoint
    from mots_ros.embedding.network import network_options_in_state_dict
    from mots_ros.model_files import build_embedding_network

    _, metadata = read_checkpoint(checkpoint)
    earlier_scale = float(metadata.get("mots_ros", {}).get("embedding_scale", 1.0))
    model = build_embedding_network(checkpoint)
    with torch.no_grad():
        last_layers = [model.point_feat.last_emb[2]]
        if model.point_feat.parts is not None:  # part distances share the global one's scale
            last_layers.append(model.point_feat.parts.project[2])
        for layer in last_layers:
            layer.weight.mul_(scale)
            layer.bias.mul_(scale)
    # The network options come from the weights themselves, so a new option needs no entry here.
    build = {"model": "PointTrackNet", "embedding_scale": earlier_scale * scale,
             **network_options_in_state_dict(model.state_dict())}
    save_checkpoint(model, out, build=build, extra=extra)
    return out
