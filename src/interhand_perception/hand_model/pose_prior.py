"""Plausible hand poses: anatomical limits, a mixture of grasp styles, limits and PCA helpers.

Poses are 45 axis-angle values of skinning joints 1..15 in MANO order (index, middle, little,
ring, thumb; each proximal -> distal), expressed in the canonical hand frame (right hand: palm
-y, fingers -x, thumb +z). Each joint is parameterised anatomically by three angles about the
axes of its bone in the rest pose of the built-in model:

* flexion about the bone's lateral axis ``l`` (about +z for the fingers); positive curls the
  finger towards the palm (-y), positive thumb flexion moves it towards its pad (across the palm);
* abduction about the bone's dorsal axis ``n`` (about +y for the fingers); positive moves a
  right-hand finger towards the thumb side (+z), positive thumb abduction moves it away from the
  palm (palmar abduction);
* twist about the bone axis ``d``.

The rotation of a joint is ``R = Rot(l, flex) @ Rot(n, abd) @ Rot(d, twist)``. A left-hand pose
is the mirror image: ``(ax, ay, az) -> (ax, -ay, -az)`` for the mirrored (left) model.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .builtin_mesh import JOINT0, shape_factors, skeleton
from .rotation_np import axis_angle_to_matrix, matrix_to_axis_angle  # noqa: F401  (re-exported)

STYLES: tuple[str, ...] = ("open", "fist", "pinch", "point", "grasp", "random")
STYLE_WEIGHTS: tuple[float, ...] = (0.2, 0.15, 0.2, 0.1, 0.2, 0.15)
FINGERS_MANO: tuple[str, ...] = ("index", "middle", "little", "ring")   # pose rows 0..11
SPREAD_DIR = {"index": 1.0, "middle": 0.15, "little": -1.3, "ring": -0.6}

# Anatomical limits in degrees, per joint kind: rows flex / abd / twist, columns low / high.
_FINGER_LIMITS = {
    "mcp": [[-20.0, 90.0], [-12.0, 12.0], [-8.0, 8.0]],
    "pip": [[0.0, 110.0], [-5.0, 5.0], [-6.0, 6.0]],
    "dip": [[0.0, 80.0], [-5.0, 5.0], [-6.0, 6.0]],
}
_MCP_ABD = {"index": (-12.0, 20.0), "middle": (-12.0, 12.0), "ring": (-15.0, 10.0),
            "little": (-25.0, 10.0)}
_THUMB_LIMITS = (
    [[-20.0, 55.0], [-20.0, 45.0], [-35.0, 40.0]],   # CMC
    [[-10.0, 65.0], [-10.0, 15.0], [-10.0, 10.0]],   # MCP
    [[-15.0, 85.0], [-5.0, 5.0], [-6.0, 6.0]],       # IP
)
# Mean thumb (CMC flex, abd, twist, MCP flex, IP flex) per style, degrees; tuned on the
# built-in model so that a pinch brings the thumb pad to the index pad.
_THUMB_STYLE = {
    "open": (-5.0, 10.0, 0.0, 5.0, 5.0),
    "fist": (25.0, 11.5, -20.0, 53.0, 38.0),
    "pinch": (35.6, -2.0, 4.0, 5.5, 1.0),
    "point": (25.0, 11.5, -20.0, 53.0, 38.0),
    "grasp": (30.0, 8.0, -8.0, 30.0, 20.0),
}


# Finger styles: MCP flexion range, PIP flexion range, spread range (fraction of SPREAD_DIR*15 deg)
_FINGER_STYLE = {"open": ((-15, 20), (0, 20), (-0.2, 1.0)), "fist": ((65, 90), (85, 110), (-0.2, 0.2)),
                 "pinch": ((0, 80), (0, 100), (-0.2, 0.6)), "point": ((60, 90), (80, 110), (-0.2, 0.3)),
                 "grasp": ((20, 65), (20, 80), (-0.2, 0.6))}
_INDEX_STYLE = {"pinch": ((25, 45), (30, 55), (0.0, 0.3)), "point": ((-10, 15), (0, 15), (0.0, 0.5))}


def anatomical_limits() -> np.ndarray:
    """Anatomical angle limits (15, 3, 2) in radians: joint, (flex, abd, twist), (low, high)."""
    lim = np.zeros((15, 3, 2))
    for k, name in enumerate(FINGERS_MANO):
        for j, kind in enumerate(("mcp", "pip", "dip")):
            lim[3 * k + j] = _FINGER_LIMITS[kind]
        lim[3 * k, 1] = _MCP_ABD[name]
    lim[12:15] = _THUMB_LIMITS
    return np.radians(lim)


@lru_cache(maxsize=1)
def joint_axes() -> np.ndarray:
    """Rest-pose axes (15, 3, 3) of each pose joint: rows flexion l, abduction n, twist d."""
    sk = skeleton(shape_factors())
    axes = np.zeros((15, 3, 3))
    for name, j0 in JOINT0.items():
        for b in range(3):
            axes[j0 - 1 + b] = sk[name]["frames"][b].T
    axes.setflags(write=False)
    return axes


def _axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations about unit axes (..., 3) by angles (...) -> (..., 3, 3)."""
    k = np.zeros(axis.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def angles_to_pose(angles: np.ndarray) -> np.ndarray:
    """Anatomical angles (n, 15, 3) [flex, abd, twist] (radians) -> right-hand pose (n, 45)."""
    axes = joint_axes()
    r = (_axis_angle_matrix(axes[:, 0], angles[..., 0]) @ _axis_angle_matrix(axes[:, 1], angles[..., 1])
         @ _axis_angle_matrix(axes[:, 2], angles[..., 2]))
    return matrix_to_axis_angle(r).reshape(angles.shape[0], 45)


def mirror_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror axis-angle poses (..., 45) between the right and the left model: (ax, -ay, -az)."""
    p = np.asarray(pose)
    out = p.reshape(p.shape[:-1] + (15, 3)) * np.array([1.0, -1.0, -1.0])
    return out.reshape(p.shape).astype(p.dtype)


def _finger_angles(rng, n: int, mcp: tuple, pip: tuple, spread: tuple) -> np.ndarray:
    """Angles (n, 4, 3, 3) of the four fingers (MANO order), degrees, uniform style ranges."""
    a = np.zeros((n, 4, 3, 3))
    curl = rng.uniform(0.0, 1.0, (n, 1))            # shared between fingers: coordinated hands
    own = rng.uniform(0.0, 1.0, (n, 4))
    mix = 0.6 * curl + 0.4 * own
    a[:, :, 0, 0] = mcp[0] + (mcp[1] - mcp[0]) * mix + rng.normal(0.0, 4.0, (n, 4))
    a[:, :, 1, 0] = pip[0] + (pip[1] - pip[0]) * np.clip(mix + rng.normal(0, 0.12, (n, 4)), 0, 1)
    a[:, :, 2, 0] = 0.67 * a[:, :, 1, 0] + rng.normal(0.0, 6.0, (n, 4))
    s = rng.uniform(*spread, (n, 1))
    a[:, :, 0, 1] = s * np.array([SPREAD_DIR[f] for f in FINGERS_MANO]) * 15.0 \
        + rng.normal(0.0, 3.0, (n, 4))
    a[:, :, :, 2] = rng.normal(0.0, 2.0, (n, 4, 3))
    a[:, :, 1:, 1] = rng.normal(0.0, 1.5, (n, 4, 2))
    return a


def _thumb_angles(rng, n: int, mean: tuple, jitter: float) -> np.ndarray:
    """Thumb angles (n, 3, 3) in degrees around a style mean (CMC f/a/t, MCP f, IP f)."""
    t = np.zeros((n, 3, 3))
    t[:, 0] = np.array(mean[:3]) + rng.normal(0.0, jitter, (n, 3))
    t[:, 1, 0] = mean[3] + rng.normal(0.0, jitter, n)
    t[:, 2, 0] = mean[4] + rng.normal(0.0, 1.3 * jitter, n)
    t[:, 1:, 1:] = rng.normal(0.0, 2.0, (n, 2, 2))
    return t


def _style_angles(rng, n: int, style: str) -> np.ndarray:
    """Anatomical angles (n, 15, 3) in degrees of ``n`` poses of one style."""
    ang = np.zeros((n, 15, 3))
    if style == "random":
        lim = np.degrees(anatomical_limits())
        ang = rng.uniform(lim[..., 0], lim[..., 1], (n, 15, 3))
        ang[:, :12][:, 2::3, 0] = 0.67 * ang[:, :12][:, 1::3, 0] + rng.normal(0.0, 6.0, (n, 4))
        ang[:, :12, 2] = rng.normal(0.0, 2.0, (n, 12))
        ang[:, 0:12:3, 1] *= 1.0 - 0.6 * np.clip(ang[:, 0:12:3, 0] / 90.0, 0.0, 1.0)
        return ang
    fing = _finger_angles(rng, n, *_FINGER_STYLE[style])
    if style in _INDEX_STYLE:       # the index does the work
        fing[:, 0] = _finger_angles(rng, n, *_INDEX_STYLE[style])[:, 0]
    ang[:, :12] = fing.reshape(n, 12, 3)
    ang[:, 12:] = _thumb_angles(rng, n, _THUMB_STYLE[style], 8.0 if style != "pinch" else 5.0)
    return ang


def typical_pose(style: str) -> np.ndarray:
    """A representative right-hand pose (45,) float32 of a style (mid-range angles, no noise).

    ``style`` is one of :data:`STYLES` except "random", or "spread" (open hand, fingers apart).
    """
    name = "open" if style == "spread" else style
    if name not in _FINGER_STYLE:
        raise ValueError(f"no typical pose for style {style!r}")
    ang = np.zeros((15, 3))
    for k, finger in enumerate(FINGERS_MANO):
        mcp, pip, spread = (_INDEX_STYLE if k == 0 and name in _INDEX_STYLE else _FINGER_STYLE)[name]
        if style == "spread":
            mcp, pip, spread = (0, 0), (0, 0), (1.0, 1.0)
        ang[3 * k, 0], ang[3 * k + 1, 0] = np.mean(mcp), np.mean(pip)
        ang[3 * k + 2, 0] = 0.67 * np.mean(pip)
        ang[3 * k, 1] = np.mean(spread) * SPREAD_DIR[finger] * 15.0
    t = _THUMB_STYLE[name] if style != "spread" else (-15.0, 10.0, 0.0, 0.0, 0.0)
    ang[12], ang[13, 0], ang[14, 0] = t[:3], t[3], t[4]
    return angles_to_pose(np.radians(ang)[None])[0].astype(np.float32)


def sample_hand_angles(rng: np.random.Generator, n: int, style: str = "any") -> np.ndarray:
    """Anatomical angles (n, 15, 3) in radians, clipped to :func:`anatomical_limits`."""
    if style != "any" and style not in STYLES:
        raise ValueError(f"unknown pose style {style!r}; expected 'any' or one of {STYLES}")
    if style == "any":
        which = rng.choice(len(STYLES), size=n, p=np.array(STYLE_WEIGHTS))
        ang = np.zeros((n, 15, 3))
        for k, name in enumerate(STYLES):
            sel = np.nonzero(which == k)[0]
            if len(sel):
                ang[sel] = _style_angles(rng, len(sel), name)
    else:
        ang = _style_angles(rng, n, style)
    lim = np.degrees(anatomical_limits())
    return np.radians(np.clip(ang, lim[..., 0], lim[..., 1]))


def sample_hand_pose(rng: np.random.Generator, n: int, side: str = "right",
                     style: str = "any") -> np.ndarray:
    """Sample ``n`` plausible hand poses.

    Args:
        rng: numpy random generator (the only source of randomness).
        n: number of poses.
        side: "right" or "left" (the left pose is the mirror of a right pose).
        style: "any" (mixture of :data:`STYLES` with :data:`STYLE_WEIGHTS`) or one style.
    Returns:
        (n, 45) float32 axis-angle poses of joints 1..15 (MANO order, canonical frame).
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    pose = angles_to_pose(sample_hand_angles(rng, n, style))
    return (mirror_pose(pose) if side == "left" else pose).astype(np.float32)


@lru_cache(maxsize=2)
def _limits(side: str) -> tuple[np.ndarray, np.ndarray]:
    lim = anatomical_limits()
    grid = np.linspace(0.0, 1.0, 9)
    g = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    ang = lim[None, :, :, 0] + g[:, None, :] * (lim[None, :, :, 1] - lim[None, :, :, 0])
    aa = angles_to_pose(ang).reshape(-1, 15, 3)
    if side == "left":
        aa = aa * np.array([1.0, -1.0, -1.0])
    lo, hi = aa.min(axis=0) - 0.05, aa.max(axis=0) + 0.05
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


def pose_limits(side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Box bounds of each axis-angle component, for joint-limit priors in keypoint fitting.

    The box contains every rotation allowed by :func:`anatomical_limits` (evaluated on a dense
    grid of the limit box, plus 0.05 rad), hence every pose of :func:`sample_hand_pose`.

    Returns:
        lower, upper: (15, 3) float64 radians, for joints 1..15 (MANO order).
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    lo, hi = _limits(side)
    return lo.copy(), hi.copy()


def pose_pca(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of poses (N, 45) -> mean (45,), components (45, 45) (rows, by decreasing variance,
    sign fixed so each row's largest-magnitude entry is positive), std (45,) per component.
    Coefficients are not whitened: ``pose = mean + coeffs @ components``."""
    p = np.asarray(poses, dtype=np.float64)
    mean = p.mean(axis=0)
    _, s, vt = np.linalg.svd(p - mean, full_matrices=False)
    sign = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    return mean, vt * sign[:, None], s / np.sqrt(max(len(p) - 1, 1))
