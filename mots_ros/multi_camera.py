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

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np

from mots_ros.backends import InferenceBackend
from mots_ros.config import Config
from mots_ros.datatypes import Frame, FrameResult
from mots_ros.embedding.points import PointClouds
from mots_ros.errors import InputError, MotsError
from mots_ros.pipeline import FrameWork, MotsPipeline
from mots_ros.segmenters import Segmentation
from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter
from mots_ros.tracker import Tracker


class MultiCameraPipeline:
    """One :class:`MotsPipeline` per camera name, sharing the networks' backends.

    Args:
        cameras: camera name -> its pipeline. Pipelines whose segmenters are SpatialEmbedding
            segmenters on one backend (and embedders on one backend) are batched together.
    """

    def __init__(self, cameras: Mapping[str, MotsPipeline] | None = None):
        self.cameras = dict(cameras or {})
        self._networks: dict[tuple[str, str], InferenceBackend] = {}  # (network, its settings) -> backend, for add_camera

    @classmethod
    def from_config(cls, config: Config, names: Sequence[str]) -> MultiCameraPipeline:
        """Each network loaded once for all ``names``; trackers, sampling and flow per camera."""
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"camera names must be distinct and at least one, got {list(names)}")
        cameras = cls()
        for name in names:
            cameras.add_camera(name, config)
        return cameras

    def add_camera(self, name: str, config: Config) -> MotsPipeline:
        """Adds camera ``name``, reusing every network already loaded with the same settings."""
        from mots_ros.precision import resolve_auto

        if name in self.cameras:
            raise ValueError(f"camera {name!r} is already added")
        segmentation_config, embedding_config = resolve_auto(config, "segmentation"), resolve_auto(config, "embedding")
        segmentation_key = ("segmentation", repr((segmentation_config.segmentation, segmentation_config.inference)))
        embedding_key = ("embedding", repr((embedding_config.embedding, embedding_config.inference)))
        segmenter = None  # other segmenter kinds keep their own state: each camera builds its own
        if segmentation_config.segmentation.kind == "spatial_embedding" and segmentation_key in self._networks:
            segmenter = SpatialEmbeddingSegmenter(self._networks[segmentation_key], segmentation_config.segmentation)
        pipeline = MotsPipeline.from_config(config, segmenter=segmenter, embedding_backend=self._networks.get(embedding_key))
        # The first camera's pipeline built (and checked) the networks the next ones reuse.
        if isinstance(pipeline.segmenter, SpatialEmbeddingSegmenter):
            self._networks.setdefault(segmentation_key, pipeline.segmenter.backend)
        if pipeline.embedder is not None:
            self._networks.setdefault(embedding_key, pipeline.embedder.backend)
        self.cameras[name] = pipeline
        return pipeline

    def remove_camera(self, name: str) -> None:
        """Forgets camera ``name`` (its tracker and state); the shared networks stay loaded."""
        self.cameras.pop(name, None)

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
        # Post-processing on the device goes one camera at a time; the host path batches the networks.
        results: dict[str, FrameResult] = {}
        for name in [name for name in works if self.cameras[name].postprocessing_on_device]:
            try:
                results[name] = self.cameras[name].process_on_device(works.pop(name))
            except MotsError as err:
                problems[name] = err
        segmentations = self._segment(works, problems)
        clouds = {name: self.cameras[name].sample_points(works[name], segmentation)
                  for name, segmentation in segmentations.items()}
        embeddings = self._embed(works, clouds)
        results.update({name: self.cameras[name].finish(works[name], segmentations[name], clouds[name],
                                                        embeddings.get(name)) for name in segmentations})
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


class CameraRounds:
    """Frames handed in by several cameras' threads, gathered into rounds of :meth:`MultiCameraPipeline.process`.

    Each camera's thread calls :meth:`process` and blocks until its frame's round is done. A round
    closes when every added camera has a frame waiting, or ``window_s`` after its first frame
    arrived; the thread that closes it runs it for everyone. One round runs at a time (the networks
    are shared), and frames arriving meanwhile form the next one, so under load frames batch up
    without any added wait.

    Args:
        cameras: the shared-network pipelines; cameras are added and removed through this object.
        window_s: how long a round's first frame waits for the other cameras' frames.
        timeout_s: the longest a frame waits for its result before :meth:`process` gives up.
    """

    def __init__(self, cameras: MultiCameraPipeline | None = None, window_s: float = 0.01, timeout_s: float = 60.0):
        self.pipelines = cameras or MultiCameraPipeline()
        self.window_s = window_s
        self.timeout_s = timeout_s
        self._waiting: dict[str, tuple[int, Frame]] = {}  # camera -> (ticket, frame)
        self._outcomes: dict[int, FrameResult | BaseException] = {}  # ticket -> result or error
        self._abandoned: set[int] = set()  # tickets whose caller gave up waiting
        self._next_ticket = 0
        self._closes_at = 0.0  # when the gathering round runs even without every camera's frame
        self._running = False
        self._changed = threading.Condition()
        self.rounds_run = 0  # how many rounds ran, and with how many frames in all
        self.frames_run = 0

    @contextmanager
    def _between_rounds(self) -> Iterator[None]:
        """Holds the lock while no round runs, so cameras change only between rounds."""
        with self._changed:
            while self._running:
                self._changed.wait(0.1)
            yield

    def add_camera(self, name: str, config: Config) -> SharedCamera:
        """Adds camera ``name`` (networks shared where the settings match) and returns its handle."""
        with self._between_rounds():
            pipeline = self.pipelines.add_camera(name, config)
        return SharedCamera(self, name, pipeline, window_s=config.node.batch_window_s)

    def remove_camera(self, name: str) -> None:
        """Removes camera ``name``; the others' rounds no longer wait for it."""
        with self._between_rounds():
            self.pipelines.remove_camera(name)
            if name in self._waiting:
                ticket, _ = self._waiting.pop(name)
                self._outcomes[ticket] = InputError(f"camera {name!r} was removed before its frame ran")
            self._changed.notify_all()

    def reset(self, name: str, *, restart_ids: bool = False) -> None:
        """Resets camera ``name`` between rounds."""
        with self._between_rounds():
            self.pipelines.cameras[name].reset(restart_ids=restart_ids)

    def process(self, name: str, frame: Frame, window_s: float | None = None) -> FrameResult:
        """Camera ``name``'s frame through the next round; raises the frame's own error (MotsError).

        ``window_s`` (default: the constructor's) applies when this frame is its round's first.
        """
        deadline = time.monotonic() + self.timeout_s
        with self._changed:
            if name not in self.pipelines.cameras:
                raise InputError(f"unknown camera {name!r}")
            if name in self._waiting:
                raise InputError(f"camera {name!r} already has a frame waiting; hand frames in from one thread per camera")
            if not self._waiting:
                self._closes_at = time.monotonic() + (self.window_s if window_s is None else window_s)
            ticket = self._next_ticket
            self._next_ticket += 1
            self._waiting[name] = (ticket, frame)
            self._changed.notify_all()
            while ticket not in self._outcomes:
                now = time.monotonic()
                if now >= deadline:
                    if self._waiting.get(name, (None,))[0] == ticket:
                        del self._waiting[name]
                    else:  # its round is running: its result must not reach this camera's next frame
                        self._abandoned.add(ticket)
                    raise InputError(f"camera {name!r}: no result within {self.timeout_s} s")
                closes_at = self._closes_at
                everyone = all(camera in self._waiting for camera in self.pipelines.cameras)
                if not self._running and self._waiting and (everyone or now >= closes_at):
                    self._run_round()
                    continue
                self._changed.wait(max(min(closes_at - now, deadline - now), 0.001) if not self._running else
                                   deadline - now)
            outcome = self._outcomes.pop(ticket)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _run_round(self) -> None:
        """Runs the waiting frames as one round; called holding the lock, which it releases meanwhile."""
        waiting, self._waiting = self._waiting, {}
        frames = {camera: frame for camera, (_, frame) in waiting.items()}
        self._running = True
        self._changed.release()
        try:
            try:
                results, problems = self.pipelines.process(frames)
                outcomes: dict[str, FrameResult | BaseException] = {**results, **problems}
            except Exception as err:  # e.g. a runtime failing: every frame of the round gets the error
                outcomes = {camera: err for camera in frames}
        finally:
            self._changed.acquire()
            self._running = False
        for camera, (ticket, _) in waiting.items():
            if ticket in self._abandoned:
                self._abandoned.discard(ticket)
            else:
                self._outcomes[ticket] = outcomes[camera]
        self.rounds_run += 1
        self.frames_run += len(frames)
        self._changed.notify_all()


class SharedCamera:
    """One camera of :class:`CameraRounds`, used where a :class:`MotsPipeline` is (the node's ``pipeline``)."""

    def __init__(self, rounds: CameraRounds, name: str, pipeline: MotsPipeline, window_s: float | None = None):
        self.rounds = rounds
        self.name = name
        self.pipeline = pipeline
        self.window_s = window_s

    def process(self, frame: Frame) -> FrameResult:
        """This camera's frame, batched with the other cameras' frames of its round."""
        return self.rounds.process(self.name, frame, self.window_s)

    def reset(self, *, restart_ids: bool = False) -> None:
        """Resets this camera's tracker and sampling (between rounds)."""
        self.rounds.reset(self.name, restart_ids=restart_ids)

    @property
    def tracker(self) -> Tracker:
        """This camera's own tracker."""
        return self.pipeline.tracker

    @property
    def stage_names(self) -> tuple[str, ...]:
        """As :attr:`MotsPipeline.stage_names`."""
        return self.pipeline.stage_names

    @property
    def backend_names(self) -> dict[str, str]:
        """As :attr:`MotsPipeline.backend_names`, marked as shared."""
        return {network: f"{name} (shared)" for network, name in self.pipeline.backend_names.items()}
