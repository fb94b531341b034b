#!/usr/bin/env python3
"""mots_node: a lifecycle node that runs the MOTS pipeline on a camera topic.

Topics (relative, so namespaces and remapping place them):
  in:  image (sensor_msgs/Image) or image/compressed (sensor_msgs/CompressedImage);
       flow (sensor_msgs/Image 32FC2, optional, matched to images by exact stamp)
  out: tracks (mots_ros/TrackedInstanceArray); instance_ids (mono16) and overlay (rgb8), built
       only while someone subscribes; /diagnostics (per-stage latency, rates, drops, backend)
Service: ~/reset (std_srvs/Trigger) resets the tracker and bumps tracker_epoch.

Modes: live (the newest frame wins; frames replaced before processing are counted as dropped;
latency never queues) and replay (every frame, in order; reliable input QoS). In both, the image
callback only queues the message and the node's worker thread processes it, on a single-threaded
executor. Processing in the callback on rclpy's multi-threaded executor stalled image delivery by
up to 2 s at a time: a busy callback group drops out of the wait set until another event wakes it.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from mots_ros.config import Config
from mots_ros.datatypes import Frame
from mots_ros.errors import MotsError
from mots_ros.images import flow_problem
from mots_ros.msg import TrackedInstanceArray
from mots_ros.nodes.parameters import config_from_parameters, declare_config_parameters
from mots_ros.overlay import draw_overlay
from mots_ros.pipeline import STAGES, MotsPipeline
from mots_ros.ros_conversions import (
    compressed_to_rgb,
    flow_to_array,
    image_to_rgb,
    mono16_image,
    result_to_message,
    rgb_to_image,
    stamp_to_ns,
)

REPORT_INTERVAL_S = 5.0  # at most one log line per problem kind per interval
FLOW_BUFFER = 64  # flows kept while waiting for their image
LATENCY_WINDOW = 200  # frames in the diagnostics' latency statistics


class _Statistics:
    """Counters and recent latencies reported on /diagnostics."""

    def __init__(self):
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.flow_missing = 0
        self.rejected: dict[str, int] = {}
        self.latency_ms: dict[str, deque] = {}
        self.arrivals: deque = deque(maxlen=50)
        self.lock = threading.Lock()

    def add_latency(self, stage: str, value_ms: float) -> None:
        self.latency_ms.setdefault(stage, deque(maxlen=LATENCY_WINDOW)).append(value_ms)


class MotsNode(LifecycleNode):
    """Thin adapter: messages in, :class:`MotsPipeline`, messages out."""

    def __init__(self, node_name: str = "mots_node", **kwargs):
        super().__init__(node_name, **kwargs)
        self._refused = declare_config_parameters(self)
        self.config: Config | None = None
        self.pipeline: MotsPipeline | None = None
        self._pipeline_lock = threading.Lock()
        self._stats = _Statistics()
        self._reports: dict[str, tuple[float, int]] = {}
        self._outputs: dict = {}
        self._inputs: list = []
        self._own_timers: list = []
        self._reset_service = None
        self._pending: deque = deque()  # (message, arrival time) waiting for the worker; live mode keeps one
        self._pending_changed = threading.Condition()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._flows: OrderedDict[int, object] = OrderedDict()
        self._flows_changed = threading.Condition()
        self._activated_at = 0.0
        self._first_image_seen = False
        self._latency_log = None
        self._epoch, self._active_tracks = 0, 0  # of the last processed frame, for diagnostics
        if self.get_parameter("node.autostart").value:
            # Configure and activate once the executor runs, like a launch file's lifecycle events.
            self._autostart_timer = self.create_timer(0.01, self._autostart)

    # ------------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = config_from_parameters(self, self._refused)
            self.pipeline = MotsPipeline.from_config(self.config)
        except MotsError as err:
            self.get_logger().error(f"configure refused: {err}")
            return TransitionCallbackReturn.FAILURE
        except Exception as err:  # a runtime's own error type; rclpy would only report "ERROR"
            self.get_logger().error(f"configure failed: {type(err).__name__}: {err}")
            return TransitionCallbackReturn.FAILURE
        if self.config.node.use_flow and self.config.tracker.flow_iou_weight == 0:
            self.get_logger().info("node.use_flow is on but tracker.flow_iou_weight is 0: flow is matched but not used")
        self._outputs = {
            "tracks": self.create_lifecycle_publisher(TrackedInstanceArray, "tracks", 10),
            "instance_ids": self.create_lifecycle_publisher(Image, "instance_ids", 5),
            "overlay": self.create_lifecycle_publisher(Image, "overlay", 5),
            "diagnostics": self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        self._reset_service = self.create_service(Trigger, "~/reset", self._on_reset)
        backends = ", ".join(f"{k}: {v}" for k, v in self.pipeline.backend_names.items())
        self.get_logger().info(f"configured: mode {self.config.node.mode}, backends {backends or 'none'}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        node_config = self.config.node
        live = node_config.mode == "live"
        qos = qos_profile_sensor_data if live else QoSProfile(
            reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=node_config.replay_queue_size)
        overrides = QoSOverridingOptions.with_default_policies()
        try:
            if node_config.image_transport == "compressed":
                self._inputs.append(self.create_subscription(
                    CompressedImage, "image/compressed", self._on_image, qos, qos_overriding_options=overrides))
            else:
                self._inputs.append(self.create_subscription(
                    Image, "image", self._on_image, qos, qos_overriding_options=overrides))
            if node_config.use_flow:
                self._inputs.append(self.create_subscription(
                    Image, "flow", self._on_flow, qos, qos_overriding_options=overrides))
        except Exception as err:  # invalid qos_overrides values surface here
            self.get_logger().error(f"activate refused: cannot subscribe: {err}")
            self._destroy_subscriptions()
            return TransitionCallbackReturn.FAILURE
        if node_config.latency_log:
            self._latency_log = open(node_config.latency_log, "a", buffering=1)
            if self._latency_log.tell() == 0:
                self._latency_log.write(",".join(["stamp_ns", "finished_s", "queued", "decode", *STAGES, "publish", "total"])
                                        + "\n")
        self._stopping.clear()
        self._worker = threading.Thread(target=self._work, name="mots_worker", daemon=True)
        self._worker.start()
        self._activated_at = time.monotonic()
        self._first_image_seen = False
        self._own_timers = [
            self.create_timer(1.0, self._publish_diagnostics),
            self.create_timer(node_config.no_image_warning_s, self._warn_if_no_image),
        ]
        self.get_logger().info(f"active: listening on {self._inputs[0].topic_name} ({node_config.mode} mode)")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        if self._reset_service is not None:
            self.destroy_service(self._reset_service)
            self._reset_service = None
        self.pipeline = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        self._destroy_subscriptions()
        self._stopping.set()
        with self._pending_changed:
            self._pending.clear()  # frames left from before deactivation are stale at the next activation
            self._pending_changed.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None
        for timer in self._own_timers:
            self.destroy_timer(timer)
        self._own_timers = []
        if self._latency_log is not None:
            self._latency_log.close()
            self._latency_log = None

    def _destroy_subscriptions(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []

    # ------------------------------------------------------------------ input
    def _on_image(self, msg) -> None:
        with self._stats.lock:
            self._stats.received += 1
            self._stats.arrivals.append(time.monotonic())
        self._first_image_seen = True
        with self._pending_changed:
            if self.config.node.mode == "live" and self._pending:
                with self._stats.lock:
                    self._stats.dropped += len(self._pending)
                self._pending.clear()
            self._pending.append((msg, time.perf_counter()))
            waiting = len(self._pending)
            self._pending_changed.notify()
        if waiting > self.config.node.replay_queue_size:
            self._report("backlog", f"{waiting} frames wait for processing: the input is faster than the node "
                         "(replay mode keeps them all; slow the player down or use live mode)")

    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._pending_changed:
                while not self._pending and not self._stopping.is_set():
                    self._pending_changed.wait(timeout=0.5)
                item = self._pending.popleft() if self._pending else None
            if item is not None:
                self._process_safely(*item)

    def _on_flow(self, msg) -> None:
        with self._flows_changed:
            self._flows[stamp_to_ns(msg.header.stamp)] = msg
            while len(self._flows) > FLOW_BUFFER:
                self._flows.popitem(last=False)
            self._flows_changed.notify_all()

    def _take_flow(self, stamp_ns: int, height: int, width: int) -> np.ndarray | None:
        deadline = time.monotonic() + self.config.node.flow_timeout_s
        with self._flows_changed:
            while stamp_ns not in self._flows and (remaining := deadline - time.monotonic()) > 0:
                self._flows_changed.wait(remaining)
            msg = self._flows.pop(stamp_ns, None)
        if msg is None:
            with self._stats.lock:
                self._stats.flow_missing += 1
            self._report("flow_missing", f"no flow with stamp {stamp_ns} within {self.config.node.flow_timeout_s} s; "
                         "frame processed without flow", level="info")
            return None
        try:
            flow = flow_to_array(msg)
        except MotsError as err:
            self._reject("flow", f"flow ignored: {err}")
            return None
        problem = flow_problem(flow, height, width)
        if problem:
            self._reject("flow", f"flow ignored: {problem}")
            return None
        return flow

    # ------------------------------------------------------------------ processing
    def _process_safely(self, msg, arrived: float) -> None:
        """The one broad catch: nothing a frame does may stop the worker or the executor."""
        try:
            self._process(msg, arrived)
        except Exception as err:
            self._reject("internal", f"frame skipped after an unexpected {type(err).__name__}: {err}", level="error")

    def _process(self, msg, arrived: float) -> None:
        """Decodes, runs the pipeline and publishes; ``total`` counts from decode, ``queued`` before it."""
        started = time.perf_counter()
        node_config = self.config.node
        try:
            if node_config.image_transport == "compressed":
                image = compressed_to_rgb(msg, max_pixels=node_config.max_image_pixels)
            else:
                image = image_to_rgb(msg, max_pixels=node_config.max_image_pixels)
        except MotsError as err:
            self._reject("image", f"image skipped: {err}")
            return
        decoded = time.perf_counter()
        stamp_ns = stamp_to_ns(msg.header.stamp)
        flow = self._take_flow(stamp_ns, *image.shape[:2]) if node_config.use_flow else None
        try:
            with self._pipeline_lock:
                if self.pipeline is None:
                    return
                result = self.pipeline.process(Frame(image, stamp_ns=stamp_ns, flow=flow))
        except MotsError as err:
            self._reject("frame", f"frame skipped: {err}")
            return
        publish_start = time.perf_counter()
        self._outputs["tracks"].publish(result_to_message(result, msg.header))
        if self._outputs["instance_ids"].get_subscription_count() > 0:
            self._outputs["instance_ids"].publish(mono16_image(result.id_image(), msg.header))
        if self._outputs["overlay"].get_subscription_count() > 0:
            self._outputs["overlay"].publish(rgb_to_image(draw_overlay(image, result), msg.header))
        finished = time.perf_counter()
        if self._latency_log is not None:
            stages = [result.latency_ms.get(stage, 0.0) for stage in STAGES]
            row = [(started - arrived) * 1e3, (decoded - started) * 1e3, *stages, (finished - publish_start) * 1e3,
                   (finished - started) * 1e3]
            self._latency_log.write(f"{stamp_ns},{time.monotonic():.4f}," + ",".join(f"{v:.3f}" for v in row) + "\n")
        with self._stats.lock:
            self._stats.processed += 1
            self._stats.add_latency("queued", (started - arrived) * 1e3)
            self._stats.add_latency("decode", (decoded - started) * 1e3)
            for stage, value in result.latency_ms.items():
                self._stats.add_latency(stage, value)
            self._stats.add_latency("publish", (finished - publish_start) * 1e3)
            self._stats.add_latency("total", (finished - started) * 1e3)
            self._epoch, self._active_tracks = result.tracker_epoch, len(self.pipeline.tracker.tracks)

    def _on_reset(self, request, response):
        with self._pipeline_lock:
            if self.pipeline is None:
                response.success, response.message = False, "not configured"
                return response
            self.pipeline.reset()
            epoch = self.pipeline.tracker.epoch
        self.get_logger().info(f"tracker reset on request; epoch {epoch}")
        response.success, response.message = True, f"tracker reset; epoch {epoch}"
        return response

    # ------------------------------------------------------------------ reporting
    def _reject(self, kind: str, message: str, level: str = "warning") -> None:
        with self._stats.lock:
            self._stats.rejected[kind] = self._stats.rejected.get(kind, 0) + 1
        self._report(kind, message, level)

    def _report(self, kind: str, message: str, level: str = "warning") -> None:
        """Logs at most once per REPORT_INTERVAL_S per kind of problem, saying how many were held back.

        The kind is the message with its numbers masked, so "step 10 is smaller than 600" and
        "step 12 ..." share one throttle while a truncated buffer is reported on its own.
        """
        kind = f"{kind}:{re.sub(r'[0-9]+', '#', message)}"
        now = time.monotonic()
        last, held = self._reports.get(kind, (-1e9, 0))
        if now - last < REPORT_INTERVAL_S:
            self._reports[kind] = (last, held + 1)
            return
        self._reports[kind] = (now, 0)
        text = message + (f" ({held} more like this since the last report)" if held else "")
        # rclpy ties a severity to each call site, so every severity gets its own line here.
        if level == "error":
            self.get_logger().error(text)
        elif level == "info":
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)

    def _warn_if_no_image(self) -> None:
        if self._first_image_seen or not self._inputs:
            return
        subscription = self._inputs[0]
        topic = subscription.topic_name
        waited = time.monotonic() - self._activated_at
        if subscription.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
            hint = (f"QoS mismatch is the common cause: this subscription is reliable, and a best-effort camera "
                    f"publisher delivers nothing to it. Set qos_overrides.{topic}.subscription.reliability to best_effort")
        else:
            hint = ("this subscription is best-effort, so it accepts any publisher: check the topic name and remapping "
                    "(e.g. -r image:=/camera/image_raw) and that the camera publishes")
        self.get_logger().warning(f"no image on {topic} for {waited:.0f} s. {hint}")

    def _publish_diagnostics(self) -> None:
        stats = self._stats
        with stats.lock:
            arrivals = list(stats.arrivals)
            rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 and arrivals[-1] > arrivals[0] else 0.0
            values = [
                ("mode", self.config.node.mode),
                ("frames received", stats.received),
                ("frames processed", stats.processed),
                ("frames dropped", stats.dropped),
                ("flow missing", stats.flow_missing),
                ("input rate hz", f"{rate:.2f}"),
                ("tracker epoch", self._epoch),
                ("active tracks", self._active_tracks),
            ]
            values += [(f"backend {k}", v) for k, v in (self.pipeline.backend_names.items() if self.pipeline else [])]
            values += [(f"rejected {k}", v) for k, v in sorted(stats.rejected.items())]
            for stage in ("queued", "decode", *STAGES, "publish", "total"):
                samples = stats.latency_ms.get(stage)
                if samples:
                    values.append((f"latency {stage} median ms", f"{np.median(samples):.2f}"))
                    values.append((f"latency {stage} p95 ms", f"{np.percentile(samples, 95):.2f}"))
            problems = stats.dropped + sum(stats.rejected.values())
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
            name=f"{self.get_fully_qualified_name()}: tracking",
            message=f"{stats.processed} frames processed, {stats.dropped} dropped, {sum(stats.rejected.values())} rejected",
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._outputs["diagnostics"].publish(array)


def spin_nodes(nodes: list) -> None:
    """Spins nodes on one executor until Ctrl-C or shutdown, then cleans up.

    One executor thread is enough: callbacks only queue and store messages, and each node's
    worker thread does the processing, so several cameras in one process still run in parallel.
    """
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node._stop_processing()
            node.destroy_node()
        rclpy.try_shutdown()


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    spin_nodes([MotsNode()])


if __name__ == "__main__":
    main()
