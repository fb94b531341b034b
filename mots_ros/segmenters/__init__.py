"""Segmenters: one RGB frame in, its instance masks out. Chosen by name in ``segmentation.kind``.

Built in: ``spatial_embedding`` (the published network and clustering), ``onnx_instances`` (a
user's own ONNX instance-segmentation model, YOLO-seg or per-instance masks) and
``ground_truth`` (masks from annotations, for oracle evaluation), registered in
:data:`mots_ros.registry.SEGMENTERS`. Other packages add theirs through the ``mots_ros.segmenters``
entry points. A registered class provides
``from_config(config) -> Segmenter``; the pipeline then calls, per frame, the optional
``begin_frame(frame)`` (may raise :class:`~mots_ros.errors.InputError` before anything changes
state) and ``segment(image_rgb)``, and ``reset()`` when the stream restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mots_ros.errors import InputError
from mots_ros.registry import SEGMENTERS

if TYPE_CHECKING:
    from mots_ros.config import Config



@dataclass(frozen=True)
class Segmentation:
    """One frame's instances: exclusive masks as one label map.

    Attributes:
        labels: ``(H, W) int32`` instance map, 0 = background; instance ``k`` is ``labels == instance_ids[k]``.
        instance_ids: ``(K,)`` ids present in ``labels``, ascending.
        class_ids: ``(K,) int64`` KITTI MOTS class id of each instance (1 car, 2 pedestrian).
        scores: ``(K,) float32`` confidence of each instance in [0, 1].
        latency_ms: wall time of the segmenter's own stages, ms (keys from its ``stage_names``).
    """

    labels: np.ndarray
    instance_ids: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    latency_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_label_map(cls, labels: np.ndarray, class_ids: dict[int, int], scores: dict[int, float] | None = None,
                       latency_ms: dict[str, float] | None = None) -> Segmentation:
        """From an integer map plus ``{id: class_id}`` (and ``{id: score}``, 1.0 where absent).

        Raises:
            InputError: the map is not integer, has negative ids, or an id has no class.
        """
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"an instance map must be a 2-D integer array, got {labels.dtype} {labels.shape}")
        if labels.size and labels.min() < 0:
            raise InputError("an instance map has negative ids; use 0 for background and positive ids")
        instance_ids = np.unique(labels)
        instance_ids = instance_ids[instance_ids > 0]
        missing = [int(i) for i in instance_ids if int(i) not in class_ids]
        if missing:
            raise InputError(f"instances {missing} have no class id")
        scores = scores or {}
        return cls(labels, instance_ids, np.array([class_ids[int(i)] for i in instance_ids], np.int64),
                   np.array([scores.get(int(i), 1.0) for i in instance_ids], np.float32), dict(latency_ms or {}))


@dataclass(frozen=True)
class DeviceSegmentation:
    """A :class:`Segmentation` whose label map stays on the device that ran the network.

    Made with ``inference.postprocessing: device``: ``labels`` is an ``(H, W) int32`` torch tensor
    on that device, the other fields are the same small host arrays as in :class:`Segmentation`.
    """

    labels: Any
    instance_ids: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    latency_ms: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Segmenter(Protocol):
    """What the pipeline needs of a segmenter.

    Attributes:
        name: shown in diagnostics (with the backend, where there is one: ``backend_name``).
        stage_names: the keys this segmenter reports in ``Segmentation.latency_ms``, in order.
    """

    name: str
    stage_names: tuple[str, ...]

    def segment(self, image_rgb: np.ndarray) -> Segmentation:
        """Instances of an ``(H, W, 3) uint8`` RGB frame; ``labels`` has the frame's size."""
        ...


def create_segmenter(config: Config) -> Segmenter:
    """The segmenter named by ``segmentation.kind``, built from the config.

    Raises:
        ConfigError: an unknown kind (listing the known ones).
    """
    return SEGMENTERS.load(config.segmentation.kind).from_config(config)
