"""PointTrack embedding training (spec §8): an instance database and the batch-hard triplet loss.

The database holds, for every ground-truth instance of the class in every frame, the crop around
its box (grown by ⌊0.2·(max−min)⌋ per side, clamped with the last row and column excluded), as a
compressed image plus a category map (1 this instance, 2 other instances of the class). A
training step draws ``instances_per_step`` distinct instances; for each, three of its crops ``S``
appearances apart (S uniform in 1..10 around a random middle) become point clouds with offset
jitter σ = 0.001 and full-frame box features. Steps whose loss is 0 are skipped.

``balanced=True`` draws instances evenly across sequences rather than uniformly over all
instances. ``shuffle_group=True`` is FineTrack's shuffle-group sampling: a step's instances come in
groups, each group the people of one frame (frames drawn in random order), and each instance's
three crops are taken around that frame, so the negatives of a triplet are people seen together,
the ones association must tell apart, rather than strangers from anywhere in the data.

``parts`` > 0 trains FineTrack-style part embeddings beside the global one: the triplet loss on
each part too (averaged over parts), plus ``diversity_weight`` times the heads' attention overlap.
``aligned_scales`` lets the parts attend over flow-aligned multi-depth point features
(:class:`mots_ros.embedding.network.AlignedScales`; ``scale_flow=False`` merges them unaligned).
``augment`` adds colour jitter, scale jitter and cut-out occlusions to every crop.

``held_out_identities`` (a fraction) keeps that share of the identities out of the database
(:func:`mots_ros.training.data.is_held_out_identity`), so the distance scale can be calibrated on
people the network has never seen, which is the situation on a user's video.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mots_ros.checkpoints import load_checkpoint
from mots_ros.embedding.network import PointTrackNet
from mots_ros.embedding.points import BOX_NORMALISER, sample_points
from mots_ros.errors import ConfigError
from mots_ros.training.data import AnnotatedDataset, is_held_out_identity
from mots_ros.training.losses import batch_hard_triplet_loss, part_diversity_loss
from mots_ros.training.run import TrainingRun, TrainingSettings, set_up

logger = logging.getLogger(__name__)

JITTER_SIGMA = 0.001  # spec §8.2: Gaussian noise on the normalised offsets


@dataclass
class EmbeddingTrainingConfig(TrainingSettings):
    steps: int = 1000
    lr: float = 2e-3
    weight_decay: float = 1e-4
    instances_per_step: int = 24
    max_gap: int = 10  # S in spec §8.2
    foreground_points: int = 1000
    environment_points: int = 500
    min_pixels: int = 50  # smaller instances are left out of the database
    balanced: bool = False
    shuffle_group: bool = False  # instances in groups of one frame's people (FineTrack)
    margin: float = 0.2
    parts: int = 0  # FineTrack part heads; 0 = the published network
    aligned_scales: bool = False  # parts attend over flow-aligned multi-depth point features
    scale_flow: bool = True  # False: merge the depths without alignment (ablation)
    diversity_weight: float = 0.1
    augment: bool = False
    held_out_identities: float = 0.0  # share of identities kept for calibration, never trained on
    checkpoint_every: int = 100


@dataclass(frozen=True)
class CropEntry:
    frame: int
    top: int
    left: int
    image_jpeg: bytes  # BGR crop
    categories_png: bytes  # 0 background, 1 this instance, 2 other instances of the class


class InstanceDatabase:
    """Crops of every instance of one class, grouped by (sequence, instance id) in frame order."""

    def __init__(self, dataset: AnnotatedDataset, class_id: int, min_pixels: int = 50, progress: bool = True,
                 held_out_identities: float = 0.0):
        import cv2

        self.tracks: dict[tuple[str, int], list[CropEntry]] = {}
        lowest = class_id * 1000
        indices = range(len(dataset))
        if progress:
            from tqdm import tqdm

            indices = tqdm(indices, unit="frame", desc="instance database")
        for index in indices:
            item = dataset.frames[index]
            if not any(lowest <= r.track_id < lowest + 1000 for r in item.records):
                continue
            image_rgb, id_map = dataset.load(index)
            height, width = id_map.shape
            same_class = (id_map // 1000 == class_id) & (id_map != 10000)
            for instance_id in np.unique(id_map[same_class]):
                if is_held_out_identity(item.sequence, int(instance_id), held_out_identities):
                    continue
                mask = id_map == instance_id
                if mask.sum() < min_pixels:
                    continue
                rows, cols = np.nonzero(mask)
                top, bottom = _grown_span(rows.min(), rows.max(), height)
                left, right = _grown_span(cols.min(), cols.max(), width)
                categories = np.where(mask, 1, np.where(same_class, 2, 0)).astype(np.uint8)[top:bottom, left:right]
                crop_bgr = np.ascontiguousarray(image_rgb[top:bottom, left:right, ::-1])
                entry = CropEntry(
                    item.frame, int(top), int(left),
                    cv2.imencode(".jpg", crop_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(),
                    cv2.imencode(".png", categories)[1].tobytes(),
                )
                self.tracks.setdefault((item.sequence, int(instance_id)), []).append(entry)
        for crops in self.tracks.values():
            crops.sort(key=lambda e: e.frame)
        self.keys = sorted(self.tracks)
        self.sequences = sorted({sequence for sequence, _ in self.keys})

    def __len__(self) -> int:
        return len(self.keys)

    def crop_count(self) -> int:
        return sum(len(c) for c in self.tracks.values())


def _grown_span(first: int, last: int, size: int) -> tuple[int, int]:
    """The training crop span (spec §8.1): grown by ⌊0.2·(max−min)⌋, end clamped to size−1."""
    grow = int(0.2 * (last - first))
    return max(0, first - grow), min(last + 1 + grow, size - 1)


class TripletBatches:
    """Draws training steps from an InstanceDatabase (spec §8.2)."""

    def __init__(self, database: InstanceDatabase, config: EmbeddingTrainingConfig, rng: np.random.Generator):
        self.database, self.config, self.rng = database, config, rng
        # Shuffle-group sampling draws whole frames: who is in view in each (sequence, frame).
        self.people_in_frame: dict[tuple[str, int], list[tuple[str, int]]] = {}
        if config.shuffle_group:
            for key in database.keys:
                for entry in database.tracks[key]:
                    self.people_in_frame.setdefault((key[0], entry.frame), []).append(key)
        self.frames = sorted(self.people_in_frame)
        self.frames_of = {s: [f for f in self.frames if f[0] == s] for s in database.sequences}

    def _instances(self) -> list[tuple[tuple[str, int], int | None]]:
        """The step's instances, each with the frame its crops centre on (None: anywhere in its track)."""
        keys, count = self.database.keys, min(self.config.instances_per_step, len(self.database))
        if self.config.shuffle_group:
            return self._groups(count)
        if not self.config.balanced:
            return [(keys[i], None) for i in self.rng.choice(len(keys), count, replace=False)]
        by_sequence = {s: [k for k in keys if k[0] == s] for s in self.database.sequences}
        chosen: list[tuple[str, int]] = []
        while len(chosen) < count:
            for sequence in self.rng.permutation(self.database.sequences):
                remaining = [k for k in by_sequence[sequence] if k not in chosen]
                if remaining and len(chosen) < count:
                    chosen.append(remaining[self.rng.integers(len(remaining))])
        return [(key, None) for key in chosen]

    def _groups(self, count: int) -> list[tuple[tuple[str, int], int | None]]:
        chosen: dict[tuple[str, int], int] = {}
        while len(chosen) < count:
            frames = self.frames
            if self.config.balanced:  # the group's sequence first, evenly, then one of its frames
                sequence = self.database.sequences[int(self.rng.integers(len(self.database.sequences)))]
                frames = self.frames_of[sequence]
            frame = frames[int(self.rng.integers(len(frames)))]
            people = [k for k in self.people_in_frame[frame] if k not in chosen]
            for index in self.rng.permutation(len(people))[: count - len(chosen)]:
                chosen[people[index]] = frame[1]
        return list(chosen.items())

    def _crops_of(self, key, around_frame: int | None = None) -> list[CropEntry]:
        crops = self.database.tracks[key]
        if len(crops) <= 2:
            return crops[:2]
        if around_frame is None:
            middle = int(self.rng.integers(1, len(crops) - 1))
        else:
            nearest = min(range(len(crops)), key=lambda i: abs(crops[i].frame - around_frame))
            middle = min(max(nearest, 1), len(crops) - 2)
        gap = int(self.rng.integers(1, self.config.max_gap + 1))
        return [crops[max(0, middle - gap)], crops[middle], crops[min(len(crops) - 1, middle + gap)]]

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(points (M, N, 8), boxes (M, 4), labels (M,))`` for one step."""
        import cv2

        cfg = self.config
        points, boxes, labels = [], [], []
        for label, (key, around_frame) in enumerate(self._instances(), start=1):
            for entry in self._crops_of(key, around_frame):
                image_bgr = cv2.imdecode(np.frombuffer(entry.image_jpeg, np.uint8), cv2.IMREAD_COLOR)
                categories = cv2.imdecode(np.frombuffer(entry.categories_png, np.uint8), cv2.IMREAD_UNCHANGED)
                if cfg.augment:
                    image_bgr, categories = augment_crop(image_bgr, categories, self.rng)
                clouds = sample_points(
                    categories.astype(np.int32), image_bgr, self.rng,
                    num_foreground=cfg.foreground_points, num_environment=cfg.environment_points, only_ids=[1],
                )
                cloud = clouds.points[0]
                cloud[:, 3:5] += self.rng.normal(0, JITTER_SIGMA, (cloud.shape[0], 2)).astype(np.float32)
                box = clouds.bboxes[0] + np.array([entry.left, entry.top, entry.left, entry.top])
                points.append(cloud)
                boxes.append(box.astype(np.float32) / BOX_NORMALISER)
                labels.append(label)
        return np.stack(points), np.stack(boxes).astype(np.float32), np.array(labels)


def augment_crop(image_bgr: np.ndarray, categories: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Colour jitter, scale jitter (0.8-1.25) and, half the time, a cut-out occluding part of the instance.

    The cut-out paints a rectangle of 15-40 % of the instance's box in one random colour and
    marks it background, as an occluder would; it is skipped when it would hide the whole instance.
    """
    import cv2

    gain = rng.uniform(0.75, 1.25, 3)
    bias = rng.uniform(-20, 20, 3)
    image = np.clip(image_bgr.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    scale = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    height, width = categories.shape
    size = (max(2, int(round(width * scale))), max(2, int(round(height * scale))))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    categories = cv2.resize(categories, size, interpolation=cv2.INTER_NEAREST)
    rows, cols = np.nonzero(categories == 1)
    if rows.size and rng.random() < 0.5:
        box_h, box_w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        cut_h = max(1, int(box_h * np.sqrt(rng.uniform(0.15, 0.4))))
        cut_w = max(1, int(box_w * np.sqrt(rng.uniform(0.15, 0.4))))
        top = int(rows.min() + rng.integers(0, box_h - cut_h + 1))
        left = int(cols.min() + rng.integers(0, box_w - cut_w + 1))
        occluded = categories.copy()
        occluded[top : top + cut_h, left : left + cut_w] = 0
        if (occluded == 1).any():
            categories = occluded
            image = image.copy()
            image[top : top + cut_h, left : left + cut_w] = rng.integers(0, 256, 3)
    return image, categories


def train_embedding(config: EmbeddingTrainingConfig, *, progress: bool = True) -> Path:
    """Trains a PointTrackNet; returns the final checkpoint path (``<out>/final.pth``)."""
    if config.aligned_scales and config.parts <= 0:
        raise ConfigError("aligned scales (--align-scales) feed the part heads, so they need parts (--parts) > 0")
    device = set_up(config)
    model = PointTrackNet(num_foreground_points=config.foreground_points, parts=config.parts,
                          aligned_scales=config.aligned_scales, scale_flow=config.scale_flow)
    if config.init and config.parts:
        # A published (or global-only) checkpoint starts the shared layers; the part heads start fresh.
        published = PointTrackNet(num_foreground_points=config.foreground_points)
        load_checkpoint(published, config.init)
        model.load_state_dict(published.state_dict(), strict=False)
    elif config.init:
        load_checkpoint(model, config.init)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    milestones = (int(config.steps * 0.6), int(config.steps * 0.9))  # spec: epochs 20 and 30 of 34
    build = {"model": "PointTrackNet", "class_id": config.class_id, "parts": config.parts,
             "aligned_scales": config.aligned_scales, "scale_flow": config.scale_flow,
             "trained_points": [config.foreground_points, config.environment_points],
             "held_out_identities": config.held_out_identities}
    run = TrainingRun("embedding", config, model, optimizer, build, progress=progress)
    run.resume()

    database = InstanceDatabase(AnnotatedDataset(config.data, config.sequences), config.class_id, config.min_pixels, progress,
                                config.held_out_identities)
    logger.info("instance database: %d instances, %d crops, %d sequences", len(database), database.crop_count(), len(database.sequences))
    batches = TripletBatches(database, config, run.rng())
    skipped = 0
    while not run.done:
        model.train()
        lr = config.lr * 0.1 ** sum(run.step >= m for m in milestones)
        for group in optimizer.param_groups:
            group["lr"] = lr
        points, boxes, labels = batches.sample()
        embeddings, parts, attention = model.forward_parts(torch.from_numpy(points).to(device),
                                                           torch.from_numpy(boxes).to(device))
        label_tensor = torch.from_numpy(labels).to(device)
        loss = batch_hard_triplet_loss(embeddings, label_tensor, config.margin)
        if parts is not None and attention is not None:
            part_losses = [batch_hard_triplet_loss(parts[:, k], label_tensor, config.margin) for k in range(parts.shape[1])]
            loss = loss + torch.stack(part_losses).mean() + config.diversity_weight * part_diversity_loss(attention)
        if float(loss.detach()) > 0:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        else:
            skipped += 1  # spec §8.3: no optimiser step on a zero loss
        run.record(float(loss.detach()))
    if skipped:
        logger.info("%d embedding steps skipped at zero loss", skipped)
    return run.finish(skipped_steps=skipped)
