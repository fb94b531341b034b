"""SpatialEmbedding training (spec §4): instance-centred crops, the Lovász-based loss, BN freezing.

Stage 1 of the published recipe trains on 160×640 crops centred on car instances with a constant
learning rate of 5e-4 and foreground weight 10; stage 2 fine-tunes on larger random crops with
BatchNorm frozen, lr 5e-6 with poly decay and foreground weight 200. Both stages are this one
loop with different settings. Checkpoints use the official wrapper format and are resumable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mots_ros.checkpoints import load_checkpoint
from mots_ros.segmentation.network import SpatialEmbeddingNet
from mots_ros.training.data import AnnotatedDataset
from mots_ros.training.losses import spatial_embedding_loss
from mots_ros.training.run import TrainingRun, TrainingSettings, set_up

logger = logging.getLogger(__name__)


@dataclass
class SegmentationTrainingConfig(TrainingSettings):
    width: float = 0.5
    crop_height: int = 160
    crop_width: int = 640
    centred_crops: bool = True  # stage 1: crops centred on an instance; stage 2: random crops
    batch_size: int = 4
    steps: int = 3000
    lr: float = 5e-4
    schedule: str = "constant"  # "constant" (stage 1) or "poly" (stage 2: (1 - step/steps)^0.9)
    weight_decay: float = 1e-4
    foreground_weight: float = 10.0
    freeze_bn: bool = False
    checkpoint_every: int = 200


class CropSampler:
    """Random training crops with labels restricted to one class (others become background)."""

    def __init__(self, dataset: AnnotatedDataset, config: SegmentationTrainingConfig, rng: np.random.Generator):
        self.dataset, self.config, self.rng = dataset, config, rng
        lowest = config.class_id * 1000
        self.instances = [
            (index, record.track_id)
            for index, frame in enumerate(dataset.frames)
            for record in frame.records
            if lowest <= record.track_id < lowest + 1000
        ]

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, rng = self.config, self.rng
        if cfg.centred_crops and self.instances:
            index, instance_id = self.instances[rng.integers(len(self.instances))]
        else:
            index, instance_id = int(rng.integers(len(self.dataset))), None
        image, id_map = self.dataset.load(index)
        labels = np.where((id_map // 1000 == cfg.class_id) & (id_map != 10000), id_map, 0)
        height, width = labels.shape
        if instance_id is not None and (labels == instance_id).any():
            rows, cols = np.nonzero(labels == instance_id)
            centre_y, centre_x = int(rows.mean()), int(cols.mean())
        else:
            centre_y, centre_x = int(rng.integers(height)), int(rng.integers(width))
        top = int(np.clip(centre_y - cfg.crop_height // 2, 0, max(0, height - cfg.crop_height)))
        left = int(np.clip(centre_x - cfg.crop_width // 2, 0, max(0, width - cfg.crop_width)))
        image = image[top : top + cfg.crop_height, left : left + cfg.crop_width]
        labels = labels[top : top + cfg.crop_height, left : left + cfg.crop_width]
        pad_rows, pad_cols = cfg.crop_height - image.shape[0], cfg.crop_width - image.shape[1]
        if pad_rows or pad_cols:  # frames smaller than the crop
            image = np.pad(image, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")
            labels = np.pad(labels, ((0, pad_rows), (0, pad_cols)))
        if rng.random() < 0.5:  # horizontal flip (spec §4.2)
            image, labels = image[:, ::-1], labels[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def _learning_rate(config: SegmentationTrainingConfig, step: int) -> float:
    if config.schedule == "poly":
        return config.lr * (1.0 - step / config.steps) ** 0.9
    return config.lr


def train_segmentation(config: SegmentationTrainingConfig, *, progress: bool = True) -> Path:
    """Trains a SpatialEmbeddingNet; returns the final checkpoint path (``<out>/final.pth``)."""
    device = set_up(config)
    model = SpatialEmbeddingNet(num_classes=(4, 1), width=config.width)
    model.init_output()
    if config.init:
        load_checkpoint(model, config.init)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    build = {"model": "SpatialEmbeddingNet", "width": config.width, "num_classes": [4, 1], "class_id": config.class_id}
    run = TrainingRun("segmentation", config, model, optimizer, build, progress=progress)
    run.resume()

    sampler = CropSampler(AnnotatedDataset(config.data, config.sequences), config, run.rng())
    while not run.done:
        model.train()
        if config.freeze_bn:
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()  # running stats frozen; affine parameters still train
        crops = [sampler.sample() for _ in range(config.batch_size)]
        images = torch.from_numpy(np.stack([c[0] for c in crops]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        labels = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.int64))
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, run.step)
        loss = spatial_embedding_loss(model(images.to(device)), labels.to(device), foreground_weight=config.foreground_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.record(float(loss.detach()))
    return run.finish()
