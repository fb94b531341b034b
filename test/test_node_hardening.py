"""Hostile and careless input to mots_node over real DDS: every kind is logged, counted on
/diagnostics and survived, memory stays bounded under decompression bombs, and no failure of a
lifecycle transition is silent."""

from __future__ import annotations

import time
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import CompressedImage, Image

from ros_support import Process
from test_images import _bombs
from test_node import HEIGHT, WIDTH, Client, good_image, header, write_params

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def vm_hwm_mib(pid: int) -> float:
    """Peak resident memory of a process, from /proc (MiB)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def diagnostics(client, wanted, timeout_s=15.0, processed=1):
    """The newest /diagnostics values once they hold ``wanted`` and count ``processed`` frames."""
    deadline = time.monotonic() + timeout_s
    values = {}
    while time.monotonic() < deadline:
        with client.lock:
            if client.diagnostics:
                values = {kv.key: kv.value for kv in client.diagnostics[-1].status[0].values}
        if all(key in values for key in wanted) and int(values.get("frames processed", 0)) >= processed:
            return values
        time.sleep(0.2)
    raise AssertionError(f"diagnostics lack {[k for k in wanted if k not in values]}: {values}")


def call(client, service_type, name, request, timeout_s=10.0):
    service = client.node.create_client(service_type, name)
    assert service.wait_for_service(timeout_sec=timeout_s), name
    future = service.call_async(request)
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert future.done(), name
    return future.result()


@contextmanager
def node_and_client(params, namespace, tmp_path, ready="active:"):
    """mots_node in its own process, once its log says ``ready``, and this test's client for it."""
    process = Process(["run", "--params-file", str(params), "--namespace", namespace], tmp_path / "node.log")
    client = None
    try:
        assert process.wait_for_output(ready, 90), process.output()
        client = Client(namespace)
        yield process, client
    finally:
        if client is not None:
            client.close()
        process.stop()


def flow_message(sec, flow, **fields):
    msg = Image(header=header(sec), height=flow.shape[0], width=flow.shape[1], encoding="32FC2", step=flow.shape[1] * 8)
    msg.data = flow.tobytes()
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


def test_sweep_of_bad_input_is_logged_counted_and_survived(tiny_models, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_models, mode="live", use_flow="true", flow_timeout_s=0.3,
                          reorder_tolerance_s=0.5)
    with node_and_client(params, "sweep", tmp_path) as (process, client):
        client.wait_for_node()
        # The publisher may see the node's subscription before the node's best-effort reader has matched it, and
        # a best-effort sample can be lost under load: one good frame makes the round trip first, and each single
        # bad message is sent again (unchanged, so it was never processed) until the node has logged it.
        for sec in range(1, 10):
            client.image.publish(good_image(sec))
            if client.tracks_with_stamp(sec, timeout_s=5.0) is not None:
                break
        else:
            raise AssertionError(f"no frame made the round trip through the node: {process.output()}")
        sent = []  # (kind, expected log text)

        def send(kind, expected, message, attempts=4):
            for _ in range(attempts):
                client.image.publish(message)
                if process.wait_for_output(expected, 3.0):
                    break
            sent.append((kind, expected))

        msg = good_image(10)
        msg.step = 100
        send("image", "image step 100 is smaller than width*channels", msg)
        msg = good_image(11)
        msg.data = msg.data[:1000]
        send("image", "image data has 1000 bytes, expected at least", msg)
        for i in range(300):  # random encoding names: bounded logging
            msg = good_image(12)
            msg.encoding = f"enc{i:03d}"
            client.image.publish(msg)
        sent.append(("image", "unsupported image encoding 'enc"))  # live mode: the newest waiting one is processed
        time.sleep(0.5)
        send("image", "image size 0x160 is empty", Image(header=header(13), height=0, width=WIDTH, encoding="rgb8",
                                                          step=WIDTH * 3))
        send("image", "image size 30000x30000 exceeds the limit",
             Image(header=header(14), height=30000, width=30000, encoding="rgb8", step=90000, data=b"\x00" * 64))
        msg = good_image(15)
        msg.header.stamp.nanosec = 2**32 - 1
        send("stamp", "stamp nanosec 4294967295 is out of range", msg)
        msg = good_image(16)
        msg.data = bytes(msg.data) + b"\x00" * 480
        send("noticed image_padding", "more than step x height", msg)
        assert client.tracks_with_stamp(16) is not None, process.output()  # padded data is still processed

        for sec, flow, fields, expected in [
            (20, np.zeros((HEIGHT // 2, WIDTH // 2, 2), np.float32), {}, "flow shape (48, 80, 2) does not match"),
            (21, np.full((HEIGHT, WIDTH, 2), np.nan, np.float32), {}, "non-finite values"),
            (22, np.zeros((HEIGHT, WIDTH, 2), np.float32), {"encoding": "32FC1"}, "flow encoding must be 32FC2"),
            (23, np.zeros((HEIGHT, WIDTH, 2), np.float32), {"step": 8}, "flow step 8 is smaller than width*8"),
        ]:
            client.flow.publish(flow_message(sec, flow, **fields))
            time.sleep(0.05)
            client.image.publish(good_image(sec))
            sent.append(("flow", expected))
            assert client.tracks_with_stamp(sec) is not None, process.output()  # the frame goes on without flow

        client.image.publish(good_image(40))
        before = client.tracks_with_stamp(40)
        late = good_image(39)
        late.header.stamp.sec, late.header.stamp.nanosec = 39, 950_000_000  # 50 ms older than the last frame
        client.image.publish(late)
        sent.append(("out_of_order", "older than the last processed one by at most node.reorder_tolerance_s"))
        time.sleep(0.3)
        client.image.publish(good_image(41))
        after = client.tracks_with_stamp(41)
        assert after is not None and after.tracker_epoch == before.tracker_epoch  # no reset for a late frame

        for sec in (50, 51, 52):  # good frames after all of it
            client.image.publish(good_image(sec))
            assert client.tracks_with_stamp(sec) is not None, process.output()
        assert process.alive()
        log = process.output()
        for kind, expected in sent:
            assert expected in log, f"{kind}: missing log line {expected!r}"
        assert log.count("unsupported image encoding") <= 2  # 300 bad encodings, throttled by kind
        values = diagnostics(client, ["rejected image", "rejected flow", "rejected stamp", "noticed image_padding"])
        # a burst is partly lost on the best-effort input and partly replaced while waiting (live mode)
        assert int(values["rejected image"]) >= 6
        assert int(values["rejected flow"]) >= 4
        assert int(values["rejected stamp"]) == 1 and int(values["out_of_order"]) == 1
        assert int(values["noticed image_padding"]) == 1
        print(f"\nsweep: {len(sent)} kinds, node alive, {len(sent)} logged, peak RSS {vm_hwm_mib(process.popen.pid):.0f} MiB")


def test_compressed_bombs_leave_the_node_small_and_serving(tiny_models, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_models, mode="live", image_transport="compressed")
    with node_and_client(params, "bombs", tmp_path) as (process, client):
        deadline = time.monotonic() + 30
        while client.compressed.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        bombs = _bombs()
        for index, (_, data) in enumerate(sorted(bombs.items())):
            client.compressed.publish(CompressedImage(header=header(100 + index), format="jpeg", data=data))
            time.sleep(0.15)
        image = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        jpeg = cv2.imencode(".jpg", image[..., ::-1])[1].tobytes()
        client.compressed.publish(CompressedImage(header=header(200), format="jpeg", data=jpeg))
        assert client.tracks_with_stamp(200) is not None, process.output()
        values = diagnostics(client, ["rejected image"])
        # best-effort input may lose a message under load; every bomb that arrived was refused
        assert int(values["rejected image"]) == int(values["frames received"]) - int(values["frames processed"])
        assert int(values["rejected image"]) >= len(bombs) - 2 and process.alive()
        peak = vm_hwm_mib(process.popen.pid)
        assert peak < 1024, f"peak RSS {peak:.0f} MiB"
        print(f"\nbombs: {len(bombs)} refused, node peak RSS {peak:.0f} MiB")


def test_a_bad_log_path_is_refused_without_subscribing_and_can_be_corrected(tiny_models, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_models, mode="live",
                          latency_log=str(tmp_path / "missing" / "latency.csv"))
    with node_and_client(params, "stall", tmp_path, ready="configure refused: node.latency_log: the folder") as (
            process, client):
        time.sleep(1.0)
        assert client.image.get_subscription_count() == 0  # unconfigured: nothing subscribes, nothing piles up
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(tmp_path / "latency.csv"))
        result = call(client, SetParameters, "/stall/mots_node/set_parameters",
                      SetParameters.Request(parameters=[ParameterMsg(name="node.latency_log", value=value)]))
        assert result.results[0].successful
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            request = ChangeState.Request(transition=Transition(id=transition))
            assert call(client, ChangeState, "/stall/mots_node/change_state", request).success, process.output()
        client.wait_for_node()
        client.image.publish(good_image(5))
        assert client.tracks_with_stamp(5) is not None, process.output()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (tmp_path / "latency.csv").is_file():
            time.sleep(0.1)
        assert "total" in (tmp_path / "latency.csv").read_text().splitlines()[0]


def test_typos_in_a_params_file_are_refused_naming_the_closest_key(tiny_models, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_models, mdoe="replay")
    process = Process(["run", "--params-file", str(params), "--namespace", "typo"], tmp_path / "node.log")
    try:
        assert process.wait_for_output("configure refused: unknown parameter node.mdoe (did you mean node.mode?)", 90), \
            process.output()
        assert process.alive()
    finally:
        process.stop()
