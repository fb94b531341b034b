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
from dataclasses import dataclass

import numpy as np

from mots_ros.backends import InferenceBackend
from mots_ros.config import Config
from mots_ros.cues import cues_need_embeddings
from mots_ros.datatypes import Frame, FrameResult, Instance
from mots_ros.embedding.embedder import Embedder
from mots_ros.embedding.points import PointClouds
from mots_ros.errors import ConfigError
from mots_ros.images import DEFAULT_MAX_PIXELS, check_image, flow_problem
from mots_ros.masks import Rle, encode_label_map, label_boxes, rle_from_runs
from mots_ros.optical_flow import DisFlow
from mots_ros.segmenters import Segmentation, Segmenter, create_segmenter
from mots_ros.tracker import Tracker

logger = logging.getLogger(__name__)


class MotsPipeline:
    """Segmentation, embedding and tracking for one camera stream.

    Args:
        segmenter: any :class:`mots_ros.segmenters.Segmenter`.
        embedder: PointTrack inference; None when no association cue uses embeddings
            (IoU-only tracking), which skips point sampling and the embedding network.
        tracker: online association.
        max_image_pixels: frames larger than this are refused with an InputError.
        flow_source: ``topic`` (a frame's own flow), ``dis`` (computed by ``dis`` when a frame
            has none) or ``none`` (flow is ignored).
        dis: the DIS flow of ``flow_source: dis``.
        postprocessing_on_device: cluster, sample points and find the masks' runs with torch where
            the segmentation network ran (``inference.postprocessing: device``); the segmenter must
            have ``segment_on_device`` (SpatialEmbedding on the torch backend).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        embedder: Embedder | None,
        tracker: Tracker,
        *,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        flow_source: str = "topic",
        dis: DisFlow | None = None,
        postprocessing_on_device: bool = False,
    ):
        if flow_source == "dis" and dis is None:
            dis = DisFlow()
        if postprocessing_on_device and not getattr(segmenter, "runs_on_device", False):
            raise ConfigError(f"inference.postprocessing device needs segmentation.kind spatial_embedding on the torch "
                              f"backend, not {getattr(segmenter, 'backend_name', None) or segmenter.name}; use "
                              "inference.postprocessing host")
        self.segmenter = segmenter
        self.embedder = embedder
        self.tracker = tracker
        self.max_image_pixels = max_image_pixels
        self.flow_source = flow_source
        self.dis = dis if flow_source == "dis" else None
        self.postprocessing_on_device = postprocessing_on_device

    @classmethod
    def from_config(cls, config: Config, *, segmenter: Segmenter | None = None,
                    embedding_backend: InferenceBackend | None = None) -> MotsPipeline:
        """Builds the segmenter, the cues and, when a cue needs it, the embedding network named by ``config``.

        ``segmenter`` and ``embedding_backend``, when given, are used instead of building them
        (several cameras sharing one network each).
        """
        from mots_ros.backends import create_backend
        from mots_ros.precision import resolve_auto

        tracker = Tracker(config.tracker)
        embedder = None
        if cues_need_embeddings(tracker.cues):
            if embedding_backend is None:
                embedding_backend = create_backend("embedding", resolve_auto(config, "embedding"))
            embedder = Embedder(embedding_backend, config.embedding)
        dis = DisFlow(config.flow.dis_preset) if config.flow.source == "dis" else None
        if segmenter is None:
            segmenter = create_segmenter(resolve_auto(config, "segmentation"))
        return cls(segmenter, embedder, tracker, max_image_pixels=config.node.max_image_pixels,
                   flow_source=config.flow.source, dis=dis,
                   postprocessing_on_device=config.inference.postprocessing == "device")

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The stages this pipeline times, in processing order (the keys of ``FrameResult.latency_ms``)."""
        flow = ("optical_flow",) if self.dis is not None else ()
        embedding = ("point_sampling", "embedding_network") if self.embedder is not None else ()
        return (*flow, *self.segmenter.stage_names, *embedding, "rle_encoding", "association")

    @property
    def backend_names(self) -> dict[str, str]:
        """What runs each network, e.g. ``{"segmentation": "onnxruntime-cpu", "embedding": ...}``."""
        names = {"segmentation": getattr(self.segmenter, "backend_name", None) or self.segmenter.name}
        if self.embedder is not None:
            names["embedding"] = self.embedder.backend.name
        return names

    def reset(self, *, restart_ids: bool = False) -> None:
        """Resets the tracker (new epoch) and restarts point sampling and the segmenter from their seeds.

        Args:
            restart_ids: start track ids at 1 again (a new sequence offline); a live stream never does.
        """
        self.tracker.reset(restart_ids=restart_ids)
        self._reseed()

    def _reseed(self) -> None:
        if self.embedder is not None:
            self.embedder.reseed()
        if self.dis is not None:
            self.dis.reset()
        reset = getattr(self.segmenter, "reset", None)
        if reset is not None:
            reset()

    def process(self, frame: Frame) -> FrameResult:
        """Runs one frame through segmentation, embedding and tracking.

        Raises:
            InputError: the image is not a usable ``(H, W, 3) uint8`` frame, or the segmenter
                refuses it. The pipeline's state is unchanged, so the caller can log it and go on.
        """
        work = self.begin(frame)
        if self.postprocessing_on_device:
            return self.process_on_device(work)
        segmentation = self.segmenter.segment(frame.image_rgb)
        clouds = self.sample_points(work, segmentation)
        embeddings = None
        if clouds is not None and self.embedder is not None:
            with work.clock("embedding_network"):
                embeddings = self.embedder.embed(clouds)
        return self.finish(work, segmentation, clouds, embeddings)

    def process_on_device(self, work: FrameWork) -> FrameResult:
        """:meth:`process` after :meth:`begin`, with the label map kept on the network's device.

        Clustering, point sampling, boxes and the masks' run lengths are computed in torch there
        (:mod:`mots_ros.segmentation.device_postprocessing`); the host gets run lengths, boxes, ids,
        scores, pixel counts and embeddings, never the map. On CPU torch the tracks are those of
        :meth:`process` on the host path (tested).
        """
        import torch

        from mots_ros.segmentation.device_postprocessing import column_runs_torch, label_boxes_torch

        frame = work.frame
        height, width = frame.image_rgb.shape[:2]
        with torch.inference_mode():
            segmentation = self.segmenter.segment_on_device(frame.image_rgb)  # type: ignore[attr-defined]
            work.latency.update(segmentation.latency_ms)
            ids = segmentation.instance_ids
            embeddings = np.zeros((ids.size, 0), np.float32)
            if self.embedder is not None:
                with work.clock("point_sampling"):
                    clouds, device_points = self.embedder.sample_on_device(segmentation.labels, frame.image_rgb)
                with work.clock("embedding_network"):
                    embeddings = self.embedder.embed(clouds, device_points)
                boxes = clouds.bboxes
            else:
                boxes = label_boxes_torch(segmentation.labels)[1]
            with work.clock("rle_encoding"):
                rles = [rle_from_runs(runs, height, width) for runs in column_runs_torch(segmentation.labels, ids.tolist())]
        return self._track(work, segmentation.class_ids, segmentation.scores, rles, boxes, embeddings, instance_map=None)

    # The phases of process(), public so that MultiCameraPipeline can batch the networks between them.

    def begin(self, frame: Frame) -> FrameWork:
        """Checks the frame, then starts its timing, the tracker's clock and its optical flow."""
        check_image(frame.image_rgb, max_pixels=self.max_image_pixels)
        height, width = frame.image_rgb.shape[:2]
        flow = frame.flow if self.flow_source != "none" else None
        problem = flow_problem(flow, height, width)
        if problem:
            logger.warning("frame %s: flow ignored: %s", frame.stamp_ns, problem)
            flow = None
        # Every check comes before the first change of state, so a refused frame changes nothing.
        begin_frame = getattr(self.segmenter, "begin_frame", None)
        if begin_frame is not None:
            begin_frame(frame)
        if self.tracker.observe_time(frame.stamp_ns, frame.frame_index):
            self._reseed()  # a replay from the start then reproduces its first run

        work = FrameWork(frame, flow, problem, {})
        if self.dis is not None:
            if not self.tracker.continues(frame.stamp_ns):
                self.dis.reset()  # no flow across a time jump
            with work.clock("optical_flow"):
                if flow is None:
                    work.flow = self.dis.next_flow(frame.image_rgb)
                else:
                    self.dis.remember(frame.image_rgb)  # the frame's own flow wins; DIS goes on from here
        return work

    def sample_points(self, work: FrameWork, segmentation: Segmentation) -> PointClouds | None:
        """Records the segmenter's timings and samples the instances' point clouds (None without an embedder)."""
        work.latency.update(segmentation.latency_ms)
        if self.embedder is None:
            return None
        with work.clock("point_sampling"):
            return self.embedder.sample(segmentation.labels, work.frame.image_rgb)

    def finish(self, work: FrameWork, segmentation: Segmentation, clouds: PointClouds | None,
               embeddings: np.ndarray | None) -> FrameResult:
        """Encodes the masks, associates them with the tracks and builds the frame's result."""
        labels, instance_ids = segmentation.labels, segmentation.instance_ids
        if clouds is not None and embeddings is not None:
            boxes = clouds.bboxes
        else:
            _, boxes = label_boxes(labels)
            embeddings = np.zeros((instance_ids.size, 0), np.float32)
        with work.clock("rle_encoding"):
            rles = encode_label_map(labels, instance_ids.tolist())
        return self._track(work, segmentation.class_ids, segmentation.scores, rles, boxes, embeddings,
                           instance_map=_instance_index_map(labels, instance_ids))

    def _track(self, work: FrameWork, class_ids: np.ndarray, scores: np.ndarray, rles: list[Rle], boxes: np.ndarray,
               embeddings: np.ndarray, instance_map: np.ndarray | None) -> FrameResult:
        """Associates the frame's instances with the tracks and builds its result."""
        frame, latency = work.frame, work.latency
        height, width = frame.image_rgb.shape[:2]
        instances = [
            Instance(
                rle=rles[i],
                bbox=(int(boxes[i][0]), int(boxes[i][1]), int(boxes[i][2]), int(boxes[i][3])),
                class_id=int(class_ids[i]),
                score=float(scores[i]),
                embedding=embeddings[i],
            )
            for i in range(len(rles))
        ]
        with work.clock("association"):
            tracked = self.tracker.update(instances, stamp_ns=frame.stamp_ns, frame_index=frame.frame_index,
                                          flow=work.flow, image_rgb=frame.image_rgb)

        return FrameResult(
            stamp_ns=frame.stamp_ns,
            frame_index=frame.frame_index,
            image_height=height,
            image_width=width,
            tracker_epoch=self.tracker.epoch,
            instances=tuple(tracked),
            latency_ms=latency,
            instance_map=instance_map,
            active_tracks=len(self.tracker.tracks),
            flow_problem=work.flow_problem,
        )


@dataclass
class FrameWork:
    """One frame between the phases of :meth:`MotsPipeline.process`: its flow, problems and stage timings."""

    frame: Frame
    flow: np.ndarray | None
    flow_problem: str | None
    latency: dict[str, float]

    def clock(self, stage: str) -> _StageClock:
        """``with work.clock("stage"):`` adds the block's wall time to ``latency[stage]``."""
        return _StageClock(self.latency)(stage)


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

    def __call__(self, stage: str) -> _StageClock:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.latency[self._stage] = self.latency.get(self._stage, 0.0) + (time.perf_counter() - self._start) * 1e3
