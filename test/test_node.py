"""mots_node in its own process, driven over real DDS (shared memory only) from this process.

The node runs tiny random-weight models: these tests are about the node's behaviour (inputs,
errors, lifecycle, services, outputs), not about tracking quality.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from mots_ros.msg import TrackedInstanceArray
from mots_ros.ros_conversions import rgb_to_image
from ros_support import Process

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RELIABLE = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, depth=50)
HEIGHT, WIDTH = 96, 160


def write_params(path, models, **node):
    lines = ["/**:", "  ros__parameters:", "    segmentation:", f"      weights: {models / 'se.pth'}",
             "      seed_threshold: 0.5", "      min_pixel: 0", "    embedding:", f"      weights: {models / 'pt.pth'}",
             "    tracker:", "      age_unit: seconds", "      max_age_s: 3",
             "    inference:", "      backend: auto", f"      cache_dir: {models / 'cache'}", "    node:"]
    lines += [f"      {key}: {value}" for key, value in node.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Client:
    """This test's side of the DDS conversation, on its own rclpy Context."""

    def __init__(self, namespace: str, image_topic: str = "image"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("test_client", context=self.context)
        self.tracks: list = []
        self.diagnostics: list = []
        self.ids: list = []
        self.lock = threading.Lock()
        ns = f"/{namespace}"
        self.node.create_subscription(TrackedInstanceArray, f"{ns}/tracks", self._store(self.tracks), RELIABLE)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._store(self.diagnostics), 10)
        self.image = self.node.create_publisher(Image, f"{ns}/{image_topic}", RELIABLE)
        self.compressed = self.node.create_publisher(CompressedImage, f"{ns}/image/compressed", RELIABLE)
        self.flow = self.node.create_publisher(Image, f"{ns}/flow", RELIABLE)
        self.reset = self.node.create_client(Trigger, f"{ns}/mots_node/reset")
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _store(self, target):
        def callback(msg):
            with self.lock:
                target.append(msg)
        return callback

    def subscribe_ids(self, namespace):
        return self.node.create_subscription(Image, f"/{namespace}/instance_ids", self._store(self.ids), RELIABLE)

    def wait_for_node(self, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.image.get_subscription_count() == 0:
            time.sleep(0.05)
        assert self.image.get_subscription_count() > 0, "the node did not subscribe in time"

    def tracks_with_stamp(self, stamp_sec, timeout_s=20.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                found = [t for t in self.tracks if t.header.stamp.sec == stamp_sec]
            if found:
                return found[0]
            time.sleep(0.05)
        return None

    def close(self):
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def header(sec):
    h = Header(frame_id="camera_optical_frame")
    h.stamp.sec = sec
    return h


def good_image(sec):
    rng = np.random.default_rng(sec)
    return rgb_to_image(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), header(sec))


@pytest.fixture(scope="module")
def live_node(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    params = write_params(folder / "params.yaml", tiny_models, mode="live", use_flow="true", flow_timeout_s=0.5,
                          no_image_warning_s=2.0)
    process = Process(["run", "--params-file", str(params), "--namespace", "live"], folder / "node.log")
    assert process.wait_for_output("active:", 90), process.output()
    client = Client("live")
    client.wait_for_node()
    yield process, client
    client.close()
    process.stop()


def test_node_warns_when_no_image_arrives(live_node):
    process, _ = live_node
    assert process.wait_for_output("no image on /live/image", 10), process.output()
    assert "best-effort, so it accepts any publisher" in process.output()


def test_malformed_images_and_flow_are_reported_and_the_node_keeps_serving(live_node):
    process, client = live_node
    bad = []
    msg = good_image(10)
    msg.step = 100  # narrower than a row
    bad.append(msg)
    msg = good_image(11)
    msg.data = msg.data[:1000]  # truncated
    bad.append(msg)
    msg = good_image(12)
    msg.encoding = "yuv_fancy"
    bad.append(msg)
    bad.append(Image(header=header(13), height=0, width=WIDTH, encoding="rgb8", step=WIDTH * 3))
    bad.append(Image(header=header(14), height=20000, width=20000, encoding="rgb8", step=60000, data=b"\x00" * 64))
    for msg in bad:
        client.image.publish(msg)
        time.sleep(0.1)
    huge_png = bytearray(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (20000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
    client.compressed.publish(CompressedImage(header=header(15), format="png", data=bytes(huge_png)))

    # Flow of the wrong size, then flow with NaN: the frames go on without flow.
    for sec, flow in ((20, np.zeros((HEIGHT // 2, WIDTH // 2, 2), np.float32)),
                      (21, np.full((HEIGHT, WIDTH, 2), np.nan, np.float32))):
        flow_msg = Image(header=header(sec), height=flow.shape[0], width=flow.shape[1], encoding="32FC2",
                         step=flow.shape[1] * 8)
        flow_msg.data = flow.tobytes()
        client.flow.publish(flow_msg)
        time.sleep(0.05)
        client.image.publish(good_image(sec))
        assert client.tracks_with_stamp(sec) is not None, process.output()

    for sec in (30, 31, 32):  # good frames after all that, without flow
        client.image.publish(good_image(sec))
        assert client.tracks_with_stamp(sec) is not None, process.output()
    assert process.alive()
    log = process.output()
    for expected in (
        "image step 100 is smaller than width*channels = 480",
        "image data has 1000 bytes, expected at least 46080",
        "unsupported image encoding 'yuv_fancy'",
        "image size 0x160 is empty",
        "image size 20000x20000 exceeds the limit",
        "flow ignored: flow shape (48, 80, 2) does not match the image (96, 160, 2)",
        "flow ignored: flow has 30720 non-finite values",
        "no flow with stamp 30000000000",
    ):
        assert expected in log, f"missing log line: {expected}\n{log}"


def test_diagnostics_report_latency_backend_and_rejections(live_node):
    _, client = live_node
    deadline = time.monotonic() + 10
    values = {}
    while time.monotonic() < deadline:
        with client.lock:
            if client.diagnostics:
                values = {kv.key: kv.value for kv in client.diagnostics[-1].status[0].values}
        if "latency total median ms" in values and "rejected image" in values:
            break
        time.sleep(0.2)
    assert values["backend segmentation"] == "onnxruntime-cpu" and values["mode"] == "live"  # auto on a CPU
    assert int(values["rejected image"]) >= 5 and int(values["rejected flow"]) >= 2
    assert float(values["latency segmentation_network median ms"]) > 0


def test_time_going_backwards_and_reset_service_bump_the_epoch(live_node):
    _, client = live_node
    client.image.publish(good_image(50))
    first = client.tracks_with_stamp(50)
    client.image.publish(good_image(40))  # earlier than 50: a looped bag
    jumped = client.tracks_with_stamp(40)
    assert jumped.tracker_epoch == first.tracker_epoch + 1
    assert client.reset.wait_for_service(timeout_sec=10)
    future = client.reset.call_async(Trigger.Request())
    deadline = time.monotonic() + 10
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert future.done() and future.result().success
    client.image.publish(good_image(41))
    assert client.tracks_with_stamp(41).tracker_epoch == jumped.tracker_epoch + 1


def test_id_image_is_published_only_to_subscribers(live_node):
    _, client = live_node
    client.image.publish(good_image(60))
    assert client.tracks_with_stamp(60) is not None
    assert client.ids == []
    subscription = client.subscribe_ids("live")
    deadline = time.monotonic() + 10
    sec = 61
    while not client.ids and time.monotonic() < deadline:
        client.image.publish(good_image(sec))
        client.tracks_with_stamp(sec, timeout_s=5)
        sec += 1
    assert client.ids and client.ids[-1].encoding == "mono16" and client.ids[-1].height == HEIGHT
    client.node.destroy_subscription(subscription)


def test_invalid_parameter_is_refused_at_configure_and_the_node_stays_up(tiny_models, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_models, mode="sometimes", flow_timeout_s=-1.0)
    process = Process(["run", "--params-file", str(params), "--namespace", "refused"], tmp_path / "node.log")
    try:
        assert process.wait_for_output("configure refused", 90), process.output()
        log = process.output()
        assert "node.flow_timeout_s" in log or "node.mode" in log
        time.sleep(1.0)
        assert process.alive()
    finally:
        process.stop()


def test_cameras_of_one_process_share_networks_and_track_as_alone(tmp_path):
    """Two namespaces in one `mots-ros run`: one network load, batched rounds, each camera's own tracks.

    The command is the one `mots.launch.py shared_process:=true` starts, image remapping included.
    """
    from conftest import REPO
    from mots_ros.cli import run_command_line
    from mots_ros.config import load_config
    from mots_ros.datatypes import Frame
    from mots_ros.pipeline import MotsPipeline
    from mots_ros.ros_conversions import result_to_message
    from mots_ros.synthetic.driving import DrivingConfig, DrivingScene

    frames = 3
    params = REPO / "config" / "car.yaml"
    settings = {"node.mode": "replay", "node.batch_window_s": 0.5, "inference.cache_dir": str(tmp_path / "cache")}
    ros_args = [arg for key, value in settings.items() for arg in ("-p", f"{key}:={value}")] + ["-r", "image:=camera_image"]
    command = run_command_line(str(params), ["front", "rear"], ros_args)
    process = Process(command[1:], tmp_path / "node.log")
    images = {name: [f.image_rgb for f in DrivingScene(DrivingConfig(frames=frames, seed=seed)).frames()]
              for name, seed in (("front", 920), ("rear", 921))}
    clients = {}
    try:
        assert process.wait_for_output("active: listening on /rear/camera_image", 120), process.output()
        assert process.wait_for_output("active: listening on /front/camera_image", 10), process.output()
        assert process.output().count("(shared)") >= 4, process.output()  # both networks, both nodes
        clients = {name: Client(name, image_topic="camera_image") for name in images}
        for client in clients.values():
            client.wait_for_node()
        for index in range(frames):
            for name, client in clients.items():
                client.image.publish(rgb_to_image(images[name][index], header(index + 1)))
        received = {name: [client.tracks_with_stamp(sec, timeout_s=60) for sec in range(1, frames + 1)]
                    for name, client in clients.items()}
    finally:
        for client in clients.values():
            client.close()
        process.stop()
    config = load_config(params).replace(**settings)
    for name, messages in received.items():
        assert all(m is not None for m in messages), (name, process.output())
        alone = MotsPipeline.from_config(config)
        for index, msg in enumerate(messages):
            expected = result_to_message(alone.process(Frame(images[name][index], stamp_ns=(index + 1) * 10**9)),
                                         header(index + 1))
            assert [(i.track_id, bytes(i.mask_data)) for i in msg.instances] == \
                   [(i.track_id, bytes(i.mask_data)) for i in expected.instances], (name, index)
    assert all(len(m.instances) > 0 for m in received["front"] + received["rear"]), "the car model found no cars"
