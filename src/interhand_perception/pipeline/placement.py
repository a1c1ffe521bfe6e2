"""Metric 3D placement of a two-hand result in the camera frame (ROS-free).

The network sees a square box ``(cx_b, cy_b, side_b)`` of the camera image (pixels, pixel i
covers [i, i + 1) as in :mod:`dir_net.crop`), resized to S x S. Per hand it returns wrist-relative
points ``X`` (metres, camera axes) and a weak-perspective camera ``(s, tx, ty)`` with
``uv = s * X[:2] + (tx, ty)`` in normalised crop coordinates ([-1, 1] over the crop), plus the
offset ``right root - left root`` (metres).

Closed form (``solver="closed_form"``, the wrist alone). A crop pixel is
``u_c = (uv + 1) * S / 2`` and the image pixel is ``u = x0 + u_c * side_b / S
= x0 + (uv + 1) * side_b / 2`` with ``x0 = cx_b - side_b / 2``; S cancels, so the crop size is
not needed (only the box). Hence

* the wrist (``X = 0``) projects to ``u_w = cx_b + tx * side_b / 2``, ``v_w = cy_b + ty * side_b / 2``;
* a small offset dX near the wrist moves ``du = s * side_b / 2 * dX``, while a pinhole camera
  at depth Z moves ``du = fx / Z * dX``. Equating: ``Z = fx / (s * side_b / 2)`` (fy for v;
  the two are averaged: ``Z = (fx + fy) / 2 / (s * side_b / 2)``);
* back-projection: ``X_w = (u_w - cx) * Z / fx``, ``Y_w = (v_w - cy) * Z / fy``.

This treats the whole hand as lying at the wrist's depth. But ``s`` is fitted (in training,
by least squares) to all 21 joints, which spread about 0.1-0.2 m in depth around the wrist and
sit off the optical axis; on exact synthetic data the closed form misplaces wrists by up to
~25% of their depth (per hand) and ~10% (pair).

Perspective solve (``solver="perspective"``, default). Each joint ``W + X_i`` (W the unknown
wrist) is projected with the weak-perspective camera to image pixels ``(u_i, v_i)``; the pinhole
equations ``fx (Wx + X_i) = (u_i - cx) (Wz + Z_i)`` (and the same in y) are linear in W, and
least squares over the 42 equations gives W. On exact synthetic data this is within ~1% of depth.

Assumption (both solvers): the hand has the size the hand model predicts (its betas, about an
adult hand), so its apparent size gives its depth. Depth error is proportional to the error in
hand size: a real hand 10% larger than predicted looks 10% larger, so it really is 10% farther
than placed (X and Y scale with the depth too; each wrist's image-plane direction is unaffected).

Placement modes. ``"per_hand"``: each wrist from its own camera. ``"pair"`` (default): one pair
depth and the relative depth from the network's offset, ``Z_left = Z_pair - offset_z / 2``,
``Z_right = Z_pair + offset_z / 2``; each wrist's X, Y from its own image evidence. In closed
form ``Z_pair = depth_from_scale(mean(s))`` and X, Y back-project each projected wrist at its own
depth; in the perspective solve the unknowns are ``(Wx_l, Wy_l, Wx_r, Wy_r, Z_pair)``, fitted
to both hands' equations at once. A single hand's scale is noisy, and the relation branch is
what the network learns for the pair.

Quaternions are ``(x, y, z, w)`` (the ROS ``geometry_msgs/Quaternion`` order).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..hand_model.joints import SIDES
from ..hand_model.rotation_np import axis_angle_to_matrix, axis_angle_to_quaternion
from .decode import InputError

PLACEMENTS: tuple[str, ...] = ("pair", "per_hand")
SOLVERS: tuple[str, ...] = ("perspective", "closed_form")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the image the box refers to (pixels, crop.py convention).

    ``assumed`` is True when they come from an assumed field of view, not a calibration.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    assumed: bool = False

    def matrix(self) -> np.ndarray:
        """(3, 3) float64 K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def intrinsics_from_camera_info(k: Sequence[float], image_width: int, image_height: int) -> Intrinsics:
    """Intrinsics of a ``image_width x image_height`` image from a ``sensor_msgs/CameraInfo`` K,
    as it is.

    Whether that camera_info fits the image (its size, binning, ROI, distortion) is decided by
    :func:`~interhand_perception.pipeline.camera_info.fit_camera_info`, which calls this.

    Args:
        k: 9 values, row-major K.
        image_width, image_height: the image's resolution.
    Raises:
        InputError: kind "intrinsics" for a wrong length, non-finite values, fx or fy <= 0,
            K[2][2] != 1 or a non-positive image size.
    """
    try:
        m = np.asarray(k, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputError("intrinsics", f"camera_info K is not numeric: {exc}") from None
    if m.size != 9:
        raise InputError("intrinsics", f"camera_info K has {m.size} values; expected 9 (row-major 3x3)")
    if not np.isfinite(m).all():
        raise InputError("intrinsics", f"camera_info K has NaN/inf values: {m.tolist()}")
    fx, cx, fy, cy = m[0], m[2], m[4], m[5]
    if fx <= 0 or fy <= 0:
        raise InputError("intrinsics", f"camera_info K has fx={fx}, fy={fy}; expected both > 0 "
                                       "(an uncalibrated camera publishes zeros)")
    if abs(m[8] - 1.0) > 1e-6:
        raise InputError("intrinsics", f"camera_info K[2][2] = {m[8]}; expected 1")
    if image_width <= 0 or image_height <= 0:
        raise InputError("intrinsics", f"image size {image_width}x{image_height} must be positive")
    return Intrinsics(float(fx), float(fy), float(cx), float(cy), int(image_width), int(image_height))


def assumed_intrinsics(image_width: int, image_height: int, hfov_deg: float = 60.0) -> Intrinsics:
    """Intrinsics from an assumed horizontal field of view (no camera_info).

    ``fx = fy = (W / 2) / tan(hfov / 2)``, principal point at the image centre ``(W/2, H/2)``.
    """
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
    if image_width <= 0 or image_height <= 0:
        raise ValueError(f"image size {image_width}x{image_height} must be positive")
    f = (image_width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return Intrinsics(f, f, image_width / 2.0, image_height / 2.0, int(image_width), int(image_height),
                      assumed=True)


def _require_finite(name: str, values: Any) -> np.ndarray:
    """float64 array of ``values``, or InputError("non_finite") naming ``name``."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise InputError("non_finite", f"{name} has NaN/inf values; expected finite numbers")
    return arr


def depth_from_scale(s: float, box_side: float, fx: float, fy: float) -> float:
    """Wrist depth (metres) from a weak-perspective scale: ``(fx + fy) / 2 / (s * side / 2)``.

    Args:
        s: weak-perspective scale (normalised crop units per metre).
        box_side: side of the image box in pixels.
    """
    if not all(math.isfinite(v) for v in (s, box_side, fx, fy)) or s <= 0 or box_side <= 0:
        raise InputError("non_finite", f"cannot compute depth from scale s={s}, box side={box_side}; "
                                       "expected finite values with s > 0 and side > 0")
    return 0.5 * (fx + fy) / (s * box_side / 2.0)


def wrist_from_weak_perspective(cam: np.ndarray, box: np.ndarray, intrinsics: Intrinsics,
                                depth: float | None = None) -> np.ndarray:
    """Wrist position in the camera frame from a weak-perspective camera.

    Args:
        cam: (3,) ``(s, tx, ty)`` in normalised crop coordinates.
        box: (3,) image box ``(cx, cy, side)`` in pixels.
        intrinsics: of the image.
        depth: wrist depth in metres; None derives it from ``s``.
    Returns:
        (3,) float64 metres.
    """
    s, tx, ty = _require_finite("camera (s, tx, ty)", cam).reshape(3)
    cx_b, cy_b, side = _require_finite("crop box", box).reshape(3)
    z = depth_from_scale(s, side, intrinsics.fx, intrinsics.fy) if depth is None else float(depth)
    if not math.isfinite(z) or z <= 0:
        raise InputError("non_finite", f"wrist depth {z} m is not a positive finite number")
    u = cx_b + tx * side / 2.0
    v = cy_b + ty * side / 2.0
    return np.array([(u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z])


def project_points(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Pinhole projection for overlays.

    Args:
        points: (N, 3) camera-frame points, metres.
    Returns:
        (N, 2) float64 pixels; NaN for points with Z <= 0.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(p[:, 2] > 0, p[:, 2], np.nan)
        return np.stack([intrinsics.fx * p[:, 0] / z + intrinsics.cx,
                         intrinsics.fy * p[:, 1] / z + intrinsics.cy], axis=1)


@dataclass
class PlacedHands:
    """Both hands in the camera frame (metres), index 0 = left, 1 = right.

    Attributes:
        joints: (2, 21, 3) float64.
        vertices: (2, V, 3) float32.
        wrist: (2, 3) float64 wrist positions.
        wrist_rotation: (2, 3, 3) wrist orientation (from global_orient).
        wrist_quaternion: (2, 4) the same as ``(x, y, z, w)`` (ROS order), ``w >= 0``.
        right_minus_left: (3,) ``wrist[1] - wrist[0]``.
        depth_from: "camera_info" or "assumed" (where the intrinsics came from).
    """

    joints: np.ndarray
    vertices: np.ndarray
    wrist: np.ndarray
    wrist_rotation: np.ndarray
    wrist_quaternion: np.ndarray
    right_minus_left: np.ndarray
    depth_from: str


def weak_to_pixels(points: np.ndarray, cam: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Image pixels of wrist-relative points under a weak-perspective camera.

    Args:
        points: (N, 3) wrist-relative points, metres.
        cam: (3,) ``(s, tx, ty)``.
        box: (3,) image box ``(cx, cy, side)``.
    Returns:
        (N, 2) float64 ``box[:2] + (s * points[:, :2] + t) * side / 2``.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return box[:2] + (cam[0] * p[:, :2] + cam[1:]) * (box[2] / 2.0)


def _projection_rows(pixels: np.ndarray, points: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Linear pinhole equations ``A @ W = b`` for the wrist W of points ``W + points`` seen at ``pixels``.

    From ``fx (Wx + a) = (u - cx) (Wz + c)``: ``fx Wx + (cx - u) Wz = (u - cx) c - fx a`` (same in y).

    Args:
        pixels: (N, 2); points: (N, 3) wrist-relative.
    Returns:
        A (2N, 3), b (2N,) with x rows first, then y rows.
    """
    n = len(points)
    a = np.zeros((2 * n, 3))
    a[:n, 0], a[:n, 2] = intr.fx, intr.cx - pixels[:, 0]
    a[n:, 1], a[n:, 2] = intr.fy, intr.cy - pixels[:, 1]
    b = np.concatenate([(pixels[:, 0] - intr.cx) * points[:, 2] - intr.fx * points[:, 0],
                        (pixels[:, 1] - intr.cy) * points[:, 2] - intr.fy * points[:, 1]])
    return a, b


def _has_extent(points: np.ndarray, min_extent: float = 1e-3) -> bool:
    """Whether (N, 3) points span at least ``min_extent`` metres in x or y (size is observable)."""
    return len(points) >= 2 and float(np.ptp(points[:, :2], axis=0).max()) >= min_extent


def _wrists_closed_form(cams: np.ndarray, offset: np.ndarray, box: np.ndarray, intr: Intrinsics,
                        placement: str) -> np.ndarray:
    """(2, 3) wrists from (2, 3) cameras with the closed form (module docstring)."""
    if placement == "per_hand":
        return np.stack([wrist_from_weak_perspective(c, box, intr) for c in cams])
    z_pair = depth_from_scale(float(cams[:, 0].mean()), float(box[2]), intr.fx, intr.fy)
    depths = (z_pair - offset[2] / 2.0, z_pair + offset[2] / 2.0)
    return np.stack([wrist_from_weak_perspective(c, box, intr, d) for c, d in zip(cams, depths)])


def _wrists_perspective(cams: np.ndarray, points: np.ndarray, offset: np.ndarray, box: np.ndarray,
                        intr: Intrinsics, placement: str) -> np.ndarray:
    """(2, 3) wrists by least squares of the pinhole equations of every point (module docstring).

    Args:
        cams: (2, 3); points: (2, N, 3) wrist-relative joints; offset: (3,).
    """
    rows = [_projection_rows(weak_to_pixels(p, c, box), p, intr) for c, p in zip(cams, points)]
    if placement == "per_hand":
        return np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in rows])
    # unknowns (Wx_l, Wy_l, Wx_r, Wy_r, Z_pair), Wz = Z_pair -/+ offset_z / 2
    blocks, rhs = [], []
    for h, ((a, b), sign) in enumerate(zip(rows, (-1.0, 1.0))):
        m = np.zeros((len(a), 5))
        m[:, 2 * h:2 * h + 2], m[:, 4] = a[:, :2], a[:, 2]
        blocks.append(m)
        rhs.append(b - a[:, 2] * sign * offset[2] / 2.0)
    x = np.linalg.lstsq(np.concatenate(blocks), np.concatenate(rhs), rcond=None)[0]
    return np.array([[x[0], x[1], x[4] - offset[2] / 2.0], [x[2], x[3], x[4] + offset[2] / 2.0]])


def place_hands(result: Any, box: np.ndarray, intrinsics: Intrinsics, placement: str = "pair",
                solver: str = "perspective") -> PlacedHands:
    """Place a two-hand network result in the camera frame.

    Args:
        result: has ``.left`` / ``.right`` with ``.joints`` (21, 3), ``.vertices`` (V, 3),
            ``.camera`` (3,), ``.global_orient`` (3,) (wrist-relative, metres), and ``.offset``
            (3,) right-minus-left root (``TwoHandResult`` fits). ``.crop_size`` is not needed.
        box: (3,) the image box the crop was cut from, ``(cx, cy, side)`` pixels.
        intrinsics: of the image.
        placement: "pair" or "per_hand" (see the module docstring).
        solver: "perspective" (least squares over the joints) or "closed_form" (wrist only);
            a hand without extent (all joints within 1 mm) always uses the closed form.
    Raises:
        InputError: kind "non_finite" for NaN/inf anywhere, a scale <= 0 or a depth <= 0.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; expected one of {', '.join(SOLVERS)}")
    hands = (result.left, result.right)
    cams = _require_finite("camera (s, tx, ty)", [h.camera for h in hands]).reshape(2, 3)
    offset = _require_finite("offset", result.offset).reshape(3)
    box = _require_finite("crop box", box).reshape(3)
    joints = _require_finite("joints", [h.joints for h in hands]).reshape(2, -1, 3)
    verts = _require_finite("vertices", [h.vertices for h in hands]).reshape(2, -1, 3)
    orient = _require_finite("global_orient", [h.global_orient for h in hands]).reshape(2, 3)
    if cams[:, 0].min() <= 0 or box[2] <= 0:
        raise InputError("non_finite", f"weak-perspective scales {cams[:, 0].tolist()} and box side "
                                       f"{box[2]} must be > 0")
    if solver == "perspective" and all(_has_extent(j) for j in joints):
        wrist = _wrists_perspective(cams, joints, offset, box, intrinsics, placement)
    else:
        wrist = _wrists_closed_form(cams, offset, box, intrinsics, placement)
    if not np.isfinite(wrist).all() or wrist[:, 2].min() <= 0:
        raise InputError("non_finite", f"placed wrists {wrist.tolist()} are not in front of the camera")
    quat_wxyz = axis_angle_to_quaternion(orient)
    return PlacedHands(
        joints=joints + wrist[:, None, :],
        vertices=(verts + wrist[:, None, :]).astype(np.float32),
        wrist=wrist,
        wrist_rotation=axis_angle_to_matrix(orient),
        wrist_quaternion=np.concatenate([quat_wxyz[:, 1:], quat_wxyz[:, :1]], axis=1),
        right_minus_left=wrist[1] - wrist[0],
        depth_from="assumed" if intrinsics.assumed else "camera_info",
    )


def to_placed_hands(fits: Mapping[str, Any], depth_from: str = "camera_info") -> PlacedHands:
    """Both hands fitted by ``fitting.fit_hands`` as :class:`PlacedHands` (index 0 left, 1 right).

    The fit is already metric and in the camera frame, so nothing goes through DIR's
    weak-perspective camera. A side missing from ``fits`` is filled with zeros (identity
    rotation); the caller marks it invalid (``valid = [s in fits for s in SIDES]``).

    Args:
        fits: side -> ``fitting.FitResult`` (at least one side).
        depth_from: "camera_info" or "assumed" (where the intrinsics came from).
    """
    if not fits:
        raise ValueError("to_placed_hands needs at least one fitted hand")
    num_verts = next(iter(fits.values())).vertices.shape[0]
    joints = np.zeros((2, 21, 3))
    verts = np.zeros((2, num_verts, 3), dtype=np.float32)
    orient = np.zeros((2, 3))
    for i, side in enumerate(SIDES):
        if side in fits:
            f = fits[side]
            if f.vertices.shape[0] != num_verts:
                raise ValueError("both hand models must have the same number of vertices")
            joints[i], verts[i], orient[i] = f.joints, f.vertices, f.global_orient
    wrist = joints[:, 0].copy()
    quat = axis_angle_to_quaternion(orient)
    return PlacedHands(joints=joints, vertices=verts, wrist=wrist,
                       wrist_rotation=axis_angle_to_matrix(orient),
                       wrist_quaternion=np.concatenate([quat[:, 1:], quat[:, :1]], axis=1),
                       right_minus_left=wrist[1] - wrist[0], depth_from=depth_from)
