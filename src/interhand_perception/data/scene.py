"""Geometry of a synthetic two-hand scene: orientations, contact placement, camera, crop box.

Used by :mod:`interhand_perception.data.synthetic`; ``cfg`` arguments are its
``SyntheticConfig``. Camera frame: OpenCV (x right, y down, z forward), metres.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..dir_net.crop import square_box
from ..hand_model.joints import SIDES
from .synthetic_config import SyntheticConfig
from ..hand_model.rotation_np import axis_angle_to_matrix, matrix_to_axis_angle  # noqa: F401  (re-exported)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def hand_rotation(palm_normal: np.ndarray, finger_dir: np.ndarray, side: str) -> np.ndarray:
    """Rotation taking the canonical hand frame to given palm/finger directions.

    Canonical frame (docs/architecture.md): palm faces -y, fingers point along -x (right) or
    +x (left).

    Args:
        palm_normal: (3,) direction the palm should face; finger_dir: (3,) finger direction
            (made orthogonal to the normal).
    Returns:
        (3, 3) rotation matrix.
    """
    n = _unit(np.asarray(palm_normal, float))
    f = _unit(finger_dir - np.dot(finger_dir, n) * n)
    ex = -f if side == "right" else f
    ey = -n
    return np.stack([ex, ey, np.cross(ex, ey)], axis=1)


def sample_orientation(rng: np.random.Generator, side: str, cfg: SyntheticConfig) -> np.ndarray:
    """Random global rotation (camera frame), biased to the palm or back facing the camera.

    Returns:
        (3, 3) rotation matrix.
    """
    u = rng.uniform()
    if u < cfg.palm_facing_p:
        n = np.array([0.0, 0.0, -1.0])
    elif u < cfg.palm_facing_p + cfg.back_facing_p:
        n = np.array([0.0, 0.0, 1.0])
    else:
        n = _unit(rng.normal(size=3))
    n = _unit(n + rng.normal(0.0, cfg.orient_spread, size=3))
    while True:
        psi = rng.normal(0.0, 1.0) if rng.uniform() < 0.8 else rng.uniform(-np.pi, np.pi)
        f = np.array([np.sin(psi), -np.cos(psi), rng.normal(0.0, 0.5)])
        if abs(np.dot(_unit(f), n)) < 0.95:
            return hand_rotation(n, f, side)


def close_pairs(pa: np.ndarray, pb: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of 2D points closer than ``radius`` (grid hashing, a superset).

    Args:
        pa: (Na, 2), pb: (Nb, 2) points.
    Returns:
        ia (P,), ib (P,) int64 indices of every pair in the same or a neighbouring cell.
    """
    ca, cb = np.floor(pa / radius).astype(np.int64), np.floor(pb / radius).astype(np.int64)
    big = 1 << 20
    kb = cb[:, 0] * big + cb[:, 1]
    order = np.argsort(kb, kind="stable")
    kb = kb[order]
    ia, ib = [], []
    for ox in (-1, 0, 1):
        for oy in (-1, 0, 1):
            ka = (ca[:, 0] + ox) * big + (ca[:, 1] + oy)
            lo = np.searchsorted(kb, ka, "left")
            n = np.searchsorted(kb, ka, "right") - lo
            local = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
            ia.append(np.repeat(np.arange(len(pa)), n))
            ib.append(order[np.repeat(lo, n) + local])
    return np.concatenate(ia), np.concatenate(ib)


def approach_distance(a: np.ndarray, b: np.ndarray, direction: np.ndarray, gap: float) -> float:
    """Largest ``t`` at which a point of ``b + t * direction`` comes within ``gap`` of ``a``.

    Moving ``b`` from far away along ``direction`` towards ``a``, this is the first contact,
    so the two point sets end up ``gap`` apart without passing through each other (as long as
    ``gap`` exceeds the vertex spacing).

    Args:
        a: (Na, 3), b: (Nb, 3) points; direction: (3,) unit vector; gap: metres (> 0).
    Returns:
        t (metres); -inf if the sets never come that close.
    """
    d = np.asarray(direction, dtype=np.float64)
    helper = np.eye(3)[int(np.argmin(np.abs(d)))]
    e1 = _unit(np.cross(d, helper))
    basis = np.stack([e1, np.cross(d, e1)], axis=1)  # (3, 2): the plane across d
    step = max(1, int(gap / 0.01))  # far apart: a sparser sampling is precise enough
    a, b = a[::step], b[::step]
    pa, pb = a @ basis, b @ basis
    ia, ib = close_pairs(pa, pb, gap)
    dx = pa[:, 0][ia] - pb[:, 0][ib]
    dy = pa[:, 1][ia] - pb[:, 1][ib]
    disc = gap * gap - dx * dx - dy * dy
    if not len(disc) or disc.max() < 0.0:
        return -np.inf
    along = (a @ d)[ia] - (b @ d)[ib]
    along += np.where(disc >= 0.0, np.sqrt(np.maximum(disc, 0.0)), -np.inf)
    return float(along.max())


def sample_gap(rng: np.random.Generator, cfg: SyntheticConfig) -> float:
    """Closest vertex distance between the two meshes (metres): mostly touching.

    Includes ``cfg.vertex_slack`` so that surfaces (not only vertices) stay apart.
    """
    if rng.uniform() < cfg.contact_p:
        gap = rng.uniform(0.0, 0.008)
    else:
        gap = rng.uniform(0.008, 0.035) if rng.uniform() < 0.8 else rng.uniform(0.035, 0.09)
    return gap + cfg.vertex_slack


def sample_direction(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    """Direction along which the right hand approaches the left (camera frame, unit)."""
    if rng.uniform() < cfg.front_p:
        d = np.array([rng.normal(0, 0.35), rng.normal(0, 0.35), rng.choice([-1.0, 1.0])])
    else:
        phi = rng.uniform(0, 2 * np.pi)
        d = np.array([np.cos(phi), np.sin(phi), rng.normal(0, 0.35)])
    return _unit(d)


def place_hands(rng: np.random.Generator, rel: np.ndarray, cfg: SyntheticConfig,
                tries: int = 20, direction: np.ndarray | None = None) -> np.ndarray:
    """Wrist positions of the two hands relative to their common centre.

    Args:
        rel: (2, V, 3) wrist-relative vertices of (left, right) in camera orientation.
        direction: (3,) unit direction from the left hand towards the right one (camera
            frame); random (:func:`sample_direction`) if None. A try that leaves the wrists
            more than ``cfg.max_root_distance`` apart perturbs it.
    Returns:
        (2, 3) wrist positions such that the meshes nearly touch, centred on the pair's centre.
    """
    cen = rel.mean(axis=1)  # (2, 3)
    a, b = rel[0] - cen[0], rel[1] - cen[1]
    for k in range(tries):
        if direction is None:
            d = sample_direction(rng, cfg)
        else:
            d = _unit(np.asarray(direction, float) + rng.normal(0.0, 0.15 * k, size=3))
        gap = sample_gap(rng, cfg)
        t = approach_distance(a, b, d, gap)
        if not np.isfinite(t):  # cannot happen for gap > 0; keep the loop total anyway
            t = 0.15
        roots = np.stack([-cen[0], -cen[1] + t * d])
        if np.linalg.norm(roots[1] - roots[0]) <= cfg.max_root_distance:
            break
    centre = 0.5 * ((a.min(0) + a.max(0)) / 2 + (b.min(0) + b.max(0)) / 2 + t * d)
    return roots - centre


def sample_camera(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Random full-frame intrinsics and the camera-frame point the hands are centred on.

    Returns:
        K (3, 3), centre (3,).
    """
    w = rng.uniform(*cfg.image_width_range)
    h = w * rng.uniform(0.56, 1.0)
    f = rng.uniform(*cfg.focal_range)
    cx, cy = w / 2 + rng.normal(0, 4), h / 2 + rng.normal(0, 4)
    K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    pix = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, 1.0])
    z = rng.uniform(*cfg.depth_range)
    return K, z * np.linalg.solve(K, pix)


def jittered_box(rng: np.random.Generator, points2d: np.ndarray,
                 cfg: SyntheticConfig) -> np.ndarray:
    """DIR crop box (fill 0.8) with a small random shift and scale; (3,) (cx, cy, side)."""
    box = square_box(points2d, fill=0.8)
    box[:2] += rng.uniform(-cfg.crop_shift, cfg.crop_shift, size=2) * box[2]
    box[2] *= rng.uniform(*cfg.crop_scale)
    return box


class Scene(NamedTuple):
    """Posed hands in the camera frame (index 0 = left)."""

    verts: np.ndarray    # (2, V, 3)
    joints: np.ndarray   # (2, 21, 3)
    pose: np.ndarray     # (2, 48) camera-frame global orient + 45 axis-angle
    betas: np.ndarray    # (2, 10)
    K: np.ndarray        # (3, 3) full-frame intrinsics
    arm_dirs: np.ndarray | None = None  # (2, 3) unit wrist -> elbow (camera frame); None: free
    view: str = "free"   # "egocentric", "third_person" or "free" (no body)


def _sample_hand_pose(rng: np.random.Generator, side: str, style: str) -> np.ndarray:
    from ..hand_model.pose_prior import sample_hand_pose

    return np.asarray(sample_hand_pose(rng, 1, side=side, style=style), dtype=np.float64)[0]


def pose_hands(models: Sequence, rots: np.ndarray, hand_pose: np.ndarray,
               betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run both hand models (no translation).

    Args:
        rots: (2, 3, 3) global rotations; hand_pose: (2, 45) full axis-angle; betas: (2, 10).
    Returns:
        wrist-relative vertices (2, V, 3), wrist-relative joints (2, 21, 3), pose (2, 48).
    """
    verts, joints, poses = [], [], []
    with torch.no_grad():
        for k, model in enumerate(models):
            aa = matrix_to_axis_angle(rots[k])
            hp = torch.as_tensor(hand_pose[k][None], dtype=torch.float32)
            if not model.flat_hand_mean:
                hp = hp - model.hands_mean
            out = model(torch.as_tensor(aa[None], dtype=torch.float32), hp,
                        torch.as_tensor(betas[k][None], dtype=torch.float32), None,
                        pose_type="axis_angle")
            root = out.joints[0, 0]
            verts.append((out.vertices[0] - root).double().numpy())
            joints.append((out.joints[0] - root).double().numpy())
            poses.append(np.concatenate([aa, out.full_pose[0, 3:].double().numpy()]))
    return np.stack(verts), np.stack(joints), np.stack(poses)


def sample_scene(rng: np.random.Generator, cfg: SyntheticConfig, models: Sequence) -> Scene:
    """Random two-hand scene in the camera frame, by the generator version ``cfg.version``.

    Version 2 (``body`` layout, :mod:`data.body`): both forearms come from their own
    shoulders, hand orientations follow the forearms, the camera is the person's own or
    someone else's. Version 1 (``free`` layout, kept for comparison): independent orientations and a
    random approach direction, so nothing but the hands' own shading tells left from right.
    """
    if cfg.version >= 2:
        return sample_body_scene(rng, cfg, models)
    betas = rng.normal(0.0, cfg.betas_std, size=(2, 10))
    hand_pose = np.stack([_sample_hand_pose(rng, s, cfg.pose_style) for s in SIDES])
    rots = np.stack([sample_orientation(rng, s, cfg) for s in SIDES])
    rel_v, rel_j, pose = pose_hands(models, rots, hand_pose, betas)
    K, centre = sample_camera(rng, cfg)
    roots = place_hands(rng, rel_v, cfg) + centre
    return Scene(verts=rel_v + roots[:, None], joints=rel_j + roots[:, None], pose=pose,
                 betas=betas, K=K)


def sample_body_scene(rng: np.random.Generator, cfg: SyntheticConfig, models: Sequence) -> Scene:
    """Two hands at the ends of a person's forearms, seen by a random camera (:mod:`data.body`).

    Returns:
        :class:`Scene` with ``arm_dirs`` and ``view`` set.
    """
    from .body import approach_direction, sample_hand_frames, sample_rig

    betas = rng.normal(0.0, cfg.betas_std, size=(2, 10))
    hand_pose = np.stack([_sample_hand_pose(rng, s, cfg.pose_style) for s in SIDES])
    rig = sample_rig(rng, cfg)
    normals, fingers = sample_hand_frames(rng, rig)
    to_cam = rig.R.T  # body-frame directions -> camera frame
    rots = np.stack([to_cam @ hand_rotation(normals[k], fingers[k], s) for k, s in enumerate(SIDES)])
    rel_v, rel_j, pose = pose_hands(models, rots, hand_pose, betas)
    K, _ = sample_camera(rng, cfg)
    direction = to_cam @ approach_direction(rng, rig, cfg)
    roots = place_hands(rng, rel_v, cfg, direction=direction) + to_cam @ (rig.centre - rig.eye)
    return Scene(verts=rel_v + roots[:, None], joints=rel_j + roots[:, None], pose=pose,
                 betas=betas, K=K, arm_dirs=rig.forearm_dirs @ rig.R, view=rig.view)
