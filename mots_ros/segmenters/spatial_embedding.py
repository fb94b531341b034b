"""The published segmenter: pad, the SpatialEmbedding network, crop back, cluster (spec §3)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mots_ros.backends import InferenceBackend, create_backend
from mots_ros.config import Config, SegmentationConfig
from mots_ros.datatypes import Frame
from mots_ros.errors import InputError
from mots_ros.segmentation.clustering import check_raw_output, cluster_with_scores
from mots_ros.segmenters import DeviceSegmentation, Segmentation

MAX_CALIBRATION_IMAGES = 200
#: Said whenever the shipped car model runs: it has only seen synthetic streets.
SHIPPED_CAR_MODEL_WARNING = (
    "segmentation.weights is the shipped car model, trained on synthetic street scenes only: on real video it "
    "also finds shop posters and logos as cars, with stable ids (models/README.md). Give your own weights for real use")

#: Said whenever the shipped pedestrian model runs: a CPU-trained lite model from one real sequence.
SHIPPED_PEDESTRIAN_MODEL_WARNING = (
    "segmentation.weights is the shipped pedestrian model, trained on one MOTS20 sequence on a CPU: on unseen "
    "video it finds about a fifth of the people (HOTA 23, models/README.md). Give your own weights for real use")

logger = logging.getLogger(__name__)


def pad_image(image_rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pads ``(H, W, 3)`` on the right and bottom to ``(height, width, 3)`` by edge replication."""
    pad_rows, pad_cols = height - image_rgb.shape[0], width - image_rgb.shape[1]
    if pad_rows == 0 and pad_cols == 0:
        return image_rgb
    return np.pad(image_rgb, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")


def to_network_input(image_rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(1, 3, height, width) float32`` RGB in [0, 1], edge-padded; no mean/std normalisation (spec §3.1)."""
    padded = pad_image(image_rgb, height, width)
    return (padded.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)).astype(np.float32)


class CalibrationImages:
    """int8 calibration inputs from an image folder, preprocessed as :func:`to_network_input` does.

    Called with the network's ``(1, 3, H, W)`` input shape (TensorRT's fixed profile), each image is
    cropped and padded to it; called with None, each keeps its own size padded to a multiple of 8
    (ONNX Runtime's and OpenVINO's dynamic-size files). ``key`` names the set (file names and
    sizes), so a cache of quantized models knows when it changed.
    """

    def __init__(self, folder: str | Path, limit: int = MAX_CALIBRATION_IMAGES):
        from mots_ros.datasets import list_frames

        self.paths = [path for _, path in list_frames(folder)[:limit]]
        self.key = ";".join(f"{path.name}:{path.stat().st_size}" for path in self.paths)

    def __call__(self, shape: tuple[int, ...] | None = None) -> Iterator[np.ndarray]:
        """Yields ``(1, 3, H, W) float32`` inputs, one per image."""
        from mots_ros.datasets import read_image_rgb

        for path in self.paths:
            image = read_image_rgb(path)
            if shape is None:
                yield to_network_input(image, -(-image.shape[0] // 8) * 8, -(-image.shape[1] // 8) * 8)
            else:
                yield to_network_input(image[: shape[2], : shape[3]], shape[2], shape[3])


class SpatialEmbeddingSegmenter:
    """SpatialEmbedding inference: pad, run the network, crop back, cluster.

    Args:
        backend: runs the network, ``(1, 3, H', W') -> (1, C, H', W')``.
        config: clustering constants, the class given to every instance and the optional fixed input size.
    """

    name = "spatial_embedding"
    stage_names: tuple[str, ...] = ("segmentation_network", "clustering")

    def __init__(self, backend: InferenceBackend, config: SegmentationConfig | None = None):
        self.backend = backend
        self.config = config or SegmentationConfig()
        self.backend_name = backend.name

    @classmethod
    def from_config(cls, config: Config) -> SpatialEmbeddingSegmenter:
        """The configured (or shipped) network on the configured backend."""
        if config.segmentation.weights == "default":
            logger.warning(SHIPPED_CAR_MODEL_WARNING if config.segmentation.class_id == 1 else SHIPPED_PEDESTRIAN_MODEL_WARNING)
        options = {}
        if config.inference.precision == "int8" and config.inference.calibration_images:
            options["calibration_batches"] = CalibrationImages(config.inference.calibration_images)
        return cls(create_backend("segmentation", config, **options), config.segmentation)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The padded network input size: the configured or exported fixed size, or the next multiples of 8."""
        fixed = (self.config.input_height, self.config.input_width)
        if fixed == (0, 0):
            fixed = self.backend.fixed_input_size or (0, 0)
        if fixed != (0, 0):
            if height > fixed[0] or width > fixed[1]:
                raise InputError(
                    f"frame {height}x{width} is larger than the fixed network input {fixed[0]}x{fixed[1]} "
                    "(segmentation.input_height/input_width or the ONNX file's size); use a larger or dynamic export"
                )
            return fixed
        return -(-height // 8) * 8, -(-width // 8) * 8

    def begin_frame(self, frame: Frame) -> None:
        """Refuses a frame larger than a fixed network input before the pipeline changes any state."""
        self.input_size(*self._network_size(*frame.image_rgb.shape[:2]))

    def _network_size(self, height: int, width: int) -> tuple[int, int]:
        """A frame's size once resized by ``input_scale``."""
        scale = self.config.input_scale
        return (height, width) if scale == 1.0 else (max(1, round(height * scale)), max(1, round(width * scale)))

    def _network_image(self, image_rgb: np.ndarray) -> np.ndarray:
        """The frame as the network sees it: resized by ``input_scale`` (area averaging), or as it is."""
        height, width = self._network_size(*image_rgb.shape[:2])
        if (height, width) == image_rgb.shape[:2]:
            return image_rgb
        import cv2

        return cv2.resize(image_rgb, (width, height), interpolation=cv2.INTER_AREA)

    @staticmethod
    def _full_size(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Clustered labels back at the frame's size (nearest neighbour), when the network saw it resized."""
        if labels.shape == shape[:2]:
            return labels
        import cv2

        return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)

    def predict_raw(self, image_rgb: np.ndarray) -> np.ndarray:
        """``(C, H, W) float32`` raw network output for an ``(H, W, 3) uint8`` RGB frame."""
        height, width = image_rgb.shape[:2]
        network_input = to_network_input(image_rgb, *self.input_size(height, width))
        raw = self.backend.run(network_input)
        if raw.ndim != 4 or raw.shape[0] != 1 or raw.shape[2:] != network_input.shape[2:]:
            raise InputError(f"segmentation network returned shape {raw.shape} for input {network_input.shape}")
        raw = raw[0, :, :height, :width]
        check_raw_output(raw, self.config.n_sigma)
        return raw

    def segment_batch(self, images_rgb: list[np.ndarray]) -> list[Segmentation]:
        """:meth:`segment` of several frames (one per camera), with one network forward per input size.

        Frames of the same padded size go through the network as one ``(N, 3, H, W)`` batch when the
        backend has ``run_batch`` (ONNX Runtime, OpenVINO, torch); otherwise one by one. Each frame's
        ``segmentation_network`` time is its batch's forward, which it waited for.
        """
        shapes = [image.shape for image in images_rgb]
        images_rgb = [self._network_image(image) for image in images_rgb]
        raws: list[np.ndarray | None] = [None] * len(images_rgb)
        forward_ms = [0.0] * len(images_rgb)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images_rgb):
            by_size.setdefault(self.input_size(*image.shape[:2]), []).append(index)
        run_batch = getattr(self.backend, "run_batch", None)
        for size, indices in by_size.items():
            started = time.perf_counter()
            if run_batch is not None and len(indices) > 1:
                batch = np.concatenate([to_network_input(images_rgb[i], *size) for i in indices])
                output = run_batch(batch)
                if output.ndim != 4 or output.shape[0] != len(indices) or output.shape[2:] != batch.shape[2:]:
                    raise InputError(f"segmentation network returned shape {output.shape} for batch {batch.shape}")
                for position, i in enumerate(indices):
                    height, width = images_rgb[i].shape[:2]
                    raw = output[position, :, :height, :width]
                    check_raw_output(raw, self.config.n_sigma)
                    raws[i] = raw
            else:
                for i in indices:
                    raws[i] = self.predict_raw(images_rgb[i])
            elapsed = (time.perf_counter() - started) * 1e3
            for i in indices:
                forward_ms[i] = elapsed
        results = []
        for raw_or_none, network_ms, shape in zip(raws, forward_ms, shapes):
            assert raw_or_none is not None  # every index is in one size group
            started = time.perf_counter()
            labels, instance_ids, scores = self.cluster(raw_or_none)
            results.append(Segmentation(self._full_size(labels, shape), instance_ids, np.full(instance_ids.size, self.config.class_id, np.int64),
                                        scores, {"segmentation_network": network_ms,
                                                 "clustering": (time.perf_counter() - started) * 1e3}))
        return results

    def _min_pixel(self) -> int:
        """min_pixel counts frame pixels; a resized frame has input_scale² as many."""
        cfg = self.config
        return cfg.min_pixel if cfg.input_scale == 1.0 else round(cfg.min_pixel * cfg.input_scale**2)

    def cluster(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(labels, instance_ids, scores)`` of a raw output (spec §3.2)."""
        cfg = self.config
        labels, centre_scores = cluster_with_scores(raw, cfg.seed_threshold, self._min_pixel(), cfg.n_sigma)
        # Ids still present (later proposals may overwrite earlier ones); bincount beats sorting the map.
        instance_ids = np.flatnonzero(np.bincount(labels.ravel(), minlength=centre_scores.size + 1)[1:]) + 1
        return labels, instance_ids, centre_scores[instance_ids - 1] if instance_ids.size else centre_scores

    def segment(self, image_rgb: np.ndarray) -> Segmentation:
        """Instances of an ``(H, W, 3) uint8`` RGB frame, all of class ``config.class_id``."""
        started = time.perf_counter()
        raw = self.predict_raw(self._network_image(image_rgb))
        clustering_started = time.perf_counter()
        labels, instance_ids, scores = self.cluster(raw)
        labels = self._full_size(labels, image_rgb.shape)
        finished = time.perf_counter()
        return Segmentation(labels, instance_ids, np.full(instance_ids.size, self.config.class_id, np.int64), scores,
                            {"segmentation_network": (clustering_started - started) * 1e3,
                             "clustering": (finished - clustering_started) * 1e3})

    @property
    def runs_on_device(self) -> bool:
        """Whether the backend can leave its output on its device (torch), for :meth:`segment_on_device`."""
        return hasattr(self.backend, "run_on_device")

    def segment_on_device(self, image_rgb: np.ndarray) -> DeviceSegmentation:
        """:meth:`segment` with the clustering done in torch where the network ran; the map stays there.

        Needs a backend with ``run_on_device`` (:attr:`runs_on_device`; MotsPipeline refuses others
        when it is built). On CPU torch it gives the same map, ids and scores as :meth:`segment` (tested), so the
        choice of ``inference.postprocessing`` never changes tracks.
        """
        from mots_ros.segmentation.device_postprocessing import cluster_with_scores_torch, resize_labels_nearest_torch

        cfg = self.config
        started = time.perf_counter()
        network_image = self._network_image(image_rgb)
        height, width = network_image.shape[:2]
        network_input = to_network_input(network_image, *self.input_size(height, width))
        output = self.backend.run_on_device(network_input)  # type: ignore[attr-defined]
        if output.ndim != 4 or output.shape[0] != 1 or tuple(output.shape[2:]) != network_input.shape[2:]:
            raise InputError(f"segmentation network returned shape {tuple(output.shape)} for input {network_input.shape}")
        self.backend.synchronize()  # type: ignore[attr-defined]
        clustering_started = time.perf_counter()
        labels, centre_scores = cluster_with_scores_torch(output[0, :, :height, :width], cfg.seed_threshold,
                                                          self._min_pixel(), cfg.n_sigma)
        # Ids still present, as cluster() finds them: only the K counts come to the host.
        counts = labels.reshape(-1).long().bincount(minlength=int(centre_scores.numel()) + 1)[1:].cpu().numpy()
        instance_ids = np.flatnonzero(counts) + 1
        scores = centre_scores.cpu().numpy()
        scores = scores[instance_ids - 1] if instance_ids.size else scores
        if tuple(labels.shape) != image_rgb.shape[:2]:
            labels = resize_labels_nearest_torch(labels, *image_rgb.shape[:2])
        finished = time.perf_counter()
        return DeviceSegmentation(labels, instance_ids, np.full(instance_ids.size, cfg.class_id, np.int64), scores,
                                  {"segmentation_network": (clustering_started - started) * 1e3,
                                   "clustering": (finished - clustering_started) * 1e3})
