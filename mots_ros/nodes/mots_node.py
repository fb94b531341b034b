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

import os
import threading
import time

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
from mots_ros.images import cap_opencv_decoder
from mots_ros.msg import TrackedInstanceArray
from mots_ros.multi_camera import CameraRounds, SharedCamera
from mots_ros.nodes.parameters import config_from_parameters, declare_config_parameters
from mots_ros.overlay import draw_overlay
from mots_ros.pipeline import MotsPipeline
from mots_ros.ros_conversions import (
    compressed_to_rgb,
    flow_to_array,
    image_to_rgb,
    mono16_image,
    result_to_message,
    rgb_to_image,
    stamp_to_ns,
)
from mots_ros.streaming import (
    FlowMatcher,
    FrameQueue,
    ReorderGuard,
    StreamStatistics,
    ThrottledReporter,
    check_log_path,
)

NODE_STAGES_BEFORE = ("queued", "decode")  # timed by the node around the pipeline's own stages
NODE_STAGES_AFTER = ("publish", "total")


class MotsNode(LifecycleNode):
    """Thin adapter: messages in, :class:`MotsPipeline`, messages out."""

    def __init__(self, node_name: str = "mots_node", cameras: CameraRounds | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self._cameras = cameras  # networks shared with the other nodes of this process, batched per round
        self._refused = declare_config_parameters(self)
        self.config: Config | None = None
        self.pipeline: MotsPipeline | SharedCamera | None = None
        self._pipeline_lock = threading.Lock()
        self._stats = StreamStatistics()
        self._reporter = ThrottledReporter(self._log)
        self._outputs: dict = {}
        self._inputs: list = []
        self._own_timers: list = []
        self._reset_service = None
        self._queue: FrameQueue | None = None
        self._flows: FlowMatcher | None = None
        self._order: ReorderGuard | None = None
        self._worker: threading.Thread | None = None
        self._activated_at = 0.0
        self._first_image_seen = False
        self._latency_log = None
        self._stages: tuple[str, ...] = ()
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
            if self.config.node.latency_log:
                check_log_path("node.latency_log", self.config.node.latency_log)
            self._drop_pipeline()
            if self._cameras is not None:
                self.pipeline = self._cameras.add_camera(self.get_fully_qualified_name(), self.config)
            else:
                self.pipeline = MotsPipeline.from_config(self.config)
        except MotsError as err:
            self.get_logger().error(f"configure refused: {err}")
            return TransitionCallbackReturn.FAILURE
        except Exception as err:  # a runtime's own error type; rclpy would only report "ERROR"
            self.get_logger().error(f"configure failed: {type(err).__name__}: {err}")
            return TransitionCallbackReturn.FAILURE
        if not cap_opencv_decoder(self.config.node.max_image_pixels):
            self.get_logger().warning(
                f"OpenCV was imported before configure, so its decoders keep the cap "
                f"OPENCV_IO_MAX_IMAGE_PIXELS={os.environ.get('OPENCV_IO_MAX_IMAGE_PIXELS')}; headers are still checked "
                f"against node.max_image_pixels={self.config.node.max_image_pixels}")
        if self.config.node.use_flow and not any(c.name == "flow_iou" for c in self.pipeline.tracker.cues):
            self.get_logger().info("node.use_flow is on but no flow cue is enabled: flow is matched but not used")
        self._stages = (*NODE_STAGES_BEFORE, *self.pipeline.stage_names, *NODE_STAGES_AFTER)
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
        # rclpy swallows an exception raised here and leaves the node half-active: catch, log, undo.
        try:
            return self._activate(state)
        except Exception as err:
            self.get_logger().error(f"activate failed: {type(err).__name__}: {err}")
            self._stop_processing()
            return TransitionCallbackReturn.FAILURE

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in {state.label}: processing stopped; the node is unconfigured")
        self._stop_processing()
        self._drop_pipeline()
        return TransitionCallbackReturn.SUCCESS

    def _drop_pipeline(self) -> None:
        if self._cameras is not None and self.pipeline is not None:
            self._cameras.remove_camera(self.get_fully_qualified_name())
        self.pipeline = None

    def _activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        node_config = self.config.node
        live = node_config.mode == "live"
        qos = qos_profile_sensor_data if live else QoSProfile(
            reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=node_config.replay_queue_size)
        overrides = QoSOverridingOptions.with_default_policies()
        self._queue = FrameQueue(node_config.mode, capacity=node_config.replay_queue_size)
        self._flows = FlowMatcher(node_config.flow_timeout_s, max_bytes=node_config.flow_buffer_mib << 20)
        self._order = ReorderGuard(int(node_config.reorder_tolerance_s * 1e9))
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
            self._latency_log = open(os.path.expanduser(node_config.latency_log), "a", buffering=1)
            if self._latency_log.tell() == 0:
                self._latency_log.write(",".join(["stamp_ns", "finished_s", *self._stages]) + "\n")
        self._worker = threading.Thread(target=self._work, args=(self._queue,), name="mots_worker", daemon=True)
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
        self._drop_pipeline()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        self._destroy_subscriptions()
        if self._queue is not None:
            self._queue.close()  # frames left from before deactivation are stale at the next activation
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
        self._stats.frame_arrived(time.monotonic())
        self._first_image_seen = True
        dropped, waiting = self._queue.put((msg, time.perf_counter()))
        if dropped:
            self._stats.count("dropped", dropped)
        if dropped and self._queue.mode == "replay":
            self._reporter.report("backlog", f"replay queue full ({waiting} frames, node.replay_queue_size): frame "
                                  "dropped and counted; the input is faster than the node (slow the player down, "
                                  "or replay with --wait-for-tracks)")

    def _work(self, queue: FrameQueue) -> None:
        while not queue.closed:
            item = queue.get(timeout_s=0.5)
            if item is not None:
                self._process_safely(*item)

    def _on_flow(self, msg) -> None:
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)
        except MotsError as err:
            self._reject("flow", f"flow ignored: {err}")
            return
        self._flows.add(stamp_ns, msg, len(msg.data))

    def _take_flow(self, stamp_ns: int):
        """The decoded flow of this stamp, or None; its size and values are checked by the pipeline."""
        msg = self._flows.take(stamp_ns)
        if msg is None:
            self._stats.count("flow_missing")
            self._reporter.report("flow_missing", f"no flow with stamp {stamp_ns} within {self._flows.timeout_s} s; "
                                  "frame processed without flow", level="info")
            return None
        try:
            return flow_to_array(msg)
        except MotsError as err:
            self._reject("flow", f"flow ignored: {err}", detail=getattr(err, "kind", ""))
            return None

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
            self._reject("image", f"image skipped: {err}", detail=getattr(err, "kind", ""))
            return
        decoded = time.perf_counter()
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)
        except MotsError as err:
            self._reject("stamp", f"image skipped: {err}")
            return
        if not self._order.accept(stamp_ns):
            self._stats.count("out_of_order")
            self._reporter.report("out_of_order", f"image stamped {stamp_ns} is older than the last processed one by "
                                  f"at most node.reorder_tolerance_s ({node_config.reorder_tolerance_s} s): dropped")
            return
        if node_config.image_transport != "compressed" and len(msg.data) > msg.step * msg.height:
            self._stats.notice("image_padding")
            self._reporter.report("image_padding", f"image data has {len(msg.data)} bytes, more than step x height = "
                                  f"{msg.step * msg.height}; the extra bytes are ignored")
        flow = self._take_flow(stamp_ns) if node_config.use_flow else None
        try:
            with self._pipeline_lock:
                if self.pipeline is None:
                    return
                result = self.pipeline.process(Frame(image, stamp_ns=stamp_ns, flow=flow))
        except MotsError as err:
            self._reject("frame", f"frame skipped: {err}")
            return
        if result.flow_problem is not None:
            self._reject("flow", f"flow ignored: {result.flow_problem}", detail="values")
        publish_start = time.perf_counter()
        self._outputs["tracks"].publish(result_to_message(result, msg.header))
        if self._outputs["instance_ids"].get_subscription_count() > 0:
            self._outputs["instance_ids"].publish(mono16_image(result.id_image(), msg.header))
        if self._outputs["overlay"].get_subscription_count() > 0:
            self._outputs["overlay"].publish(rgb_to_image(draw_overlay(image, result), msg.header))
        finished = time.perf_counter()
        latency = {"queued": (started - arrived) * 1e3, "decode": (decoded - started) * 1e3, **result.latency_ms,
                   "publish": (finished - publish_start) * 1e3, "total": (finished - started) * 1e3}
        if self._latency_log is not None:
            row = ",".join(f"{latency.get(stage, 0.0):.3f}" for stage in self._stages)
            self._latency_log.write(f"{stamp_ns},{time.monotonic():.4f},{row}\n")
        self._stats.frame_processed(latency, result.tracker_epoch, result.active_tracks)

    def _on_reset(self, request, response):
        with self._pipeline_lock:
            if self.pipeline is None:
                response.success, response.message = False, "not configured"
                return response
            self.pipeline.reset()
            epoch = self.pipeline.tracker.epoch
            if self._order is not None:
                self._order.forget()
        self.get_logger().info(f"tracker reset on request; epoch {epoch}")
        response.success, response.message = True, f"tracker reset; epoch {epoch}"
        return response

    # ------------------------------------------------------------------ reporting
    def _reject(self, kind: str, message: str, level: str = "warning", detail: str = "") -> None:
        """Counts a rejection of ``kind`` on /diagnostics; the log throttle is per kind and detail."""
        self._stats.reject(kind)
        self._reporter.report(f"{kind}:{detail}" if detail else kind, message, level)

    def _log(self, level: str, text: str) -> None:
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
        pipeline = self.pipeline
        extra = [("mode", self.config.node.mode), ("flow source", self.config.flow.source)]
        extra += [(f"backend {k}", v) for k, v in (pipeline.backend_names.items() if pipeline else [])]
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if self._stats.problems() else DiagnosticStatus.OK,
            name=f"{self.get_fully_qualified_name()}: tracking",
            message=self._stats.summary(),
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=v) for k, v in self._stats.values(self._stages, extra)],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._outputs["diagnostics"].publish(array)


def spin_nodes(nodes: list) -> None:
    """Spins nodes on one executor until Ctrl-C or shutdown, then cleans up.

    One executor thread is enough: callbacks only queue and store messages, and each node's
    worker thread does the processing (with shared networks, its camera's part of a batched round).
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
