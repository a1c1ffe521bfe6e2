"""Temporal filtering: One Euro filter maths on synthetic signals, per-side hand tracks."""
from __future__ import annotations

import math

import numpy as np
import pytest

from interhand_perception.pipeline.smoothing import (
    HandState, HandTrack, HandTracks, OneEuroFilter, align_quaternion, canonical_quaternion,
    quaternion_to_matrix, smoothing_factor)
from interhand_perception.pipeline.placement import PlacedHands

RATE = 30.0
DT = 1.0 / RATE


def run(filt: OneEuroFilter, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(T, ...) filtered values of (T, ...) samples at (T,) times."""
    return np.stack([filt(t, x) for t, x in zip(times, values)])


def ramp_lag_s(filt: OneEuroFilter, speed: float, times: np.ndarray) -> float:
    """Steady-state lag (s) of the filter behind ``0.5 + speed * t`` (21 x 3 copies), at the end."""
    x = 0.5 + speed * times
    y = run(filt, times, np.broadcast_to(x[:, None, None], (len(times), 21, 3)))
    return float((x[-1] - y[-1, 0, 0]) / speed)


# ----------------------------------------------------------------------------- One Euro filter

def test_smoothing_factor_formula():
    assert smoothing_factor(DT, 1.0) == pytest.approx(1.0 / (1.0 + RATE / (2 * math.pi)))
    np.testing.assert_allclose(smoothing_factor(0.1, np.array([1e9, 1e-9])), [1.0, 0.0], atol=1e-8)


def test_first_sample_and_constant_signal_pass_unchanged():
    filt = OneEuroFilter(1.0, 10.0)
    x = np.random.default_rng(0).normal(size=(21, 3))
    for i in range(50):
        np.testing.assert_allclose(filt(i * DT, x), x, atol=1e-12)
    assert filt(50 * DT, x).shape == (21, 3) and filt.initialised


def test_converges_to_a_new_constant():
    filt = OneEuroFilter(1.0, 0.0)
    filt(0.0, np.zeros(3))
    y = run(filt, np.arange(1, 120) * DT, np.ones((119, 3)))   # 4 s after a step
    np.testing.assert_allclose(y[-1], 1.0, atol=1e-3)


def test_noise_on_a_still_hand_is_reduced():
    """White noise, 5 mm per axis at 30 Hz. beta = 0, 1 Hz: variance / 10.2 (theory
    (2 - alpha) / alpha = 10.5); default beta = 10: / 6.5 (noise raises the speed estimate)."""
    rng = np.random.default_rng(0)
    times = np.arange(600) * DT
    noise = rng.normal(0.0, 0.005, (600, 21, 3))
    factors = {}
    for beta in (0.0, 10.0):
        y = run(OneEuroFilter(1.0, beta), times, 0.5 + noise)
        factors[beta] = noise[60:].var() / (y[60:] - 0.5).var()
    alpha = smoothing_factor(DT, 1.0)
    assert factors[0.0] == pytest.approx((2 - alpha) / alpha, rel=0.1)
    assert factors[0.0] > 9.0 and factors[10.0] > 5.0, factors


def ramp_cutoff(min_cutoff: float, beta: float, speed: float, dt: float) -> float:
    """Steady-state cutoff on a ramp: the speed estimate (x_i - x_hat_{i-1}) / dt is
    v (1 + tau / dt), so fc = min_cutoff + beta v (1 + 1 / (2 pi fc dt)) (fixed point)."""
    fc = min_cutoff + beta * speed
    for _ in range(200):
        fc = min_cutoff + beta * speed * (1 + 1 / (2 * math.pi * fc * dt))
    return fc


def test_ramp_lag_is_tau_and_shrinks_with_beta():
    """Steady-state lag behind a ramp is exactly tau = 1 / (2 pi fc). At 0.3 m/s, 30 Hz,
    min_cutoff 1 Hz: beta 0 -> 159 ms, 5 -> 38 ms, 10 -> 25 ms, 20 -> 16 ms, 40 -> 10 ms."""
    times = np.arange(300) * DT
    betas = (0.0, 5.0, 10.0, 20.0, 40.0)
    lags = [ramp_lag_s(OneEuroFilter(1.0, beta), 0.3, times) for beta in betas]
    assert lags[0] == pytest.approx(1 / (2 * math.pi), rel=1e-6)
    assert all(a > b for a, b in zip(lags, lags[1:])), lags
    for beta, lag in zip(betas, lags):
        assert lag == pytest.approx(1 / (2 * math.pi * ramp_cutoff(1.0, beta, 0.3, DT)), rel=1e-3)
    assert lags[2] < 0.03                                       # the default beta: 25 ms at 0.3 m/s
    faster = [ramp_lag_s(OneEuroFilter(1.0, 10.0), v, times) for v in (0.1, 0.3, 1.0)]
    assert faster[0] > faster[1] > faster[2]                    # 47, 25, 11 ms: adapts to speed


def test_irregular_timestamps_keep_the_lag():
    """With the actual dt, e_i = (1 - alpha_i)(e_{i-1} + v dt_i) has the fixed point tau v for
    any dt: jittered and dropped frames do not change a fixed cutoff's lag. With beta > 0 the
    speed estimate depends on dt a little (its lag term e / dt)."""
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.choice([DT / 2, DT, 2 * DT, 3 * DT], size=300))
    assert ramp_lag_s(OneEuroFilter(1.0, 0.0), 0.3, times) == pytest.approx(1 / (2 * math.pi), rel=1e-6)
    regular = ramp_lag_s(OneEuroFilter(1.0, 10.0), 0.3, np.arange(300) * DT)
    assert ramp_lag_s(OneEuroFilter(1.0, 10.0), 0.3, times) == pytest.approx(regular, rel=0.3)


def test_repeated_or_old_timestamps_are_ignored_and_reset_works():
    filt = OneEuroFilter(1.0, 0.0)
    filt(0.0, np.zeros(2))
    first = filt(DT, np.ones(2))
    np.testing.assert_array_equal(filt(DT, np.full(2, 9.0)), first)      # same time
    np.testing.assert_array_equal(filt(0.0, np.full(2, 9.0)), first)      # older
    np.testing.assert_array_equal(filt(5.0, np.zeros(5)), np.zeros(5))    # new shape: starts over
    filt.reset()
    assert not filt.initialised and filt.value is None
    np.testing.assert_array_equal(filt(6.0, np.full(2, 3.0)), [3.0, 3.0])
    with pytest.raises(ValueError):
        OneEuroFilter(0.0, 1.0)


# ----------------------------------------------------------------------------- quaternions

def quat_about_z(angle: float) -> np.ndarray:
    """(4,) (x, y, z, w) rotation by ``angle`` about z."""
    return np.array([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)])


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (rad) of the rotation between two (3, 3) matrices."""
    return math.acos(np.clip((np.trace(a.T @ b) - 1) / 2, -1.0, 1.0))


def test_quaternion_helpers():
    q = quat_about_z(0.7)
    r = quaternion_to_matrix(q)
    np.testing.assert_allclose(r, [[math.cos(0.7), -math.sin(0.7), 0], [math.sin(0.7), math.cos(0.7), 0], [0, 0, 1]],
                               atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(-q), r)
    np.testing.assert_allclose(align_quaternion(-q, q), q)
    np.testing.assert_allclose(canonical_quaternion(-2 * q), q)


# ----------------------------------------------------------------------------- tracks

def hand(wrist, angle: float = 0.0, n_verts: int = 40) -> HandState:
    """A rigid toy hand: joints and vertices offset from ``wrist``, rotated ``angle`` about z."""
    wrist = np.asarray(wrist, dtype=np.float64)
    rng = np.random.default_rng(7)
    offsets = np.vstack([np.zeros((1, 3)), rng.uniform(-0.08, 0.08, (20, 3))])
    verts = rng.uniform(-0.09, 0.09, (n_verts, 3))
    q = canonical_quaternion(quat_about_z(angle))
    r = quaternion_to_matrix(q)
    return HandState(wrist + offsets @ r.T, (wrist + verts @ r.T).astype(np.float32), wrist, r, q)


def test_track_filters_a_still_noisy_hand():
    rng = np.random.default_rng(3)
    track = HandTrack()
    true = hand([0.0, 0.0, 0.6])
    errors_in, errors_out = [], []
    for i in range(300):
        noisy = hand(true.wrist + rng.normal(0, 0.005, 3), rng.normal(0, 0.03))
        out = track.update(i * DT, noisy)
        if i >= 60:
            errors_in.append(noisy.joints - true.joints)
            errors_out.append(out.joints - true.joints)
    assert np.var(errors_in) / np.var(errors_out) > 4.0
    np.testing.assert_allclose(out.joints[0], out.wrist)
    np.testing.assert_allclose(np.linalg.norm(out.wrist_quaternion), 1.0)
    np.testing.assert_allclose(out.wrist_rotation, quaternion_to_matrix(out.wrist_quaternion))
    assert out.vertices.dtype == np.float32 and out.wrist_quaternion[3] >= 0


def test_identity_is_kept_per_side():
    tracks = HandTracks()
    for i in range(60):
        t = i * DT
        left = tracks.update(t, "left", hand([-0.1 - 0.2 * t, 0.0, 0.6]))
        right = tracks.update(t, "right", hand([0.1, 0.1 * t, 0.7]))
    assert left.wrist[0] < -0.4 and abs(left.wrist[1]) < 1e-9 and left.wrist[2] == pytest.approx(0.6)
    assert right.wrist[0] == pytest.approx(0.1) and right.wrist[1] > 0.15 and right.wrist[2] == pytest.approx(0.7)
    with pytest.raises(ValueError):
        tracks.update(0.0, "middle", None)


def test_missing_hand_is_held_until_the_timeout_then_invalid_and_reset():
    track = HandTrack(timeout_s=0.25)
    for i in range(10):
        track.update(i * DT, hand([0.0, 0.0, 0.6]))
    last_t = 9 * DT
    held = track.update(last_t + 0.1, None)
    assert held is not None and held.wrist[2] == pytest.approx(0.6)
    assert track.update(last_t + 0.3, None) is None and not track.valid
    fresh = hand([0.0, 0.0, 0.8])                                   # restarts unfiltered
    np.testing.assert_allclose(track.update(last_t + 0.4, fresh).joints, fresh.joints)
    # an update after a gap longer than the timeout also starts over
    later = hand([0.0, 0.01, 0.8])
    np.testing.assert_allclose(track.update(last_t + 1.0, later).joints, later.joints)


def test_a_big_jump_resets_instead_of_smearing():
    track = HandTrack(jump_m=0.25)
    for i in range(30):
        track.update(i * DT, hand([0.0, 0.0, 0.6]))
    small = track.update(30 * DT, hand([0.0, 0.0, 0.7]))             # 10 cm: filtered
    assert 0.6 < small.wrist[2] < 0.68
    jumped = hand([0.3, 0.0, 0.8])                                   # 32 cm away: re-detection
    np.testing.assert_allclose(track.update(31 * DT, jumped).joints, jumped.joints)


def test_quaternion_sign_flips_do_not_spin_the_hand():
    """A hand turning at 1 rad/s about z, its quaternion sign flipped every other frame (as a
    w >= 0 convention does near 180 degrees): the filtered rotation stays within a few degrees
    of the truth and never jumps."""
    track = HandTrack()
    previous = None
    for i in range(120):
        angle = 2.5 + i * DT                                          # passes 180 degrees
        h = hand([0.0, 0.0, 0.6], angle)
        if i % 2:
            h.wrist_quaternion = -h.wrist_quaternion
        out = track.update(i * DT, h)
        if previous is not None:
            assert rotation_angle(previous, out.wrist_rotation) < 2 * DT  # <= twice the true step
        previous = out.wrist_rotation
        if i > 30:
            assert rotation_angle(out.wrist_rotation, h.wrist_rotation) < math.radians(5)


def test_vertices_follow_the_wrist_when_not_filtered():
    track = HandTrack(filter_vertices=False)
    track.update(0.0, hand([0.0, 0.0, 0.6]))
    h = hand([0.02, 0.0, 0.6])
    out = track.update(DT, h)
    np.testing.assert_allclose(out.vertices, h.vertices + (out.wrist - h.wrist), atol=1e-6)
    assert 0.0 < out.wrist[0] < 0.02


def test_filter_placed_both_hands():
    tracks = HandTracks()
    left, right = hand([-0.1, 0.0, 0.6]), hand([0.1, 0.0, 0.6])

    def placed(a: HandState, b: HandState) -> PlacedHands:
        return PlacedHands(np.stack([a.joints, b.joints]), np.stack([a.vertices, b.vertices]),
                           np.stack([a.wrist, b.wrist]), np.stack([a.wrist_rotation, b.wrist_rotation]),
                           np.stack([a.wrist_quaternion, b.wrist_quaternion]), b.wrist - a.wrist, "depth")

    out, valid = tracks.filter_placed(0.0, placed(left, right), np.array([True, False]))
    assert valid.tolist() == [True, False] and out.depth_from == "depth"
    np.testing.assert_allclose(out.joints[0], left.joints)
    moved = hand([-0.08, 0.0, 0.6])
    out, valid = tracks.filter_placed(DT, placed(moved, right), np.array([True, True]))
    assert valid.tolist() == [True, True]
    assert -0.1 < out.wrist[0, 0] < -0.08                              # smoothed
    np.testing.assert_allclose(out.right_minus_left, out.wrist[1] - out.wrist[0])
    assert out.vertices.dtype == np.float32 and out.joints.shape == (2, 21, 3)
    out, valid = tracks.filter_placed(2 * DT, placed(moved, right), np.array([False, False]))
    assert valid.tolist() == [True, True]                              # held within the timeout
    out, valid = tracks.filter_placed(1.0, placed(moved, right), np.array([False, False]))
    assert valid.tolist() == [False, False]
