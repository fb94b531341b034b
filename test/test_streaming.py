"""The node's ROS-free parts: frame queue policy, flow matching, throttled reports, statistics."""

import threading
import time

import pytest

from mots_ros.errors import ConfigError
from mots_ros.streaming import FlowMatcher, FrameQueue, ReorderGuard, StreamStatistics, ThrottledReporter, check_log_path


def test_live_queue_keeps_only_the_newest_frame_and_counts_the_replaced():
    queue = FrameQueue("live")
    assert queue.put("a") == (0, 1)
    assert queue.put("b") == (1, 1)
    assert queue.get(timeout_s=0.1) == "b" and queue.get(timeout_s=0.05) is None


def test_replay_queue_keeps_every_frame_in_order_up_to_its_capacity():
    queue = FrameQueue("replay", capacity=5)
    for i in range(5):
        assert queue.put(i) == (0, i + 1)
    assert queue.put(5) == (1, 5)  # full: this frame is dropped, and the caller counts it
    assert [queue.get(timeout_s=0.1) for _ in range(5)] == list(range(5)) and len(queue) == 0


def test_closing_wakes_a_waiting_worker_and_forgets_stale_frames():
    queue = FrameQueue("replay")
    got = []
    worker = threading.Thread(target=lambda: got.append(queue.get(timeout_s=10.0)))
    worker.start()
    time.sleep(0.05)
    assert queue.close() == 0
    worker.join(timeout=5.0)
    assert not worker.is_alive() and got == [None] and queue.closed
    with pytest.raises(ValueError, match="mode must be"):
        FrameQueue("fast")


def test_flow_matcher_waits_for_its_stamp_and_keeps_a_bounded_buffer():
    flows = FlowMatcher(timeout_s=2.0, capacity=3)
    threading.Timer(0.05, lambda: flows.add(7, "flow 7")).start()
    assert flows.take(7) == "flow 7"  # arrived while waiting
    for stamp in range(10):
        flows.add(stamp, f"flow {stamp}")
    assert len(flows) == 3
    quick = FlowMatcher(timeout_s=0.05, capacity=3)
    assert quick.take(1) is None
    by_bytes = FlowMatcher(timeout_s=0.05, capacity=100, max_bytes=1000)
    for stamp in range(10):
        by_bytes.add(stamp, f"flow {stamp}", size_bytes=300)
    assert len(by_bytes) == 3 and by_bytes.size_bytes == 900 and by_bytes.take(9) == "flow 9" and by_bytes.size_bytes == 600


def test_reporter_throttles_per_kind_whatever_the_message_and_says_how_many_it_held_back():
    now = [0.0]
    lines = []
    reporter = ThrottledReporter(lambda level, text: lines.append((level, text)), interval_s=5.0, clock=lambda: now[0])
    assert reporter.report("image", "unsupported image encoding 'x0'")
    for i in range(3000):  # random encoding names: one kind, one line per interval
        assert not reporter.report("image", f"unsupported image encoding 'x{i + 1}'")
    assert reporter.report("flow", "flow ignored", level="error")  # another kind: its own throttle
    now[0] = 6.0
    assert reporter.report("image", "image step 10 is smaller than 600")
    assert lines == [("warning", "unsupported image encoding 'x0'"), ("error", "flow ignored"),
                     ("warning", "image step 10 is smaller than 600 (3000 more like this since the last report)")]


def test_reorder_guard_drops_late_frames_and_lets_a_loop_through():
    guard = ReorderGuard(tolerance_ns=500)
    assert guard.accept(1000) and guard.accept(2000)
    assert not guard.accept(1950)  # 50 ns late: dropped
    assert guard.accept(2000) and guard.accept(2100)  # equal or later stamps go on
    assert guard.accept(100)  # 2000 back: a bag loop, passed on so the tracker resets
    guard.forget()
    assert guard.accept(50)


def test_log_paths_are_checked_naming_the_key(tmp_path):
    check_log_path("node.latency_log", str(tmp_path / "latency.csv"))
    with pytest.raises(ConfigError, match="node.latency_log: .* is a directory"):
        check_log_path("node.latency_log", str(tmp_path))
    with pytest.raises(ConfigError, match="node.latency_log: the folder .*missing does not exist"):
        check_log_path("node.latency_log", str(tmp_path / "missing" / "latency.csv"))


def test_statistics_give_counters_rates_and_latency_per_stage():
    stats = StreamStatistics()
    for i in range(11):
        stats.frame_arrived(i * 0.1)
    stats.count("dropped", 2)
    stats.reject("image")
    stats.frame_processed({"total": 10.0, "clustering": 2.0}, epoch=3, active_tracks=4)
    stats.frame_processed({"total": 20.0}, epoch=3, active_tracks=5)
    stats.count("out_of_order")
    values = dict(stats.values(["total", "clustering", "association"], [("mode", "live")]))
    assert values["frames received"] == "11" and values["frames processed"] == "2" and values["frames dropped"] == "2"
    assert values["input rate hz"] == "10.00" and values["active tracks"] == "5" and values["tracker epoch"] == "3"
    assert values["latency total median ms"] == "15.00" and values["rejected image"] == "1" and values["mode"] == "live"
    assert "latency association median ms" not in values
    assert values["out_of_order"] == "1"
    assert stats.problems() == 4 and stats.summary() == "2 frames processed, 2 dropped, 1 rejected"
