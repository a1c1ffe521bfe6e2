"""A person behind the two hands: shoulders, elbows, forearms and the camera that sees them.

Used by :func:`interhand_perception.data.scene.sample_scene` for the ``body`` layout (generator
version 2). Without a body, a left palm and a right back are mirror images with the same
silhouette, and a left hand is as often left of the right hand as not: nothing in the image
tells which hand is which. A real image has those cues, and this module puts them in:

* each forearm comes from the shoulder on its own side, through an elbow placed by two-link
  inverse kinematics (elbows hang down and out), so the arm enters the crop from that side of
  the body; crossed arms are allowed but rare (``cross_p``);
* the hand's orientation is the forearm's: the wrist's flexion and deviation are small, and
  the palm turns about the forearm axis within the range of pronation/supination;
* the camera is either the person's own (``egocentric``: at the head, looking down at the
  hands; the left hand tends to be on the image's left, arms enter from the bottom) or
  someone else's (``third_person``: in front of or beside the person, so the person's left
  hand tends to be on the image's right, arms go away from the camera).

Body frame (metres): origin between the shoulders, x towards the person's right, y down,
z forward (out of the chest). It is right-handed like the OpenCV camera frame, so an
egocentric camera with no pitch has the identity rotation.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..hand_model.joints import SIDES
from .synthetic_config import SyntheticConfig

UPPER_ARM = 0.30   # shoulder to elbow (m), before the body scale
FOREARM = 0.26     # elbow to wrist (m)
SHOULDER_HALF = 0.18  # half the shoulder width (m)
HEAD = np.array([0.0, -0.22, 0.06])  # eyes, relative to the shoulders' midpoint (y down)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _orthogonal(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Unit component of ``v`` orthogonal to the unit vector ``axis``; (3,)."""
    return _unit(v - np.dot(v, axis) * axis)


def lateral(side: str) -> np.ndarray:
    """Body-frame unit vector from the midline out to ``side`` ((3,): -x left, +x right)."""
    return np.array([-1.0 if side == "left" else 1.0, 0.0, 0.0])


def elbow_position(shoulder: np.ndarray, wrist: np.ndarray, upper: float, forearm: float,
                   side: str, swivel: float) -> np.ndarray:
    """Elbow of a two-link arm reaching from ``shoulder`` to ``wrist`` (body frame).

    The elbow lies on the circle of points ``upper`` from the shoulder and ``forearm`` from
    the wrist; ``swivel`` (radians) turns it about the shoulder-wrist axis away from the
    natural direction (down, out to its own side and a little back). A wrist out of reach is
    treated as at the reach limit (the arm points straight at it).

    Args:
        shoulder, wrist: (3,) positions; upper, forearm: link lengths (m); side: "left" or
            "right"; swivel: rotation of the elbow about the shoulder-wrist axis (rad).
    Returns:
        (3,) elbow position.
    """
    axis = wrist - shoulder
    dist = float(np.linalg.norm(axis))
    axis = axis / max(dist, 1e-9)
    d = np.clip(dist, abs(upper - forearm) + 1e-3, upper + forearm - 1e-3)
    cos_a = (upper ** 2 + d ** 2 - forearm ** 2) / (2.0 * upper * d)
    sin_a = np.sqrt(max(0.0, 1.0 - cos_a ** 2))
    natural = _orthogonal(0.5 * lateral(side) + np.array([0.0, 1.0, -0.3]), axis)
    other = np.cross(axis, natural)
    bend = np.cos(swivel) * natural + np.sin(swivel) * other
    return shoulder + upper * (cos_a * axis + sin_a * bend)


def forearm_hand_frame(forearm_dir: np.ndarray, side: str, twist: float, flexion: float,
                       deviation: float) -> tuple[np.ndarray, np.ndarray]:
    """Palm normal and finger direction of a hand on a forearm (body frame).

    ``twist`` is the forearm's rotation about its own axis: 0 is the handshake posture (palm
    facing the body's midline, thumb up for a horizontal forearm), +pi/2 supination (palm up),
    -pi/2 pronation (palm down); the same angle means the mirror posture on the other side.
    ``flexion`` bends the fingers towards the palm (negative: extension), ``deviation`` turns
    them in the palm's plane (radians).

    Args:
        forearm_dir: (3,) unit vector from the wrist towards the elbow.
    Returns:
        palm normal (3,), finger direction (3,): the arguments of ``scene.hand_rotation``.
    """
    u = _unit(np.asarray(forearm_dir, dtype=np.float64))
    e1 = _orthogonal(-lateral(side), u)  # towards the midline
    e2 = np.cross(e1, u) if side == "right" else np.cross(u, e1)  # palm up at +pi/2
    n = np.cos(twist) * e1 + np.sin(twist) * e2
    f = -u
    f, n = np.cos(flexion) * f + np.sin(flexion) * n, np.cos(flexion) * n - np.sin(flexion) * f
    side_of = np.cross(n, f) if side == "right" else np.cross(f, n)  # mirror-consistent
    f = np.cos(deviation) * f + np.sin(deviation) * side_of
    return _unit(n), _unit(f)


def look_at(eye: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """Rotation of an OpenCV camera at ``eye`` looking at ``target`` (body frame, y down).

    Returns:
        (3, 3) ``R`` whose columns are the camera's x (right), y (down), z (forward) axes in
        the body frame; a body point ``p`` is at ``R.T @ (p - eye)`` in the camera frame.
    """
    z = _unit(target - eye)
    x = _unit(np.cross(np.array([0.0, 1.0, 0.0]), z))
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([c * x + s * y, -s * x + c * y, z], axis=1)


class BodyRig(NamedTuple):
    """One sampled person and camera (body frame unless stated).

    Attributes:
        view: "egocentric" or "third_person".
        R: (3, 3) camera axes in the body frame (:func:`look_at`); eye: (3,) camera centre.
        centre: (3,) where the hands meet.
        wrists: (2, 3) nominal wrists (left, right), before contact placement.
        elbows: (2, 3); forearm_dirs: (2, 3) unit wrist -> elbow.
        crossed: whether the arms cross (the left wrist is right of the right one).
    """

    view: str
    R: np.ndarray
    eye: np.ndarray
    centre: np.ndarray
    wrists: np.ndarray
    elbows: np.ndarray
    forearm_dirs: np.ndarray
    crossed: bool


def sample_rig(rng: np.random.Generator, cfg: SyntheticConfig) -> BodyRig:
    """A random person (arm lengths, where the hands meet, elbows) and camera.

    Returns:
        :class:`BodyRig`.
    """
    scale = rng.uniform(0.88, 1.1)
    centre = np.array([rng.normal(0.0, 0.06), rng.uniform(0.12, 0.42), rng.uniform(0.22, 0.5)])
    half = rng.uniform(0.03, 0.1)
    crossed = bool(rng.uniform() < cfg.cross_p)
    spread = lateral("right") * (-half if crossed else half)
    wrists = np.stack([centre - spread, centre + spread]) + rng.normal(0.0, 0.03, size=(2, 3))
    elbows, dirs = [], []
    for k, side in enumerate(SIDES):
        shoulder = lateral(side) * SHOULDER_HALF * scale
        e = elbow_position(shoulder, wrists[k], UPPER_ARM * scale, FOREARM * scale, side,
                           rng.normal(0.0, 0.35))
        elbows.append(e)
        dirs.append(_unit(e - wrists[k]))
    if rng.uniform() < cfg.egocentric_p:
        view = "egocentric"
        eye = HEAD + rng.normal(0.0, 0.02, size=3)
        roll = rng.normal(0.0, np.radians(10))
    else:
        view = "third_person"
        yaw = rng.uniform(-np.radians(80), np.radians(80))
        pitch = rng.uniform(-np.radians(15), np.radians(50))  # > 0: the camera looks down
        toward = np.array([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
        eye = centre + rng.uniform(*cfg.depth_range) * toward
        roll = rng.normal(0.0, np.radians(15))
    target = centre + rng.normal(0.0, 0.04 * np.linalg.norm(centre - eye), size=3)
    return BodyRig(view=view, R=look_at(eye, target, roll), eye=eye, centre=centre, wrists=wrists,
                   elbows=np.stack(elbows), forearm_dirs=np.stack(dirs), crossed=crossed)


def sample_hand_frames(rng: np.random.Generator, rig: BodyRig) -> tuple[np.ndarray, np.ndarray]:
    """Palm normals and finger directions of both hands from their forearms (body frame).

    Twist is uniform over the forearm's range of pronation/supination (widened a little for
    shoulder rotation), flexion and deviation of the wrist are small.

    Returns:
        normals (2, 3), finger directions (2, 3).
    """
    normals, fingers = [], []
    for k, side in enumerate(SIDES):
        twist = rng.uniform(-np.radians(115), np.radians(115))
        flexion = float(np.clip(rng.normal(0.1, 0.45), -1.0, 1.2))
        deviation = float(np.clip(rng.normal(0.0, 0.2), -0.5, 0.5))
        n, f = forearm_hand_frame(rig.forearm_dirs[k], side, twist, flexion, deviation)
        normals.append(n)
        fingers.append(f)
    return np.stack(normals), np.stack(fingers)


def approach_direction(rng: np.random.Generator, rig: BodyRig, cfg: SyntheticConfig) -> np.ndarray:
    """Direction (body frame, unit) from the left hand to where the right hand ends up.

    Mostly along the nominal left-to-right wrist vector (so the hands keep their sides of the
    body), with some in front of / behind each other (clasping, occlusion).
    """
    base = _unit(rig.wrists[1] - rig.wrists[0])
    if rng.uniform() < cfg.front_p:
        base = _unit(0.5 * base + np.array([0.0, rng.normal(0.0, 0.3), rng.choice([-1.0, 1.0])]))
    return _unit(base + rng.normal(0.0, 0.3, size=3))
