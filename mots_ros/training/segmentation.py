"""SpatialEmbedding training (spec §4): instance-centred crops, the Lovász-based loss, BN freezing.

Stage 1 of the published recipe trains on 160×640 crops centred on car instances with a constant
learning rate of 5e-4 and foreground weight 10; stage 2 fine-tunes on larger random crops with
BatchNorm frozen, lr 5e-6 with poly decay and foreground weight 200. Both stages are this one
loop with different settings. Checkpoints use the official wrapper format and are resumable.

Options beyond the published recipe, all off by default: scale, centre and colour jitter of the
crops (real video, where people come at every size), PointTrack++'s temporal seed
consistency (this frame's seed map is pulled towards the previous frame's, warped by DIS flow),
and ``ignore_regions="dont_care"``: the dataset's ignore regions (what MOTSChallenge's annotators
left unlabelled, often people) are left out of the loss instead of being taught as background, as
the published car training does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

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
    scale_range: tuple[float, float] = (1.0, 1.0)  # each frame is resized by a random factor in this range
    centre_jitter: float = 0.0  # centred crops: the instance centre lands within ± this share of the crop
    colour_jitter: float = 0.0  # brightness, contrast and saturation factors drawn from 1 ± this
    seed_consistency_weight: float = 0.0  # PointTrack++: weight of the warped previous seed map's difference
    max_frame_gap: int = 1  # the previous frame is 1 to this many annotated frames back
    ignore_regions: str = "background"  # "background" (published) or "dont_care" (left out of the loss)
    frame_cache_mib: int = 6144  # decoded frames kept in memory (decoding a full-HD JPEG and its masks costs ~80 ms)


@dataclass
class TrainingCrop:
    """One training crop; with seed consistency also the previous frame's crop at the same window."""

    image: np.ndarray  # (h, w, 3) uint8
    labels: np.ndarray  # (h, w) int64 instance ids, 0 background
    previous_image: np.ndarray | None = None
    backward_flow: np.ndarray | None = None  # (h, w, 2) pixels: current(x) ≈ previous(x + flow(x))


def jitter_colour(images: list[np.ndarray], strength: float, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random brightness, contrast and saturation change applied to each image."""
    brightness, contrast, saturation = rng.uniform(1.0 - strength, 1.0 + strength, 3)
    out = []
    for image in images:
        pixels = image.astype(np.float32) * brightness
        gray = pixels.mean(2, keepdims=True)
        pixels = gray + (pixels - gray) * saturation
        pixels = pixels.mean() + (pixels - pixels.mean()) * contrast
        out.append(np.clip(pixels, 0, 255).astype(np.uint8))
    return out


class CropSampler:
    """Random training crops with labels restricted to one class (others become background)."""

    def __init__(self, dataset: AnnotatedDataset, config: SegmentationTrainingConfig, rng: np.random.Generator):
        self.dataset, self.config, self.rng = dataset, config, rng
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cache_bytes = 0
        lowest = config.class_id * 1000
        self.instances = [
            (index, record.track_id)
            for index, frame in enumerate(dataset.frames)
            for record in frame.records
            if lowest <= record.track_id < lowest + 1000
        ]

    def _previous_index(self, index: int) -> int | None:
        """An earlier annotated frame of the same sequence, 1 to ``max_frame_gap`` frames back."""
        frames = self.dataset.frames
        gap = int(self.rng.integers(1, self.config.max_frame_gap + 1))
        for earlier in range(index - gap, index):
            if earlier >= 0 and frames[earlier].sequence == frames[index].sequence:
                return earlier
        return None

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image, labels)`` of a frame, labels restricted to the class; cached while the budget lasts."""
        if index in self._cache:
            return self._cache[index]
        image, id_map = self.dataset.load(index)
        labels = np.where((id_map // 1000 == self.config.class_id) & (id_map != 10000), id_map, 0).astype(np.int16)
        if self.config.ignore_regions == "dont_care":
            labels[id_map == 10000] = -1
        if self._cache_bytes + image.nbytes + labels.nbytes <= self.config.frame_cache_mib * 2**20:
            self._cache[index] = (image, labels)
            self._cache_bytes += image.nbytes + labels.nbytes
        return image, labels

    def sample(self) -> TrainingCrop:
        import cv2

        cfg, rng = self.config, self.rng
        if cfg.centred_crops and self.instances:
            index, instance_id = self.instances[rng.integers(len(self.instances))]
        else:
            index, instance_id = int(rng.integers(len(self.dataset))), None
        image, labels = self._load(index)
        previous = None
        if cfg.seed_consistency_weight > 0:
            previous_index = self._previous_index(index)
            previous = None if previous_index is None else self._load(previous_index)[0]
        # Draws only for the options in use, so the published recipe samples as it always did.
        scale = float(rng.uniform(*cfg.scale_range)) if cfg.scale_range != (1.0, 1.0) else 1.0
        if scale != 1.0:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
            if previous is not None:
                previous = cv2.resize(previous, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        height, width = labels.shape
        if instance_id is not None and (labels == instance_id).any():
            rows, cols = np.nonzero(labels == instance_id)
            jitter_y, jitter_x = rng.uniform(-cfg.centre_jitter, cfg.centre_jitter, 2) if cfg.centre_jitter else (0.0, 0.0)
            centre_y = int(rows.mean() + jitter_y * cfg.crop_height)
            centre_x = int(cols.mean() + jitter_x * cfg.crop_width)
        else:
            centre_y, centre_x = int(rng.integers(height)), int(rng.integers(width))
        top = int(np.clip(centre_y - cfg.crop_height // 2, 0, max(0, height - cfg.crop_height)))
        left = int(np.clip(centre_x - cfg.crop_width // 2, 0, max(0, width - cfg.crop_width)))
        flip = rng.random() < 0.5  # horizontal flip (spec §4.2)

        def window(array: np.ndarray) -> np.ndarray:
            array = array[top : top + cfg.crop_height, left : left + cfg.crop_width]
            pad_rows, pad_cols = cfg.crop_height - array.shape[0], cfg.crop_width - array.shape[1]
            if pad_rows or pad_cols:  # frames smaller than the crop
                pad = ((0, pad_rows), (0, pad_cols)) + ((0, 0),) * (array.ndim - 2)
                array = np.pad(array, pad, mode="edge" if array.ndim == 3 else "constant")
            return np.ascontiguousarray(array[:, ::-1] if flip else array)

        images = [window(image)] + ([window(previous)] if previous is not None else [])
        if cfg.colour_jitter > 0:
            images = jitter_colour(images, cfg.colour_jitter, rng)
        crop = TrainingCrop(images[0], window(labels).astype(np.int64))
        if previous is not None:
            gray = [cv2.cvtColor(i, cv2.COLOR_RGB2GRAY) for i in images]
            # flow from this crop to the previous one: where each current pixel was
            flow = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_FAST).calc(gray[0], gray[1], None)
            crop.previous_image, crop.backward_flow = images[1], np.asarray(flow, np.float32)
        return crop


def warp_backward(values: torch.Tensor, backward_flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``values`` ``(N, C, H, W)`` of the previous frame seen from the current one, and where that is defined.

    ``backward_flow`` is ``(N, H, W, 2)`` pixels with ``current(x) ≈ previous(x + flow(x))``;
    the returned mask ``(N, H, W)`` is False where ``x + flow(x)`` leaves the frame.
    """
    _, _, height, width = values.shape
    rows, cols = torch.meshgrid(torch.arange(height, dtype=values.dtype), torch.arange(width, dtype=values.dtype),
                                indexing="ij")
    x = cols[None] + backward_flow[..., 0]
    y = rows[None] + backward_flow[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    grid = torch.stack([2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1)
    return F.grid_sample(values, grid, mode="bilinear", padding_mode="border", align_corners=True), inside


def seed_consistency_loss(seed: torch.Tensor, previous_seed: torch.Tensor, backward_flow: torch.Tensor) -> torch.Tensor:
    """PointTrack++'s temporal term: mean squared difference of ``seed`` ``(N, H, W)`` and the warped previous seed map."""
    warped, inside = warp_backward(previous_seed[:, None], backward_flow)
    difference = (seed - warped[:, 0]) ** 2
    return (difference * inside).sum() / inside.sum().clamp(min=1)


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def _learning_rate(config: SegmentationTrainingConfig, step: int) -> float:
    if config.schedule == "poly":
        return config.lr * (1.0 - step / config.steps) ** 0.9
    return config.lr


def train_segmentation(config: SegmentationTrainingConfig, *, progress: bool = True) -> Path:
    """Trains a SpatialEmbeddingNet; returns the final checkpoint path (``<out>/final.pth``)."""
    if config.ignore_regions not in ("background", "dont_care"):
        raise ValueError(f"ignore_regions must be background or dont_care, got {config.ignore_regions!r}")
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
        images = _to_tensor([c.image for c in crops]).to(device)
        labels = torch.from_numpy(np.stack([c.labels for c in crops])).to(device)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, run.step)
        raw = model(images)
        loss = spatial_embedding_loss(raw, labels, foreground_weight=config.foreground_weight)
        paired = [i for i, c in enumerate(crops) if c.previous_image is not None]
        if paired:
            # The previous frame's seeds are the target (no gradient), as the tracker sees them.
            with torch.no_grad():
                previous_raw = model(_to_tensor([crops[i].previous_image for i in paired]).to(device))
            flows = torch.from_numpy(np.stack([crops[i].backward_flow for i in paired])).to(device)
            seed_channel = raw.shape[1] - 1
            loss = loss + config.seed_consistency_weight * seed_consistency_loss(
                torch.sigmoid(raw[paired, seed_channel]), torch.sigmoid(previous_raw[:, seed_channel]), flows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.record(float(loss.detach()))
    return run.finish()
