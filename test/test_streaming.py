"""The node's ROS-free parts: frame queue policy, flow matching, throttled reports, statistics."""

import threading
import time

import pytest

from mots_ros.streaming import FlowMatcher, FrameQueue, StreamStatistics, ThrottledReporter


def test_live_queue_keeps_only_the_newest_frame_and_counts_the_replaced():
    queue = FrameQueue("live")
    assert queue.put("a") == (0, 1)
    assert queue.put("b") == (1, 1)
    assert queue.get(timeout_s=0.1) == "b" and queue.get(timeout_s=0.05) is None


def test_replay_queue_keeps_every_frame_in_order():
    queue = FrameQueue("replay")
    for i in range(5):
        assert queue.put(i) == (0, i + 1)
    assert [queue.get(timeout_s=0.1) for _ in range(5)] == list(range(5))


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


def test_reporter_throttles_per_kind_and_says_how_many_it_held_back():
    now = [0.0]
    lines = []
    reporter = ThrottledReporter(lambda level, text: lines.append((level, text)), interval_s=5.0, clock=lambda: now[0])
    assert reporter.report("image", "step 10 is smaller than 600")
    assert not reporter.report("image", "step 12 is smaller than 600")  # same kind: numbers do not count
    assert reporter.report("image", "data is truncated", level="error")  # another message: its own throttle
    now[0] = 6.0
    assert reporter.report("image", "step 14 is smaller than 600")
    assert lines == [("warning", "step 10 is smaller than 600"), ("error", "data is truncated"),
                     ("warning", "step 14 is smaller than 600 (1 more like this since the last report)")]


def test_statistics_give_counters_rates_and_latency_per_stage():
    stats = StreamStatistics()
    for i in range(11):
        stats.frame_arrived(i * 0.1)
    stats.count("dropped", 2)
    stats.reject("image")
    stats.frame_processed({"total": 10.0, "clustering": 2.0}, epoch=3, active_tracks=4)
    stats.frame_processed({"total": 20.0}, epoch=3, active_tracks=5)
    values = dict(stats.values(["total", "clustering", "association"], [("mode", "live")]))
    assert values["frames received"] == "11" and values["frames processed"] == "2" and values["frames dropped"] == "2"
    assert values["input rate hz"] == "10.00" and values["active tracks"] == "5" and values["tracker epoch"] == "3"
    assert values["latency total median ms"] == "15.00" and values["rejected image"] == "1" and values["mode"] == "live"
    assert "latency association median ms" not in values
    assert stats.problems() == 3 and stats.summary() == "2 frames processed, 2 dropped, 1 rejected"
