"""Temporal filtering of the placed hands: the One Euro filter and per-side tracks (ROS-free).

Why. Per-frame reconstructions jitter by millimetres to centimetres (depth most), which a robot
arm or a rendered overlay would reproduce. A fixed low-pass filter trades jitter for lag; the
One Euro filter (Casiez, Roussel and Vogel, CHI 2012) adapts its cutoff to the speed: low when
still (little jitter), high when moving (little lag).

The maths (per element, sampling interval ``dt`` = time since the previous sample):

    alpha(dt, fc) = 1 / (1 + tau / dt),      tau = 1 / (2 pi fc)
    dx_i     = (x_i - x_hat_{i-1}) / dt
    dx_hat_i = dx_hat_{i-1} + alpha(dt, d_cutoff) (dx_i - dx_hat_{i-1})
    fc_i     = min_cutoff + beta |dx_hat_i|
    x_hat_i  = x_hat_{i-1} + alpha(dt, fc_i) (x_i - x_hat_{i-1})

The first sample passes unchanged (``dx_hat = 0``). The speed uses the previous *filtered*
value, as the authors' current reference implementation does (some older ports use the
previous raw value). Using the actual ``dt`` makes irregular timestamps (dropped frames) behave like the
continuous-time filter.

Trade-off, concretely (30 Hz, numbers from tests/test_filtering.py). A first-order low-pass
with cutoff ``fc`` lags a ramp by exactly ``tau = 1 / (2 pi fc)`` seconds in steady state
(``(1 - alpha) / alpha * dt = tau``, for any sequence of ``dt``), and divides white-noise
variance by ``(2 - alpha) / alpha``. On a ramp of speed ``v`` the speed estimate is
``v (1 + tau / dt)`` (it includes the lag), so ``fc = min_cutoff + beta v (1 + tau / dt)``.

* ``min_cutoff`` (Hz) sets the smoothing of a still hand: 1 Hz divides the noise variance by
  10.5 (std by 3.2) but lags a slow drift by 159 ms; 0.5 Hz: / 20, 318 ms.
* ``beta`` (per m/s for positions in metres) raises the cutoff with speed: with min_cutoff
  1 Hz and beta 10 the lag is 47 / 25 / 11 ms at 0.1 / 0.3 / 1 m/s (beta 20: 32 / 16 / 6 ms).
  Noise also raises ``|dx_hat|``: with 5 mm noise the variance reduction falls from 10.2
  (beta 0) to 6.5 (beta 10) and 5.0 (beta 20).
* ``d_cutoff`` (Hz) smooths the speed estimate; 1 Hz as in the paper.

Tuning (the paper's procedure): with beta = 0, lower min_cutoff until a still hand stops
jittering; then raise beta until fast motion stops lagging. For hands at 30 Hz: min_cutoff
0.5-1.5 Hz, beta 5-20 per m/s; for the quaternion rot_beta 2-10 (5: 3.4 deg rms noise -> 1.4
deg, 29 ms lag at 1 rad/s). More in docs/filtering_and_depth.md.

Tracks (:class:`HandTracks`). One track per side ("left", "right": identity comes from the
network's handedness, so no data association is needed). Per track: one filter over the joints
and the wrist (22 x 3), one over the vertices (V x 3: ~40 us of the 0.1 ms per update for 1490
vertices, so they are filtered, which keeps mesh and skeleton consistent;
``filter_vertices=False`` shifts them with the wrist's filtered offset instead), and
one over the wrist quaternion (4 values, its own ``rot_min_cutoff`` and ``rot_beta``: the
speed of a unit quaternion is about half the angular speed in rad/s).

Quaternions. ``q`` and ``-q`` are the same rotation; each new quaternion is flipped onto the
hemisphere of the filter state (``dot >= 0``) before filtering, so the network's ``w >= 0``
convention never makes the filter average through a 360-degree detour, then the output is
renormalised (and put back to ``w >= 0`` for :class:`PlacedHands`). For inter-frame rotations
of a few degrees, a weighted average of nearby unit quaternions, renormalised, is a first-order
accurate rotation average (the small-angle regime).

A track that gets no new hand keeps returning its last estimate until ``timeout_s`` has passed
since its last update; then it is invalid and its filters reset. A wrist jump larger than
``jump_m`` (a re-detection, a swap) or time going backwards resets instead of smearing.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .placement import PlacedHands

SIDE_NAMES: tuple[str, str] = ("left", "right")


# ----------------------------------------------------------------------------- One Euro filter

def smoothing_factor(dt: float, cutoff: np.ndarray | float) -> np.ndarray:
    """``alpha = 1 / (1 + tau / dt)`` with ``tau = 1 / (2 pi cutoff)``; any shape of cutoff (Hz)."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


def exponential_smoothing(alpha: np.ndarray, x: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``previous + alpha * (x - previous)``, elementwise (same shapes, or broadcastable)."""
    return previous + alpha * (x - previous)


class OneEuroFilter:
    """The One Euro filter, elementwise over an array of any shape (module docstring).

    Args:
        min_cutoff: cutoff at zero speed, Hz (> 0).
        beta: cutoff increase per unit of speed (units of x per second), >= 0.
        d_cutoff: cutoff of the speed estimate, Hz (> 0).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        if not (min_cutoff > 0 and d_cutoff > 0 and beta >= 0):
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, "
                             f"{d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next sample passes unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @property
    def initialised(self) -> bool:
        """Whether a sample has been seen since the last reset."""
        return self._x is not None

    @property
    def value(self) -> np.ndarray | None:
        """The current estimate (a copy), or None before the first sample."""
        return None if self._x is None else self._x.copy()

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        """Filter one sample.

        A sample whose shape differs from the state's starts over (reset). A sample with
        ``t <= `` the previous time is not used and the current estimate is returned.

        Args:
            t: timestamp, seconds.
            x: any shape; float64 internally.
        Returns:
            Filtered array, same shape as ``x``, float64 (a new array).
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:
            return self._x.copy()
        dx = (x - self._x) / dt
        self._dx = exponential_smoothing(smoothing_factor(dt, self.d_cutoff), dx, self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = exponential_smoothing(smoothing_factor(dt, cutoff), x, self._x)
        self._t = float(t)
        return self._x.copy()


# ----------------------------------------------------------------------------- quaternions

def align_quaternion(q: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """``q`` or ``-q``, whichever is on the reference's hemisphere (``dot >= 0``); (4,) -> (4,)."""
    q = np.asarray(q, dtype=np.float64)
    return -q if reference is not None and float(np.dot(q, reference)) < 0 else q.copy()


def canonical_quaternion(q: np.ndarray) -> np.ndarray:
    """(4,) ``(x, y, z, w)`` normalised with ``w >= 0`` (PlacedHands' convention)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(4,) unit ``(x, y, z, w)`` -> (3, 3) rotation matrix."""
    x, y, z, w = np.asarray(q, dtype=np.float64)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


# ----------------------------------------------------------------------------- tracks

@dataclass
class HandState:
    """One hand in the camera frame (metres).

    Attributes:
        joints: (21, 3) float64.
        vertices: (V, 3) float32.
        wrist: (3,) float64.
        wrist_rotation: (3, 3).
        wrist_quaternion: (4,) ``(x, y, z, w)``, ``w >= 0``.
    """

    joints: np.ndarray
    vertices: np.ndarray
    wrist: np.ndarray
    wrist_rotation: np.ndarray
    wrist_quaternion: np.ndarray


def hand_of(placed: PlacedHands, index: int) -> HandState:
    """Hand ``index`` (0 left, 1 right) of a placement (views, not copies)."""
    return HandState(placed.joints[index], placed.vertices[index], placed.wrist[index],
                     placed.wrist_rotation[index], placed.wrist_quaternion[index])


def copy_state(hand: HandState) -> HandState:
    """A copy of every array of ``hand``."""
    return HandState(hand.joints.copy(), hand.vertices.copy(), hand.wrist.copy(), hand.wrist_rotation.copy(),
                     hand.wrist_quaternion.copy())


class HandTrack:
    """The filters of one side (see the module docstring); not thread-safe alone.

    Args:
        min_cutoff, beta, d_cutoff: One Euro parameters of joints, wrist and vertices (metres).
        rot_min_cutoff, rot_beta: the same for the wrist quaternion (d_cutoff shared).
        timeout_s: a hand unseen this long after its last update is invalid; jump_m: a wrist
            jump larger than this restarts the track; filter_vertices: filter the mesh (else
            shift it with the wrist).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0,
                 rot_min_cutoff: float = 1.0, rot_beta: float = 5.0, timeout_s: float = 0.25,
                 jump_m: float = 0.25, filter_vertices: bool = True):
        self.timeout_s, self.jump_m, self.filter_vertices = float(timeout_s), float(jump_m), bool(filter_vertices)
        self._points = OneEuroFilter(min_cutoff, beta, d_cutoff)
        self._vertices = OneEuroFilter(min_cutoff, beta, d_cutoff)
        self._rotation = OneEuroFilter(rot_min_cutoff, rot_beta, d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Invalidate the track and reset its filters."""
        for f in (self._points, self._vertices, self._rotation):
            f.reset()
        self._last_t: float | None = None
        self._last: HandState | None = None

    def _must_restart(self, t: float, hand: HandState) -> bool:
        """Whether ``hand`` at ``t`` starts a new track (no track, timed out, time back, jump)."""
        if self._last is None or self._last_t is None:
            return True
        if t < self._last_t or t - self._last_t > self.timeout_s:
            return True
        return float(np.linalg.norm(np.asarray(hand.wrist) - self._last.wrist)) > self.jump_m

    def update(self, t: float, hand: HandState | None) -> HandState | None:
        """Filter one frame of this side.

        Args:
            t: timestamp, seconds.
            hand: this frame's hand, or None when it was not found.
        Returns:
            The filtered hand (new arrays); for None, the last estimate while within
            ``timeout_s`` of the last update, else None (and the track resets).
        """
        if hand is None:
            if self._last is not None and self._last_t is not None and t - self._last_t <= self.timeout_s:
                return copy_state(self._last)
            self.reset()
            return None
        if self._must_restart(t, hand):
            self.reset()
        points = self._points(t, np.concatenate([np.asarray(hand.joints, np.float64).reshape(-1, 3),
                                                 np.asarray(hand.wrist, np.float64).reshape(1, 3)]))
        wrist = points[-1]
        if self.filter_vertices:
            verts = self._vertices(t, hand.vertices)
        else:
            verts = np.asarray(hand.vertices, np.float64) + (wrist - np.asarray(hand.wrist, np.float64))
        state = self._rotation.value
        q = self._rotation(t, align_quaternion(hand.wrist_quaternion, state))
        q = canonical_quaternion(q)
        self._last = HandState(points[:-1], verts.astype(np.float32), wrist, quaternion_to_matrix(q), q)
        self._last_t = float(t)
        return copy_state(self._last)

    @property
    def valid(self) -> bool:
        """Whether the track holds an estimate."""
        return self._last is not None


class HandTracks:
    """Per-side tracks of both hands (thread-safe). Arguments as :class:`HandTrack`."""

    def __init__(self, **track_args: float | bool):
        self._lock = threading.Lock()
        self._tracks = {side: HandTrack(**track_args) for side in SIDE_NAMES}

    def update(self, t: float, side: str, hand: HandState | None) -> HandState | None:
        """Filter one frame of ``side`` ("left" or "right"); see :meth:`HandTrack.update`."""
        if side not in self._tracks:
            raise ValueError(f"side must be one of {SIDE_NAMES}, got {side!r}")
        with self._lock:
            return self._tracks[side].update(t, hand)

    def reset(self, side: str | None = None) -> None:
        """Reset one side, or both."""
        with self._lock:
            for name, track in self._tracks.items():
                if side is None or name == side:
                    track.reset()

    def filter_placed(self, t: float, placed: PlacedHands,
                      valid: Sequence[bool]) -> tuple[PlacedHands, np.ndarray]:
        """Filter both hands of one frame.

        Args:
            t: the frame's timestamp, seconds.
            placed: both hands; valid: (2,) bool, which of them were found.
        Returns:
            (filtered :class:`PlacedHands`, (2,) bool valid). A hand held from an earlier frame
            is valid; an invalid hand's slots keep the input's values (they carry no
            information). ``right_minus_left`` is recomputed; ``depth_from`` is kept.
        """
        joints, verts = placed.joints.astype(np.float64), placed.vertices.copy()
        wrist, rot = placed.wrist.astype(np.float64), placed.wrist_rotation.astype(np.float64)
        quat = placed.wrist_quaternion.astype(np.float64)
        out_valid = np.zeros(2, dtype=bool)
        for i, side in enumerate(SIDE_NAMES):
            got = self.update(t, side, hand_of(placed, i) if valid[i] else None)
            if got is None or got.vertices.shape != verts[i].shape:
                continue
            joints[i], verts[i], wrist[i] = got.joints, got.vertices, got.wrist
            rot[i], quat[i], out_valid[i] = got.wrist_rotation, got.wrist_quaternion, True
        return PlacedHands(joints=joints, vertices=verts, wrist=wrist, wrist_rotation=rot, wrist_quaternion=quat,
                           right_minus_left=wrist[1] - wrist[0], depth_from=placed.depth_from), out_valid
