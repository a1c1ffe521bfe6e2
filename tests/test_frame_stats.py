"""Diagnostics bookkeeping: rates, latencies, counters, log rate limiting and the frame slot."""
from __future__ import annotations

import json
import threading
import time

import pytest

from interhand_perception.pipeline.frame_stats import (
    FrameStats, LatencyStats, LatestSlot, RateLimitedLog, RateMeter)


def test_rate_meter_regular_stream_then_stall():
    meter = RateMeter(window_s=5.0)
    assert meter.rate(0.0) == 0.0
    meter.tick(0.0)
    assert meter.rate(0.0) == 0.0  # one event: no rate yet
    for i in range(1, 11):  # 10 Hz from 0.0 to 1.0
        meter.tick(i / 10)
    assert meter.rate(1.0) == pytest.approx(10.0)      # 10 intervals over 1 s
    assert meter.rate(3.0) == pytest.approx(10 / 3.0)  # stalled: decays
    assert meter.rate(5.55) == pytest.approx(4 / 4.95)  # only 0.6..1.0 are in [0.55, 5.55]: 4 intervals
    assert meter.rate(6.5) == 0.0                      # all events left the window


def test_rate_meter_window_slides():
    meter = RateMeter(window_s=2.0)
    for i in range(101):  # 20 Hz for 5 s
        meter.tick(i * 0.05)
    assert meter.rate(5.0) == pytest.approx(20.0)


def test_latency_stats_percentiles_in_ms():
    stats = LatencyStats(maxlen=200)
    assert stats.summary() == {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0, "count": 0}
    for s in (0.010, 0.020, 0.030, 0.040, float("nan")):
        stats.add(s)
    summ = stats.summary()
    # p95 by linear interpolation: position 0.95 * 3 = 2.85 -> 30 + 0.85 * 10
    assert summ == pytest.approx({"mean": 25.0, "p50": 25.0, "p95": 38.5, "max": 40.0, "count": 4})
    short = LatencyStats(maxlen=2)
    for s in (1.0, 0.002, 0.004):
        short.add(s)
    assert short.summary()["max"] == pytest.approx(4.0) and short.summary()["count"] == 2


def test_frame_stats_snapshot():
    stats = FrameStats(window_s=5.0)
    for i in range(5):
        stats.record_input(i * 0.1)
    stats.record_drop()
    stats.record_drop()
    stats.record_output(0.25, latency_s=0.050, processing_s=0.030)
    stats.record_output(0.45, latency_s=0.070, processing_s=0.040)
    stats.record_output(0.50, latency_s=0.0, processing_s=0.020, published=False)
    stats.record_error("encoding", "unsupported image encoding 'bayer'", t=0.3)
    stats.record_error("encoding", "unsupported image encoding 'bayer'", t=0.35)
    stats.record_error("too_large", "image of 9000x9000 exceeds the limit", t=0.4)
    snap = stats.snapshot(now=0.5)
    assert (snap["received"], snap["dropped"], snap["processed"], snap["published"]) == (5, 2, 3, 2)
    assert snap["input_rate_hz"] == pytest.approx(4 / 0.5)   # 4 intervals from 0.0 to now
    assert snap["output_rate_hz"] == pytest.approx(1 / 0.25)  # published at 0.25 and 0.45
    assert snap["latency_mean_ms"] == pytest.approx(60.0) and snap["latency_count"] == 2
    assert snap["processing_mean_ms"] == pytest.approx(30.0) and snap["processing_count"] == 3
    assert (snap["errors_total"], snap["errors_encoding"], snap["errors_too_large"]) == (3, 2, 1)
    assert snap["last_error"].startswith("too_large: image of 9000x9000")
    assert snap["last_error_age_s"] == pytest.approx(0.1)
    json.dumps(snap)  # JSON-friendly
    assert FrameStats().snapshot(1.0)["last_error_age_s"] is None


def test_rate_limited_log_counts_suppressed():
    now = [0.0]
    log = RateLimitedLog(period_s=5.0, clock=lambda: now[0])
    assert log.should_log("a") == (True, 0)
    now[0] = 1.0
    assert log.should_log("a") == (False, 1)
    assert log.should_log("b") == (True, 0)  # keys are independent
    now[0] = 2.0
    assert log.should_log("a") == (False, 2)
    now[0] = 5.0
    assert log.should_log("a") == (True, 2)  # period over: emit, reporting 2 suppressed
    now[0] = 5.1
    assert log.should_log("a") == (False, 1)
    now[0] = 10.2
    assert log.should_log("a") == (True, 1)


def test_latest_slot_single_thread():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken: dropped
    assert slot.take(timeout=0) == 2
    assert slot.take(timeout=0.01) is None  # empty: times out
    assert slot.put(3) is False
    slot.close()
    assert slot.take(timeout=0) is None and slot.put(4) is False and slot.closed


def test_close_wakes_a_waiting_taker():
    slot: LatestSlot[int] = LatestSlot()
    got = []
    worker = threading.Thread(target=lambda: got.append(slot.take(timeout=None)))
    worker.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    slot.close()
    worker.join(timeout=2.0)
    assert not worker.is_alive() and got == [None] and time.perf_counter() - t0 < 1.0


def test_latest_slot_drops_are_counted_across_threads():
    slot: LatestSlot[int] = LatestSlot()
    stats = FrameStats()
    taken: list[int] = []
    n = 300

    def consumer():
        while (item := slot.take(timeout=1.0)) is not None:
            taken.append(item)
            time.sleep(0.001)  # slower than the producer

    worker = threading.Thread(target=consumer)
    worker.start()
    for i in range(n):
        stats.record_input(i * 0.01)
        if slot.put(i):
            stats.record_drop()
        if i % 50 == 0:
            time.sleep(0.005)  # let the consumer run now and then
    deadline = time.monotonic() + 5.0
    while (not taken or taken[-1] != n - 1) and time.monotonic() < deadline:
        time.sleep(0.005)  # until the consumer took the last frame
    slot.close()
    worker.join(timeout=5.0)
    snap = stats.snapshot(now=n * 0.01)
    assert not worker.is_alive()
    assert taken == sorted(set(taken)) and taken[-1] == n - 1  # newest frames, in order, the last one included
    assert snap["dropped"] > 0
    assert len(taken) + snap["dropped"] == n == snap["received"]  # every frame is taken or counted as dropped
