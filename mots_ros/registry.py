"""Name -> implementation registries, with entry points for implementations in other packages.

Cues, segmenters and inference backends are each chosen by name in the config. A registry maps
each name to an ``"module:attribute"`` path, imported only when that name is used, so that a
registry of backends never imports a runtime that is not selected, and the config can check
names without importing any implementation. Adding a built-in is one module plus one line in
:data:`CUES`, :data:`SEGMENTERS` or :data:`BACKENDS` below. Other packages add names through an
entry-point group, e.g. in their ``pyproject.toml``::

    [project.entry-points."mots_ros.cues"]
    lane_prior = "my_package.cues:LanePriorCue"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from typing import Any

from mots_ros.errors import ConfigError

logger = logging.getLogger(__name__)


class Registry:
    """Implementations of one kind (cue, segmenter, backend), found by name.

    Args:
        kind: what the names denote, for error messages ("association cue").
        group: the entry-point group other packages register under ("mots_ros.cues").
        builtin: ``{name: "module:attribute"}`` of the implementations shipped here.
    """

    def __init__(self, kind: str, group: str, builtin: dict[str, str]) -> None:
        self.kind = kind
        self.group = group
        self._targets: dict[str, str | Any] = dict(builtin)
        self._plugins_loaded = False

    def register(self, name: str, target: str | Any) -> None:
        """Adds ``name`` at run time: an object, or a ``"module:attribute"`` path to import when used."""
        self._targets[name] = target

    def names(self) -> list[str]:
        """Every known name: the built-in ones in their order, then plugins, then run-time additions."""
        self._load_plugins()
        return list(self._targets)

    def load(self, name: str) -> Any:
        """The implementation registered as ``name``.

        Raises:
            ConfigError: ``name`` is unknown (the message lists the known names), or its module
                cannot be imported.
        """
        self._load_plugins()
        if name not in self._targets:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self._targets)}")
        target = self._targets[name]
        if not isinstance(target, str):
            return target
        module_name, _, attribute = target.partition(":")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"{self.kind} {name!r} cannot be loaded from {target}: {err}") from err
        self._targets[name] = value
        return value

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry_point in importlib.metadata.entry_points(group=self.group):
            if entry_point.name in self._targets:
                logger.warning("%s %r from %s is ignored: the name is taken", self.kind, entry_point.name, entry_point.value)
                continue
            self._targets[entry_point.name] = entry_point.value


#: Association cues (:mod:`mots_ros.cues`), chosen in ``tracker.cues``.
CUES = Registry("association cue", "mots_ros.cues", {
    "embedding": "mots_ros.cues.embedding:EmbeddingCue",
    "mask_iou": "mots_ros.cues.mask_iou:MaskIoUCue",
    "flow_iou": "mots_ros.cues.flow_iou:FlowIoUCue",
    "motion": "mots_ros.cues.motion:MotionCue",
    "points": "mots_ros.cues.points:PointCue",
})

#: Segmenters (:mod:`mots_ros.segmenters`), chosen by ``segmentation.kind``.
SEGMENTERS = Registry("segmenter", "mots_ros.segmenters", {
    "spatial_embedding": "mots_ros.segmenters.spatial_embedding:SpatialEmbeddingSegmenter",
    "onnx_instances": "mots_ros.segmenters.onnx_instances:OnnxInstanceSegmenter",
    "ground_truth": "mots_ros.segmenters.ground_truth:GroundTruthSegmenter",
})

#: Inference backends (:mod:`mots_ros.backends`), chosen by ``inference.backend``.
BACKENDS = Registry("inference backend", "mots_ros.backends", {
    "torch": "mots_ros.backends.torch_backend:TorchBackend",
    "onnxruntime": "mots_ros.backends.onnx_backend:OnnxRuntimeBackend",
    "tensorrt": "mots_ros.backends.tensorrt_backend:TensorRTBackend",
    "opencv": "mots_ros.backends.opencv_backend:OpenCvDnnBackend",
    "openvino": "mots_ros.backends.openvino_backend:OpenVinoBackend",
})
