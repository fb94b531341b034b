"""From an instance map to one PointTrack embedding per instance (spec §5, §6)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mots_ros.backends import InferenceBackend
from mots_ros.config import EmbeddingConfig
from mots_ros.embedding.points import PointClouds, sample_points
from mots_ros.errors import InputError


class Embedder:
    """Point sampling plus the PointTrack network, batched over all instances of a frame.

    Args:
        backend: runs the network, ``(K, N, 8), (K, 4) -> (K, 32)``.
        config: point budget, context ratio and the sampling seed.
    """

    def __init__(self, backend: InferenceBackend, config: EmbeddingConfig | None = None):
        self.backend = backend
        self.config = config or EmbeddingConfig()
        self.rng = np.random.default_rng(self.config.seed)

    def reseed(self) -> None:
        """Restarts the sampling generator, so a replay reproduces the same embeddings."""
        self.rng = np.random.default_rng(self.config.seed)

    def sample(self, labels: np.ndarray, image_rgb: np.ndarray) -> PointClouds:
        """Point clouds of every instance; colours are taken in BGR order, as published."""
        cfg = self.config
        return sample_points(
            labels,
            image_rgb[..., ::-1],
            self.rng,
            num_foreground=cfg.num_foreground_points,
            num_environment=cfg.num_environment_points,
            context_ratio=cfg.context_ratio,
        )

    def sample_on_device(self, labels: Any, image_rgb: np.ndarray) -> tuple[PointClouds, Any]:
        """:meth:`sample` of a label map on a torch device: the clouds, and their points as a tensor there.

        The same generator draws the same points as :meth:`sample` (only pixel counts come to the
        host). The points are copied to the host only for a backend that cannot take the tensor.
        """
        import torch

        from mots_ros.segmentation.device_postprocessing import sample_points_torch

        cfg = self.config
        image_bgr = torch.from_numpy(np.ascontiguousarray(image_rgb[..., ::-1])).to(labels.device)
        return sample_points_torch(labels, image_bgr, self.rng, num_foreground=cfg.num_foreground_points,
                                   num_environment=cfg.num_environment_points, context_ratio=cfg.context_ratio,
                                   points_to_host=not hasattr(self.backend, "run_on_device"))

    def embed(self, clouds: PointClouds, device_points: Any = None) -> np.ndarray:
        """``(K, 32) float32`` embeddings; an empty frame gives ``(0, 32)`` without running the network.

        ``device_points`` (from :meth:`sample_on_device`) is used instead of ``clouds.points`` when
        the backend takes tensors on its device (torch), so the points never leave it.
        """
        if clouds.boxes.shape[0] == 0:
            return np.zeros((0, 32), np.float32)
        on_device = device_points is not None and hasattr(self.backend, "run_on_device")
        embeddings = self.backend.run(device_points if on_device else clouds.points, clouds.boxes)
        if embeddings.ndim != 2 or embeddings.shape[0] != clouds.points.shape[0]:
            raise InputError(f"embedding network returned shape {embeddings.shape} for {clouds.points.shape[0]} instances")
        return embeddings.astype(np.float32, copy=False)

    def embed_many(self, clouds: list[PointClouds]) -> list[np.ndarray]:
        """:meth:`embed` of several frames' clouds (one per camera) in one network batch."""
        counts = [c.points.shape[0] for c in clouds]
        if sum(counts) == 0:
            return [np.zeros((0, 32), np.float32) for _ in clouds]
        joined = PointClouds(np.concatenate([c.instance_ids for c in clouds]), np.concatenate([c.points for c in clouds]),
                             np.concatenate([c.boxes for c in clouds]), np.concatenate([c.bboxes for c in clouds]),
                             np.concatenate([c.pixel_counts for c in clouds]))
        embeddings = self.embed(joined)
        return np.split(embeddings, np.cumsum(counts)[:-1])
