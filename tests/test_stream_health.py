"""Stream time from bad stamps, frames lost before the node, and the stream's diagnostic level
(pipeline.stream_health; ROS-free, times driven by the test)."""
from __future__ import annotations

import numpy as np
import pytest

from interhand_perception.pipeline.smoothing import HandTracks
from interhand_perception.pipeline.stream_health import (ERROR, OK, WARN, HealthInputs, StreamClock, TransportMeter,
                                                        assess)


def test_stream_time_follows_good_stamps():
    clock = StreamClock()
    times = [clock(100.0 + 0.033 * i, 5.0 + 0.040 * i) for i in range(4)]
    assert [p for _, p in times] == [None] * 4
    assert np.diff([t for t, _ in times]) == pytest.approx([0.033] * 3)  # the stamps, not receipt


def test_zero_stamps_advance_with_the_time_of_receipt():
    clock = StreamClock()
    out = [clock(0.0, 7.0 + 0.1 * i) for i in range(5)]
    assert all(p == "stamp_zero" for _, p in out)
    assert np.diff([t for t, _ in out]) == pytest.approx([0.1] * 4)


def test_backwards_and_repeated_stamps_use_receipt_and_never_go_back():
    clock = StreamClock()
    t0, _ = clock(50.0, 1.0)
    t1, p1 = clock(49.0, 1.1)   # backwards
    t2, p2 = clock(49.0, 1.3)   # repeated (equal counts as not later)
    t3, p3 = clock(49.05, 1.35)  # increasing again from the new base
    assert (p1, p2, p3) == ("stamp_backwards", "stamp_backwards", None)
    assert (t1 - t0, t2 - t1, t3 - t2) == pytest.approx((0.1, 0.2, 0.05))


def test_mixed_zero_and_good_stamps_stay_monotonic():
    clock = StreamClock()
    stamps = [10.0, 0.0, 10.2, 0.0, 0.0, 10.5]
    received = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    ts = [clock(s, r)[0] for s, r in zip(stamps, received)]
    assert (np.diff(ts) >= 0).all()


def test_a_hand_that_left_the_view_times_out_with_zero_stamps():
    """The failure this module exists for: with the raw (zero) stamps the filter's clock stands
    still and a hand that left stays valid forever; with the stream time it times out."""
    raw, fixed = HandTracks(timeout_s=0.25), HandTracks(timeout_s=0.25)
    clock = StreamClock()
    placed = _placed()
    valid_raw, valid_fixed = [], []
    for i in range(20):
        seen = i < 5  # in view for 5 frames, then gone; frames 0.1 s apart
        t, _ = clock(0.0, 3.0 + 0.1 * i)
        valid_raw.append(bool(raw.filter_placed(0.0, placed, [seen, seen])[1][0]))
        valid_fixed.append(bool(fixed.filter_placed(t, placed, [seen, seen])[1][0]))
    assert all(valid_raw), "the frozen clock keeps the hand (what the node did before)"
    assert valid_fixed[:5] == [True] * 5 and not any(valid_fixed[8:])


def _placed():
    from interhand_perception.pipeline.placement import PlacedHands

    rot = np.broadcast_to(np.eye(3), (2, 3, 3)).copy()
    return PlacedHands(joints=np.full((2, 21, 3), 0.5), vertices=np.full((2, 10, 3), 0.5, np.float32),
                       wrist=np.full((2, 3), 0.5), wrist_rotation=rot, wrist_quaternion=np.tile([0, 0, 0, 1.0], (2, 1)),
                       right_minus_left=np.zeros(3), depth_from="camera_info")


def test_transport_meter_counts_gaps_per_publisher_and_the_published_rate():
    m = TransportMeter(window_s=5.0)
    for i, seq in enumerate([1, 2, 5, 6, 10]):  # 2 + 3 lost
        m.record(b"a", seq, 0.1 * i)
    m.record(b"b", 1, 0.45)  # a second publisher starts its own numbering: no loss
    m.record(b"b", 2, 0.5)
    assert m.lost == 5
    snap = m.snapshot(0.5)
    assert snap["lost_in_transport"] == 5
    # after the window's first frame: a wrote 2..10 (9 samples), b wrote 1 and 2, over 0.5 s
    assert snap["published_rate_hz"] == pytest.approx((9 + 2) / 0.5)


def test_transport_meter_restarted_publisher_and_unknown_numbers():
    m = TransportMeter()
    for seq in (7, 8, 1, 2):  # restarted at 1: not a loss
        m.record(b"a", seq, float(seq))
    assert m.lost == 0
    unknown = TransportMeter()
    unknown.record(b"a", None, 0.0)
    assert unknown.snapshot(0.0) == {"lost_in_transport": None, "published_rate_hz": None}


def _health(**kw):
    base = dict(received=100, last_input_age_s=0.03, input_rate_hz=30.0, published_rate_hz=30.0,
                image_timeout_s=2.0, image_topic="/cam/image")
    return HealthInputs(**{**base, **kw})


def test_assess_levels():
    assert assess(_health()) == (OK, [])
    level, problems = assess(_health(received=0, last_input_age_s=None))
    assert level == WARN and "no images received on /cam/image" in problems[0]
    level, problems = assess(_health(last_input_age_s=3.5, input_rate_hz=0.0))
    assert level == ERROR and "no image for 3.5 s" in problems[0]
    level, problems = assess(_health(input_rate_hz=2.5))
    assert level == WARN and "receiving 2.5 of 30.0 images/s" in problems[0]
    assert assess(_health(input_rate_hz=2.5, published_rate_hz=None)) == (OK, [])  # publisher rate unknown
