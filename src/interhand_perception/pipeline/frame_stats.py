"""Frame bookkeeping for the ROS node's /diagnostics and rate-limited warnings (ROS-free).

Times are passed in (seconds on any monotonic clock) so that tests can drive them. The small
meters (:class:`RateMeter`, :class:`LatencyStats`) are not locked themselves; :class:`FrameStats`
guards all of its state with one lock, and :class:`RateLimitedLog` and :class:`LatestSlot` are
thread-safe on their own.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable, Generic, TypeVar

import numpy as np

T = TypeVar("T")


class RateMeter:
    """Event rate over a sliding time window (not thread-safe alone).

    ``rate(now)`` is the number of intervals between the events inside ``[now - window, now]``
    divided by the time they cover up to now, ``(n - 1) / (now - oldest)``: exact for a regular
    stream sampled at an event, and decaying towards 0 when the events stop.
    """

    def __init__(self, window_s: float = 5.0):
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = float(window_s)
        self._times: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def tick(self, t: float) -> None:
        """Record one event at time ``t`` (seconds)."""
        self._times.append(float(t))
        self._prune(t)

    def rate(self, now: float) -> float:
        """Events per second in the window ending at ``now``; 0 with fewer than 2 events."""
        self._prune(now)
        n = len(self._times)
        covered = now - self._times[0] if n else 0.0
        return (n - 1) / covered if n >= 2 and covered > 0 else 0.0


class LatencyStats:
    """Summary of the last ``maxlen`` durations (not thread-safe alone)."""

    def __init__(self, maxlen: int = 200):
        self._values: deque[float] = deque(maxlen=int(maxlen))

    def add(self, seconds: float) -> None:
        """Record one duration in seconds (non-finite values are ignored)."""
        if math.isfinite(seconds):
            self._values.append(float(seconds))

    def summary(self) -> dict:
        """``{mean, p50, p95, max}`` in milliseconds and ``count``; zeros when empty."""
        if not self._values:
            return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0, "count": 0}
        ms = np.asarray(self._values) * 1000.0
        p50, p95 = np.percentile(ms, [50.0, 95.0])
        return {"mean": float(ms.mean()), "p50": float(p50), "p95": float(p95), "max": float(ms.max()),
                "count": int(ms.size)}


class FrameStats:
    """Counters, rates and latencies of the node, all behind one lock.

    ``received`` frames arrive (``record_input``); some are ``dropped`` (replaced before the
    worker took them); the rest are ``processed``, and ``published`` when a result went out.
    Latency is image stamp -> publish; processing is the worker's time per frame.
    """

    def __init__(self, window_s: float = 5.0, maxlen: int = 200):
        self._lock = threading.Lock()
        self.received = self.processed = self.dropped = self.published = 0
        self.errors: dict[str, int] = {}
        self.last_error = ""
        self.last_error_time: float | None = None
        self.last_input_time: float | None = None
        self.input_rate = RateMeter(window_s)
        self.output_rate = RateMeter(window_s)
        self.latency = LatencyStats(maxlen)
        self.processing = LatencyStats(maxlen)

    def record_input(self, t: float) -> None:
        """A frame arrived at time ``t``."""
        with self._lock:
            self.received += 1
            self.last_input_time = float(t)
            self.input_rate.tick(t)

    def record_drop(self, count: int = 1) -> None:
        """``count`` frames were dropped unprocessed."""
        with self._lock:
            self.dropped += count

    def record_output(self, t: float, latency_s: float, processing_s: float, published: bool = True) -> None:
        """A frame was processed at time ``t`` (and its result published unless told otherwise).

        A non-finite ``latency_s`` (a frame whose stamp cannot be trusted) is left out of the
        latency statistics; the frame still counts.
        """
        with self._lock:
            self.processed += 1
            self.processing.add(processing_s)
            if published:
                self.published += 1
                self.output_rate.tick(t)
                self.latency.add(latency_s)

    def record_error(self, kind: str, message: str, t: float) -> None:
        """An error of ``kind`` (e.g. an ``InputError.kind``) happened at time ``t``."""
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.last_error = f"{kind}: {message}"
            self.last_error_time = float(t)

    def snapshot(self, now: float) -> dict:
        """Flat JSON-friendly dict of everything (ints, floats, strings, None)."""
        with self._lock:
            snap: dict = {"received": self.received, "processed": self.processed,
                          "dropped": self.dropped, "published": self.published,
                          "input_rate_hz": self.input_rate.rate(now),
                          "output_rate_hz": self.output_rate.rate(now),
                          "last_input_age_s": None if self.last_input_time is None else now - self.last_input_time}
            for name, stats in (("latency", self.latency), ("processing", self.processing)):
                for key, value in stats.summary().items():
                    snap[f"{name}_{key}" if key == "count" else f"{name}_{key}_ms"] = value
            snap["errors_total"] = sum(self.errors.values())
            snap.update({f"errors_{kind}": n for kind, n in sorted(self.errors.items())})
            snap["last_error"] = self.last_error
            snap["last_error_age_s"] = None if self.last_error_time is None else now - self.last_error_time
            return snap


class RateLimitedLog:
    """At most one message per key and period; counts what was held back (thread-safe)."""

    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.period_s = float(period_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def should_log(self, key: str) -> tuple[bool, int]:
        """Whether to emit a message for ``key`` now, and the number suppressed.

        Returns:
            ``(True, n)`` with n messages suppressed since the last emission (then reset), or
            ``(False, n)`` with n suppressed so far, this one included.
        """
        with self._lock:
            now = self._clock()
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, self._suppressed[key]
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)


class LatestSlot(Generic[T]):
    """Thread-safe one-slot mailbox: the newest item replaces an unconsumed one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False

    def put(self, item: T) -> bool:
        """Store ``item``; True when it replaced an item nobody took (one frame dropped).

        After :meth:`close` the item is discarded and False returned.
        """
        with self._cond:
            if self._closed:
                return False
            replaced = self._full
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item (emptying the slot), waiting up to ``timeout`` s (None: forever).

        Returns None on timeout or once the slot is closed.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if self._closed or not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiter; ``take`` returns None from now on."""
        with self._cond:
            self._closed = True
            self._item, self._full = None, False
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed
