"""Reduced precision measured, not assumed: agreement with fp32 on real frames, and the choice ``auto`` makes from it.

``mots-ros bench --agreement-frames DIR`` runs every backend × precision installed here on the
same frames as ONNX Runtime fp32 and records, per network:

- segmentation: the share of fp32 instances matched at mask IoU >= 0.9, and the instances lost
  and gained at the seed threshold;
- embedding: the median distance between fp32 and reduced embeddings of the same point clouds,
  as a share of the median distance between different instances;
- the median forward time of each on those frames.

The record is kept per CPU and model files (``{inference.cache_dir}/precision/``). With
``backend: auto`` and ``precision: auto``, each network then runs on the fastest variant whose
agreement is within :data:`AGREEMENT_BOUNDS`; without a record for this CPU and these models,
``auto`` keeps fp32 (the ranking in :mod:`mots_ros.backends`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from mots_ros.config import Config

logger = logging.getLogger(__name__)

MATCH_IOU = 0.9
#: The most a reduced precision may differ from fp32 for ``auto`` to use it.
AGREEMENT_BOUNDS = {
    "segmentation_matched_share": 0.98,  # fp32 instances matched at mask IoU >= 0.9 (the bound)
    "segmentation_lost_gained_share": 0.02,  # instances present in one run only, per fp32 instance
    "embedding_drift_share": 0.02,  # median fp32-vs-reduced distance / median inter-instance distance
}
REFERENCE = ("onnxruntime", "fp32")


def instance_agreement(reference_labels: np.ndarray, other_labels: np.ndarray) -> tuple[int, int, int, int]:
    """``(reference instances, matched at IoU >= 0.9, only in reference, only in other)`` of two instance maps.

    Instances are paired one-to-one by maximal IoU (Hungarian); a pair with no overlap is no pair.
    """
    from scipy.optimize import linear_sum_assignment

    ref_ids = np.unique(reference_labels[reference_labels > 0])
    other_ids = np.unique(other_labels[other_labels > 0])
    if ref_ids.size == 0 or other_ids.size == 0:
        return int(ref_ids.size), 0, int(ref_ids.size), int(other_ids.size)
    # Joint histogram of (reference id, other id) over the pixels either covers gives every intersection at once.
    ref_index = np.where(reference_labels > 0, np.searchsorted(ref_ids, reference_labels) + 1, 0)
    other_index = np.where(other_labels > 0, np.searchsorted(other_ids, other_labels) + 1, 0)
    joint = np.bincount((ref_index * (other_ids.size + 1) + other_index).ravel(),
                        minlength=(ref_ids.size + 1) * (other_ids.size + 1)).reshape(ref_ids.size + 1, -1)
    intersection = joint[1:, 1:].astype(np.float64)
    union = joint[1:, :].sum(1)[:, None] + joint[:, 1:].sum(0)[None, :] - intersection
    iou = intersection / np.maximum(union, 1)
    rows, cols = linear_sum_assignment(-iou)
    paired = int((iou[rows, cols] > 0.0).sum())
    matched = int((iou[rows, cols] >= MATCH_IOU).sum())
    return int(ref_ids.size), matched, int(ref_ids.size) - paired, int(other_ids.size) - paired


def variants(config: Config) -> list[tuple[str, str]]:
    """``(backend, precision)`` pairs that can run here, the fp32 reference first."""
    import importlib.util

    found = [REFERENCE]
    if importlib.util.find_spec("onnxruntime") and config.inference.calibration_images:
        found.append(("onnxruntime", "int8"))
    if importlib.util.find_spec("openvino") is not None:
        import openvino

        found.append(("openvino", "fp32"))
        if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            found.append(("openvino", "bf16"))
        if config.inference.calibration_images:
            found.append(("openvino", "int8"))
    return found


def record_path(config: Config) -> Path:
    """Where the agreement record of this CPU and these model files lives."""
    from mots_ros.benchmark import machine_description
    from mots_ros.model_files import default_model_path

    machine = machine_description()
    digest = hashlib.sha256(f"{machine['cpu']}|{machine['matrix_instructions']}|{config.segmentation.kind}".encode())
    for network in ("segmentation", "embedding"):
        weights = getattr(config, network).weights
        try:  # the weights file itself: hashing its ONNX export would mean exporting it
            path = default_model_path(network, config.segmentation.class_id, ".onnx") if weights == "default" else Path(weights)
            digest.update(path.expanduser().read_bytes())
        except Exception as err:  # no such model here: the record then covers no file of it
            digest.update(repr(err).encode())
    return Path(config.inference.cache_dir).expanduser() / "precision" / f"{digest.hexdigest()[:16]}.json"


def measure_agreement(config: Config, frames: list[np.ndarray], threads: int = 0) -> dict[str, Any]:
    """Agreement with ONNX Runtime fp32 and forward times of every variant, per network, on ``frames``."""
    from mots_ros.benchmark import machine_description
    from mots_ros.pipeline import MotsPipeline

    def pipeline(backend: str, precision: str) -> MotsPipeline:
        return MotsPipeline.from_config(config.replace(**{
            "inference.backend": backend, "inference.precision": precision, "inference.num_threads": threads,
            "inference.device": "cpu"}))

    reference = pipeline(*REFERENCE)
    segmentations = [reference.segmenter.segment(image) for image in frames]
    clouds = [reference.embedder.sample(s.labels, image) if reference.embedder else None
              for s, image in zip(segmentations, frames)]
    record: dict[str, Any] = {"machine": machine_description(), "frames": len(frames), "threads": threads,
                              "bounds": AGREEMENT_BOUNDS, "segmentation": {}, "embedding": {}}
    for backend, precision in variants(config):
        name = f"{backend}_{precision}"
        run = pipeline(backend, precision)
        totals, seg_ms = np.zeros(4, np.int64), []
        for image, ref in zip(frames, segmentations):
            segmentation = run.segmenter.segment(image)
            seg_ms.append(segmentation.latency_ms.get("segmentation_network", float("nan")))
            totals += instance_agreement(ref.labels, segmentation.labels)
        instances, matched, lost, gained = (int(v) for v in totals)
        record["segmentation"][name] = {
            "backend": backend, "precision": precision, "instances_fp32": instances, "matched_iou_0.9": matched,
            "matched_share": matched / max(instances, 1), "lost": lost, "gained": gained,
            "lost_gained_share": (lost + gained) / max(instances, 1), "median_ms": float(np.median(seg_ms))}
        if reference.embedder is None or run.embedder is None or (precision == "int8" and backend != "tensorrt"):
            continue  # int8 quantizes the segmentation network only; its embedding is the fp32 row
        drift, spread, emb_ms = [], [], []
        for cloud in clouds:
            if cloud is None or not len(cloud.bboxes):
                continue
            ref_embedding = reference.embedder.embed(cloud)
            started = time.perf_counter()
            embedding = run.embedder.embed(cloud)
            emb_ms.append((time.perf_counter() - started) * 1e3)
            drift.extend(np.linalg.norm(ref_embedding - embedding, axis=1).tolist())
            if len(ref_embedding) > 1:
                pairwise = np.linalg.norm(ref_embedding[:, None] - ref_embedding[None], axis=-1)
                spread.extend(pairwise[np.triu_indices(len(ref_embedding), 1)].tolist())
        if drift:
            between = float(np.median(spread)) if spread else float("nan")
            record["embedding"][name] = {
                "backend": backend, "precision": precision, "drift_median": float(np.median(drift)),
                "drift_max": float(np.max(drift)), "distance_between_instances_median": between,
                "drift_share": float(np.median(drift)) / between if spread else float("nan"),
                "median_ms": float(np.median(emb_ms))}
    return record


def passes(network: str, row: dict[str, Any]) -> bool:
    """Whether a variant's measured agreement is within :data:`AGREEMENT_BOUNDS`."""
    if network == "segmentation":
        return (row["matched_share"] >= AGREEMENT_BOUNDS["segmentation_matched_share"]
                and row["lost_gained_share"] <= AGREEMENT_BOUNDS["segmentation_lost_gained_share"])
    return bool(row["drift_share"] <= AGREEMENT_BOUNDS["embedding_drift_share"])


def choose(record: dict[str, Any], network: str) -> tuple[str, str] | None:
    """The fastest ``(backend, precision)`` of ``network`` within the bounds, or None when nothing was measured."""
    rows = [row for row in record.get(network, {}).values() if passes(network, row)]
    if not rows:
        return None
    best = min(rows, key=lambda row: row["median_ms"])
    return best["backend"], best["precision"]


def save_record(config: Config, record: dict[str, Any]) -> Path:
    """Writes the record where ``auto`` looks for it and returns the path."""
    path = record_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return path


def measured_choice(config: Config, network: str) -> tuple[str, str] | None:
    """What ``auto`` runs ``network`` on by this CPU's record, or None without one (or an unreadable one)."""
    path = record_path(config)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        choice = choose(record, network)
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("ignoring the precision record %s: %s", path, err)
        return None
    if choice is not None and choice[1] == "int8" and not config.inference.calibration_images:
        return None  # measured with calibration images this config does not give
    return choice


def resolve_auto(config: Config, network: str) -> Config:
    """``config`` with ``backend: auto`` + ``precision: auto`` replaced by this CPU's measured choice for ``network``.

    Anything else (a named backend or precision, no record) is returned unchanged.
    """
    if config.inference.backend != "auto" or config.inference.precision != "auto":
        return config
    choice = measured_choice(config, network)
    if choice is None:
        return config
    from mots_ros.registry import BACKENDS

    if choice[0] not in BACKENDS.names() or not BACKENDS.load(choice[0]).available_devices():
        logger.warning("the precision record %s chose %s, which is not installed here; using the default ranking",
                       record_path(config), choice[0])
        return config
    logger.info("the %s network runs on %s %s: the fastest within the agreement bounds measured on this CPU (%s)",
                network, *choice, record_path(config))
    return config.replace(**{"inference.backend": choice[0], "inference.precision": choice[1]})


def format_agreement(record: dict[str, Any]) -> str:
    """The record as two plain-text tables, with the variant each network's ``auto`` would pick."""
    lines = [f"agreement with onnxruntime fp32 on {record['frames']} frames ({record['machine']['cpu']}, "
             f"{record['machine']['matrix_instructions']})"]
    lines.append(f"{'segmentation':<22} {'matched IoU>=0.9':>17} {'lost':>5} {'gained':>6} {'ms':>8}  within bounds")
    for name, row in record["segmentation"].items():
        share = f"{row['matched_iou_0.9']}/{row['instances_fp32']} {100 * row['matched_share']:.1f}%"
        lines.append(f"{name:<22} {share:>17} {row['lost']:>5} {row['gained']:>6} {row['median_ms']:8.1f}  "
                     f"{'yes' if passes('segmentation', row) else 'no'}")
    lines.append(f"{'embedding':<22} {'drift median':>17} {'share':>12} {'ms':>8}  within bounds")
    for name, row in record["embedding"].items():
        lines.append(f"{name:<22} {row['drift_median']:17.3g} {100 * row['drift_share']:11.2f}% {row['median_ms']:8.1f}  "
                     f"{'yes' if passes('embedding', row) else 'no'}")
    for network in ("segmentation", "embedding"):
        choice = choose(record, network)
        lines.append(f"auto runs the {network} network on: {' '.join(choice) if choice else 'fp32 (nothing measured)'}")
    return "\n".join(lines)
