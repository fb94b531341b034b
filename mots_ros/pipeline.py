"""THE pipeline: one decoded frame in, that frame's tracked instances out.

The ROS node, the offline CLI, the bag evaluation and the demo all call :class:`MotsPipeline`;
none of them carries its own copy of this logic.

Example::

    from mots_ros.config import preset
    from mots_ros.datatypes import Frame
    from mots_ros.pipeline import MotsPipeline

    pipeline = MotsPipeline.from_config(preset("car"))
    result = pipeline.process(Frame(image_rgb, stamp_ns=0, frame_index=0))
    for tracked in result.instances:
        print(tracked.track_id, tracked.class_name, tracked.bbox)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from mots_ros.config import Config
from mots_ros.datatypes import Frame, FrameResult, Instance
from mots_ros.embedding.embedder import Embedder
from mots_ros.errors import InputError
from mots_ros.images import DEFAULT_MAX_PIXELS, check_image, flow_problem
from mots_ros.masks import encode_label_map, label_boxes
from mots_ros.segmentation.segmenter import Segmenter
from mots_ros.tracker import Tracker

logger = logging.getLogger(__name__)

#: Stage names, in processing order, as reported in ``FrameResult.latency_ms`` and diagnostics.
STAGES = (
    "segmentation_network",
    "clustering",
    "point_sampling",
    "embedding_network",
    "rle_encoding",
    "association",
)


@dataclass(frozen=True)
class GivenInstances:
    """Instance masks from outside the pipeline (ground truth, another segmenter).

    Attributes:
        labels: ``(H, W)`` integer map, 0 = background, one positive id per instance.
        class_ids: class of each id, ``{id: class_id}``.
        scores: optional score of each id; 1.0 when absent.
    """

    labels: np.ndarray
    class_ids: dict[int, int]
    scores: dict[int, float] = field(default_factory=dict)


class MotsPipeline:
    """Segmentation, embedding and tracking for one camera stream.

    Args:
        segmenter: SpatialEmbedding inference; may be None when every frame comes with
            :class:`GivenInstances` (e.g. oracle evaluation).
        embedder: PointTrack inference; None when no association cue uses embeddings
            (IoU-only tracking), which skips point sampling and the embedding network.
        tracker: online association.
        max_image_pixels: frames larger than this are refused with an InputError.
    """

    def __init__(
        self,
        segmenter: Segmenter | None,
        embedder: Embedder | None,
        tracker: Tracker,
        *,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.segmenter = segmenter
        self.embedder = embedder
        self.tracker = tracker
        self.max_image_pixels = max_image_pixels

    @classmethod
    def from_config(cls, config: Config, *, segment: bool = True) -> "MotsPipeline":
        """Builds the networks named by ``config`` on its backend.

        Args:
            segment: False builds no segmentation network (for given instances only).
        """
        from mots_ros.model_loading import create_embedding_backend, create_segmentation_backend

        segmenter = Segmenter(create_segmentation_backend(config), config.segmentation) if segment else None
        uses_embeddings = config.tracker.reid_scale != 0
        embedder = Embedder(create_embedding_backend(config), config.embedding) if uses_embeddings else None
        return cls(segmenter, embedder, Tracker(config.tracker), max_image_pixels=config.node.max_image_pixels)

    @property
    def backend_names(self) -> dict[str, str]:
        names = {}
        if self.segmenter is not None:
            names["segmentation"] = self.segmenter.backend.name
        if self.embedder is not None:
            names["embedding"] = self.embedder.backend.name
        return names

    def reset(self, *, restart_ids: bool = False) -> None:
        """Resets the tracker (new epoch) and restarts point sampling from its seed.

        Args:
            restart_ids: start track ids at 1 again (a new sequence offline); a live stream never does.
        """
        self.tracker.reset(restart_ids=restart_ids)
        self._reseed()

    def _reseed(self) -> None:
        if self.embedder is not None:
            self.embedder.reseed()

    def process(self, frame: Frame, given: GivenInstances | None = None) -> FrameResult:
        """Runs one frame through segmentation (unless ``given``), embedding and tracking.

        Raises:
            InputError: the image is not a usable ``(H, W, 3) uint8`` frame. The pipeline's state
                is unchanged, so the caller can log it and go on with the next frame.
        """
        check_image(frame.image_rgb, max_pixels=self.max_image_pixels)
        height, width = frame.image_rgb.shape[:2]
        flow = frame.flow
        problem = flow_problem(flow, height, width)
        if problem:
            logger.warning("frame %s: flow ignored: %s", frame.stamp_ns, problem)
            flow = None

        # Every check comes before the first change of state, so a refused frame changes nothing.
        if given is not None:
            labels, instance_ids, class_ids, scores = _unpack_given(given, height, width)
        elif self.segmenter is None:
            raise InputError("this pipeline has no segmentation network; pass the instances (given=...)")
        else:
            self.segmenter.input_size(height, width)  # raises for frames larger than a fixed network input
        if self.tracker.observe_time(frame.stamp_ns, frame.frame_index):
            self._reseed()  # a replay from the start then reproduces its first run

        latency: dict[str, float] = {}
        clock = _StageClock(latency)
        if given is None:
            with clock("segmentation_network"):
                raw = self.segmenter.predict_raw(frame.image_rgb)
            with clock("clustering"):
                segmentation = self.segmenter.cluster(raw)
            labels, instance_ids = segmentation.labels, segmentation.instance_ids
            scores = segmentation.scores
            class_ids = np.full(instance_ids.size, self.segmenter.config.class_id)

        if self.embedder is not None:
            with clock("point_sampling"):
                clouds = self.embedder.sample(labels, frame.image_rgb)
            with clock("embedding_network"):
                embeddings = self.embedder.embed(clouds)
            boxes = clouds.bboxes
        else:
            _, boxes = label_boxes(labels)
            embeddings = np.zeros((instance_ids.size, 0), np.float32)
        with clock("rle_encoding"):
            rles = encode_label_map(labels, instance_ids.tolist())
        instances = [
            Instance(
                rle=rles[i],
                bbox=tuple(int(v) for v in boxes[i]),
                class_id=int(class_ids[i]),
                score=float(scores[i]),
                embedding=embeddings[i],
            )
            for i in range(len(rles))
        ]
        with clock("association"):
            tracked = self.tracker.update(instances, stamp_ns=frame.stamp_ns, frame_index=frame.frame_index, flow=flow)

        instance_map = _instance_index_map(labels, instance_ids)
        return FrameResult(
            stamp_ns=frame.stamp_ns,
            frame_index=frame.frame_index,
            image_height=height,
            image_width=width,
            tracker_epoch=self.tracker.epoch,
            instances=tuple(tracked),
            latency_ms=latency,
            instance_map=instance_map,
        )


def _unpack_given(given: GivenInstances, height: int, width: int):
    labels = np.asarray(given.labels)
    if labels.shape != (height, width) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"given instance map must be an integer ({height}, {width}) array, got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise InputError("given instance map has negative ids; use 0 for background and positive ids")
    instance_ids = np.unique(labels)
    instance_ids = instance_ids[instance_ids > 0]
    missing = [int(i) for i in instance_ids if int(i) not in given.class_ids]
    if missing:
        raise InputError(f"given instances {missing} have no class id")
    class_ids = np.array([given.class_ids[int(i)] for i in instance_ids], np.int64)
    scores = np.array([given.scores.get(int(i), 1.0) for i in instance_ids], np.float32)
    return labels, instance_ids, class_ids, scores


def _instance_index_map(labels: np.ndarray, instance_ids: np.ndarray) -> np.ndarray:
    """Map from instance ids to 1-based positions in the instance list (0 stays background)."""
    if instance_ids.size == 0:
        return np.zeros(labels.shape, np.int32)
    if int(instance_ids[-1]) < 1 << 20:
        lookup = np.zeros(int(instance_ids[-1]) + 1, np.int32)
        lookup[instance_ids] = np.arange(1, instance_ids.size + 1, dtype=np.int32)
        return lookup[labels]
    positions = np.searchsorted(instance_ids, labels)
    return np.where(labels > 0, positions + 1, 0).astype(np.int32)


class _StageClock:
    """``with clock("stage"):`` adds the block's wall time in ms to ``latency["stage"]``."""

    def __init__(self, latency: dict[str, float]):
        self.latency = latency
        self._stage = ""
        self._start = 0.0

    def __call__(self, stage: str) -> "_StageClock":
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.latency[self._stage] = self.latency.get(self._stage, 0.0) + (time.perf_counter() - self._start) * 1e3
