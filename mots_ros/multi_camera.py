"""Several cameras in one process: one model per network, batched forwards, one tracker per camera.

Frames that arrive together (one per camera) go through the segmentation network as one
``(N, 3, H, W)`` batch (frames of different sizes form separate batches), and the instances of all
cameras go through the embedding network as one batch. Everything with state stays per camera:
the tracker and its ids, point sampling's random generator, DIS flow. Each camera is a
:class:`~mots_ros.pipeline.MotsPipeline` whose networks are shared, so a camera's results are the
ones its own pipeline would give.

Example::

    cameras = MultiCameraPipeline.from_config(preset("car"), ["front", "left", "right"])
    results, problems = cameras.process({"front": frame_a, "left": frame_b, "right": frame_c})
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from mots_ros.config import Config
from mots_ros.cues import cues_need_embeddings
from mots_ros.datatypes import Frame, FrameResult
from mots_ros.embedding.embedder import Embedder
from mots_ros.embedding.points import PointClouds
from mots_ros.errors import InputError, MotsError
from mots_ros.optical_flow import DisFlow
from mots_ros.pipeline import FrameWork, MotsPipeline
from mots_ros.segmenters import Segmentation, create_segmenter
from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter
from mots_ros.tracker import Tracker


class MultiCameraPipeline:
    """One :class:`MotsPipeline` per camera name, sharing the networks' backends.

    Args:
        cameras: camera name -> its pipeline. Pipelines whose segmenters are SpatialEmbedding
            segmenters on one backend (and embedders on one backend) are batched together.
    """

    def __init__(self, cameras: Mapping[str, MotsPipeline]):
        if not cameras:
            raise ValueError("MultiCameraPipeline needs at least one camera")
        self.cameras = dict(cameras)

    @classmethod
    def from_config(cls, config: Config, names: Sequence[str]) -> MultiCameraPipeline:
        """Each network loaded once for all ``names``; trackers, sampling and flow per camera."""
        from mots_ros.backends import create_backend
        from mots_ros.precision import resolve_auto

        if len(set(names)) != len(names) or not names:
            raise ValueError(f"camera names must be distinct and at least one, got {list(names)}")
        shared = create_segmenter(resolve_auto(config, "segmentation"))
        need_embeddings = cues_need_embeddings(Tracker(config.tracker).cues)
        embedding_backend = create_backend("embedding", resolve_auto(config, "embedding")) if need_embeddings else None
        cameras = {}
        for index, name in enumerate(names):
            if isinstance(shared, SpatialEmbeddingSegmenter):
                segmenter = shared if index == 0 else SpatialEmbeddingSegmenter(shared.backend, config.segmentation)
            else:
                segmenter = shared if index == 0 else create_segmenter(config)  # other kinds keep their own state
            embedder = Embedder(embedding_backend, config.embedding) if embedding_backend is not None else None
            dis = DisFlow(config.flow.dis_preset) if config.flow.source == "dis" else None
            cameras[name] = MotsPipeline(segmenter, embedder, Tracker(config.tracker),
                                         max_image_pixels=config.node.max_image_pixels, flow_source=config.flow.source,
                                         dis=dis)
        return cls(cameras)

    @property
    def names(self) -> list[str]:
        """The camera names, in the order given."""
        return list(self.cameras)

    def reset(self, *, restart_ids: bool = False) -> None:
        """Resets every camera's tracker and sampling (see :meth:`MotsPipeline.reset`)."""
        for pipeline in self.cameras.values():
            pipeline.reset(restart_ids=restart_ids)

    def process(self, frames: Mapping[str, Frame]) -> tuple[dict[str, FrameResult], dict[str, MotsError]]:
        """One frame per camera (any subset of the cameras) through batched networks.

        Returns:
            ``(results, problems)``: the result of each camera whose frame was processed, and the
            error of each whose frame was refused (bad image, unknown camera). A refused frame
            changes nothing in its camera and never holds up the others.
        """
        problems: dict[str, MotsError] = {}
        works: dict[str, FrameWork] = {}
        for name, frame in frames.items():
            pipeline = self.cameras.get(name)
            if pipeline is None:
                problems[name] = InputError(f"unknown camera {name!r} (cameras: {', '.join(self.cameras)})")
                continue
            try:
                works[name] = pipeline.begin(frame)
            except MotsError as err:
                problems[name] = err
        segmentations = self._segment(works, problems)
        clouds = {name: self.cameras[name].sample_points(works[name], segmentation)
                  for name, segmentation in segmentations.items()}
        embeddings = self._embed(works, clouds)
        results = {name: self.cameras[name].finish(works[name], segmentations[name], clouds[name], embeddings.get(name))
                   for name in segmentations}
        return results, problems

    def _segment(self, works: dict[str, FrameWork], problems: dict[str, MotsError]) -> dict[str, Segmentation]:
        """Every started frame's segmentation: one batch per shared SpatialEmbedding backend, the rest one by one."""
        groups: dict[int, list[str]] = {}
        segmentations: dict[str, Segmentation] = {}
        for name in works:
            segmenter = self.cameras[name].segmenter
            if isinstance(segmenter, SpatialEmbeddingSegmenter):
                groups.setdefault(id(segmenter.backend), []).append(name)
            else:
                try:
                    segmentations[name] = segmenter.segment(works[name].frame.image_rgb)
                except MotsError as err:
                    problems[name] = err
        for names in groups.values():
            segmenter = self.cameras[names[0]].segmenter
            assert isinstance(segmenter, SpatialEmbeddingSegmenter)
            try:
                batch = segmenter.segment_batch([works[name].frame.image_rgb for name in names])
            except MotsError as err:
                for name in names:
                    problems[name] = err
                continue
            segmentations.update(zip(names, batch))
        return segmentations

    def _embed(self, works: dict[str, FrameWork], clouds: dict[str, PointClouds | None]) -> dict[str, np.ndarray]:
        """All cameras' instances in one embedding batch per shared backend."""
        groups: dict[int, list[str]] = {}
        present: dict[str, PointClouds] = {}
        for name, cloud in clouds.items():
            embedder = self.cameras[name].embedder
            if cloud is not None and embedder is not None:
                groups.setdefault(id(embedder.backend), []).append(name)
                present[name] = cloud
        embeddings: dict[str, np.ndarray] = {}
        for names in groups.values():
            embedder = self.cameras[names[0]].embedder
            assert embedder is not None
            started = time.perf_counter()
            batch = embedder.embed_many([present[name] for name in names])
            elapsed = (time.perf_counter() - started) * 1e3
            for name, embedding in zip(names, batch):
                embeddings[name] = embedding
                works[name].latency["embedding_network"] = elapsed  # each camera waited for the whole batch
        return embeddings
