"""What a live stream needs around the pipeline, without ROS.

The frame queue, flow matching, throttled problem reports and the counters behind ``/diagnostics``.

``mots_node`` is a thin adapter over these; each is thread-safe, because ROS callbacks put and a
worker thread takes.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mots_ros.errors import ConfigError

REPORT_INTERVAL_S = 5.0  # at most one log line per problem kind per interval
FLOW_BUFFER = 64  # flows kept while waiting for their image
FLOW_BUFFER_BYTES = 256 << 20  # and at most this many bytes of them (64 full-HD flows would be 1 GB)
LATENCY_WINDOW = 200  # frames in the diagnostics' latency statistics


def check_log_path(key: str, path: str) -> None:
    """Raises ConfigError unless ``path`` can be a log file: not a folder, in a folder that exists."""
    target = Path(os.path.expanduser(path))
    if target.is_dir():
        raise ConfigError(f"{key}: {target} is a directory; give a file path")
    if not target.parent.is_dir():
        raise ConfigError(f"{key}: the folder {target.parent} does not exist")
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{key}: {target} is not writable")


class FrameQueue:
    """Frames waiting for the worker.

    ``live``: only the newest frame waits; a frame replaced before processing counts as dropped,
    so latency never queues. ``replay``: every frame waits, in arrival order, up to ``capacity``;
    a frame arriving at a full queue is dropped (and counted), so memory stays bounded.

    Args:
        mode: ``live`` or ``replay``.
        capacity: most frames waiting in replay mode.
    """

    def __init__(self, mode: str, capacity: int = 1000) -> None:
        if mode not in ("live", "replay"):
            raise ValueError(f"mode must be 'live' or 'replay', got {mode!r}")
        self.mode = mode
        self.capacity = capacity
        self._items: deque[Any] = deque()
        self._changed = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> tuple[int, int]:
        """Queues ``item``; returns ``(dropped, waiting)``.

        ``dropped``: frames lost (those replaced, or this one at a full replay queue); ``waiting``:
        frames waiting now.
        """
        with self._changed:
            dropped = 0
            if self.mode == "live" and self._items:
                dropped = len(self._items)
                self._items.clear()
            elif len(self._items) >= self.capacity:
                return 1, len(self._items)
            self._items.append(item)
            self._changed.notify()
            return dropped, len(self._items)

    def get(self, timeout_s: float) -> Any | None:
        """The oldest waiting item, waiting up to ``timeout_s``; None on timeout or once closed."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not self._items and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return self._items.popleft() if self._items and not self._closed else None

    def close(self) -> int:
        """Wakes every waiter and forgets waiting frames (stale at the next start); returns how many."""
        with self._changed:
            forgotten = len(self._items)
            self._items.clear()
            self._closed = True
            self._changed.notify_all()
            return forgotten

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __len__(self) -> int:
        with self._changed:
            return len(self._items)


class FlowMatcher:
    """Flows waiting for the image of the same stamp (exact match, as the flow topic promises).

    Args:
        timeout_s: how long :meth:`take` waits for a flow that has not arrived yet.
        capacity: flows kept; the oldest goes first.
        max_bytes: bytes of flow kept (each flow's size is given to :meth:`add`); the oldest goes first.
    """

    def __init__(self, timeout_s: float, capacity: int = FLOW_BUFFER, max_bytes: int = FLOW_BUFFER_BYTES) -> None:
        self.timeout_s = timeout_s
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._flows: OrderedDict[int, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._changed = threading.Condition()

    def add(self, stamp_ns: int, flow: Any, size_bytes: int = 0) -> None:
        """Stores a flow (any object: the message, or a decoded array) under its stamp."""
        with self._changed:
            if stamp_ns in self._flows:
                self._bytes -= self._flows.pop(stamp_ns)[1]
            self._flows[stamp_ns] = (flow, size_bytes)
            self._bytes += size_bytes
            while self._flows and (len(self._flows) > self.capacity or self._bytes > self.max_bytes):
                self._bytes -= self._flows.popitem(last=False)[1][1]
            self._changed.notify_all()

    def take(self, stamp_ns: int) -> Any | None:
        """The flow stamped ``stamp_ns``, waiting up to ``timeout_s``; None when none came."""
        deadline = time.monotonic() + self.timeout_s
        with self._changed:
            while stamp_ns not in self._flows and (remaining := deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            if stamp_ns not in self._flows:
                return None
            flow, size_bytes = self._flows.pop(stamp_ns)
            self._bytes -= size_bytes
            return flow

    @property
    def size_bytes(self) -> int:
        """Bytes of the flows kept now."""
        with self._changed:
            return self._bytes

    def __len__(self) -> int:
        with self._changed:
            return len(self._flows)


class ThrottledReporter:
    """Lets through at most one message per kind of problem per ``interval_s``, counting the rest.

    Only the kind (``image``, ``flow``, ...) keys the throttle, never the message, so inputs that
    vary their content (3,000 random encoding names) still give one line per interval.

    Args:
        emit: called with ``(level, text)`` for each message let through.
        interval_s: the throttle interval.
        clock: seconds, monotonic (a parameter for tests).
    """

    def __init__(self, emit: Callable[[str, str], None], interval_s: float = REPORT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def report(self, kind: str, message: str, level: str = "warning") -> bool:
        """Emits ``message`` unless its kind was reported within the interval; returns whether it did."""
        key = kind
        now = self.clock()
        with self._lock:
            last, held = self._last.get(key, (-1e18, 0))
            if now - last < self.interval_s:
                self._last[key] = (last, held + 1)
                return False
            self._last[key] = (now, 0)
        self.emit(level, message + (f" ({held} more like this since the last report)" if held else ""))
        return True


class ReorderGuard:
    """Tells a frame slightly out of order (drop it) from a real jump back in time (reset).

    Args:
        tolerance_ns: a frame older than the last accepted one by at most this is late; an older
            one means the stream restarted (a bag loop), and is accepted so the tracker resets.
    """

    def __init__(self, tolerance_ns: int) -> None:
        self.tolerance_ns = tolerance_ns
        self._last_ns: int | None = None

    def accept(self, stamp_ns: int) -> bool:
        """False for a late frame (within the tolerance); True otherwise, remembering its stamp."""
        if self._last_ns is not None and self._last_ns - self.tolerance_ns <= stamp_ns < self._last_ns:
            return False
        self._last_ns = stamp_ns
        return True

    def forget(self) -> None:
        """After a reset: the next frame is accepted whatever its stamp."""
        self._last_ns = None


class StreamStatistics:
    """Counters and recent per-stage latencies of one stream, as reported on ``/diagnostics``."""

    def __init__(self) -> None:
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.out_of_order = 0
        self.flow_missing = 0
        self.rejected: dict[str, int] = {}
        self.noticed: dict[str, int] = {}  # inputs processed despite a problem (extra image bytes)
        self.epoch = 0
        self.active_tracks = 0
        self._latency_ms: dict[str, deque[float]] = {}
        self._arrivals: deque[float] = deque(maxlen=50)
        self._lock = threading.Lock()

    def frame_arrived(self, now_s: float) -> None:
        """Counts a received frame at monotonic time ``now_s``, for the input rate."""
        with self._lock:
            self.received += 1
            self._arrivals.append(now_s)

    def count(self, counter: str, amount: int = 1) -> None:
        """Adds to ``dropped``, ``out_of_order`` or ``flow_missing``."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)

    def reject(self, kind: str) -> None:
        """Counts a rejected input of ``kind`` (image, flow, frame, internal)."""
        with self._lock:
            self.rejected[kind] = self.rejected.get(kind, 0) + 1

    def notice(self, kind: str) -> None:
        """Counts an input processed despite a problem of ``kind`` (``image_padding``)."""
        with self._lock:
            self.noticed[kind] = self.noticed.get(kind, 0) + 1

    def frame_processed(self, latency_ms: dict[str, float], epoch: int, active_tracks: int) -> None:
        """Counts a processed frame and keeps its stage latencies (ms) in the window."""
        with self._lock:
            self.processed += 1
            for stage, value in latency_ms.items():
                self._latency_ms.setdefault(stage, deque(maxlen=LATENCY_WINDOW)).append(value)
            self.epoch, self.active_tracks = epoch, active_tracks

    def input_rate_hz(self) -> float:
        """Frames received per second over the last 50 arrivals."""
        with self._lock:
            arrivals = list(self._arrivals)
        if len(arrivals) < 2 or arrivals[-1] <= arrivals[0]:
            return 0.0
        return float((len(arrivals) - 1) / (arrivals[-1] - arrivals[0]))

    def problems(self) -> int:
        """Dropped plus rejected frames."""
        with self._lock:
            return self.dropped + self.out_of_order + sum(self.rejected.values())

    def summary(self) -> str:
        """One line: processed, dropped, rejected."""
        with self._lock:
            return f"{self.processed} frames processed, {self.dropped} dropped, {sum(self.rejected.values())} rejected"

    def values(self, stages: Iterable[str], extra: Iterable[tuple[str, Any]] = ()) -> list[tuple[str, str]]:
        """``(key, value)`` pairs for diagnostics: counters, ``extra``, rejections, then latency per stage."""
        rate = self.input_rate_hz()
        with self._lock:
            values: list[tuple[str, Any]] = [
                ("frames received", self.received),
                ("frames processed", self.processed),
                ("frames dropped", self.dropped),
                ("out_of_order", self.out_of_order),
                ("flow missing", self.flow_missing),
                ("input rate hz", f"{rate:.2f}"),
                ("tracker epoch", self.epoch),
                ("active tracks", self.active_tracks),
                *extra,
            ]
            values += [(f"rejected {k}", v) for k, v in sorted(self.rejected.items())]
            values += [(f"noticed {k}", v) for k, v in sorted(self.noticed.items())]
            for stage in stages:
                samples = self._latency_ms.get(stage)
                if samples:
                    values.append((f"latency {stage} median ms", f"{np.median(samples):.2f}"))
                    values.append((f"latency {stage} p95 ms", f"{np.percentile(samples, 95):.2f}"))
        return [(key, str(value)) for key, value in values]
