"""Depth fusion: correct the depth of the placed hands with an aligned depth image (ROS-free).

Why. :mod:`pipeline.placement` gets each hand's depth from its apparent size, assuming the size
the hand model predicts; a hand 10% larger than predicted is placed 10% too close, every point
off by the same factor. A depth camera measures that distance.

Assumption: the depth image is *registered* to the colour image (RealSense
``aligned_depth_to_color``, OpenNI ``depth_registered``): same optical centre, same intrinsics
up to resolution. A different size scales the joint pixels per axis (:func:`scale_pixels`).
Unregistered depth (another optical centre) is not supported. Encodings (REP 118): ``16UC1``
millimetres, 0 = no data; ``32FC1`` metres, NaN/inf/<= 0 = no data; both -> float32 metres, NaN.

The maths. Scaling a hand ``p -> k p`` about the optical centre (along the viewing rays) leaves
its image unchanged: exactly the ambiguity of the size-based placement, so the depth image is
asked for ``k``. At each joint pixel the sensor's surface depth ``d_i`` is the median of the
nearest surface in a small window (:func:`window_surface`; a plain median takes the background
where a finger covers less than half of the window). It is compared with the estimate:

* mesh mode (:func:`depth_shifts`): ``s_i`` = the nearest estimated vertex z within about one
  vertex spacing of the joint pixel (:func:`predicted_surface`), the skin the sensor should
  see; joints behind the other hand's estimated mesh are left out. The mesh scales with ``k``,
  so ``k_i = d_i / s_i`` exactly;
* joints alone: the real joint lies ``c`` (``surface_to_joint_m``, about half a finger's
  thickness) behind the skin seen, ``k_i = (d_i + c) / z_i``. On the built-in hand the median
  of (joint z - surface z) over visible joints is 10-14 mm (wrist and knuckles ~20 mm, tips
  ~4 mm); default 10 mm (scalar or 21 values). An error ``dc`` gives about ``dc`` at the wrist.

Offsets referred to the wrist, ``o_i = (k_i - 1) * z_root``, are averaged robustly: the mean of
those within 3 MAD-sigmas (``1.4826 * MAD``, at least ``min_spread_m``) of their median; this
drops the background behind a finger, joints hidden behind the palm or the other hand, flying
pixels. :func:`apply_depth` scales the hand by ``k = (z_root + shift) / z_root``.

Optional mask (H, W) bool of the hand's pixels: window samples outside it are dropped (no window
reaches the background or the other hand); with fewer than ``min_valid`` joints left, the mask's
median depth against the median expected depth gives a coarse ``k`` (errors of a few cm seen).

Measured numbers (rendered scenes, about 2-3 mm median in mesh mode): docs/filtering_and_depth.md.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any, Sequence

import numpy as np

from .decode import InputError, _check_size, checked_rows
from .placement import Intrinsics, PlacedHands, project_points

#: Encodings accepted by :func:`depth_to_metres`: name -> (bytes per pixel, scale to metres).
DEPTH_ENCODINGS: dict[str, tuple[int, float]] = {"16UC1": (2, 1e-3), "32FC1": (4, 1.0)}


# ----------------------------------------------------------------------------- decoding

def depth_to_metres(data: Any, width: int, height: int, encoding: str, step: int,
                    is_bigendian: bool = False, max_width: int = 8192,
                    max_height: int = 8192) -> np.ndarray:
    """Raw ``sensor_msgs/Image`` depth fields -> metres.

    Checks as :func:`~pipeline.decode.image_to_rgb`, in order: empty size, size limits
    (before any allocation), encoding, ``step`` against the width, ``len(data) == step * height``.
    Row padding is skipped; ``is_bigendian`` gives the byte order of both encodings.

    Args:
        data: (step * height,) bytes in any buffer form; width, height: pixels; step: bytes per row.
        encoding: "16UC1" (millimetres, 0 = invalid) or "32FC1" (metres), case-insensitive.
        is_bigendian: byte order of the pixels; max_width, max_height: size limits.
    Returns:
        (H, W) float32 metres, NaN where there is no valid measurement; never aliases ``data``.
    Raises:
        InputError: kinds "empty", "too_large", "encoding", "size_mismatch".
    """
    width, height, step = int(width), int(height), int(step)
    _check_size(width, height, max_width, max_height)
    name = str(encoding).strip().upper()
    if name not in DEPTH_ENCODINGS:
        raise InputError("encoding", f"unsupported depth encoding {encoding!r}; expected one of "
                                     f"{', '.join(DEPTH_ENCODINGS)} (REP 118)")
    bpp, scale = DEPTH_ENCODINGS[name]
    rows = np.ascontiguousarray(checked_rows(data, width, height, step, bpp, encoding))  # copy: no aliasing
    order = ">" if is_bigendian else "<"
    if name == "16UC1":
        mm = rows.view(order + "u2")
        out = mm.astype(np.float32) * np.float32(scale)
        out[mm == 0] = np.nan
        return out
    out = rows.view(order + "f4").astype(np.float32)
    with np.errstate(invalid="ignore"):
        out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


# ----------------------------------------------------------------------------- stamp matching

class DepthBuffer:
    """The last ``size`` depth images by stamp, matched to colour frames (thread-safe).

    The depth callback ``add``s; the colour worker ``match``es its image stamp and gets the
    depth whose stamp is nearest, if within ``max_age_s`` (either side: depth may arrive after
    colour). With aligned streams of one camera the stamps are usually equal.
    """

    def __init__(self, max_age_s: float = 0.05, size: int = 10):
        if not max_age_s >= 0 or size < 1:
            raise ValueError(f"need max_age_s >= 0 and size >= 1, got {max_age_s}, {size}")
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        self._items: deque[tuple[float, Any]] = deque(maxlen=int(size))

    def add(self, stamp_s: float, depth: Any) -> None:
        """Keep ``depth`` (e.g. (H, W) float32 metres) stamped ``stamp_s`` seconds; drops the oldest."""
        if not math.isfinite(stamp_s):
            raise ValueError(f"depth stamp must be finite, got {stamp_s}")
        with self._lock:
            self._items.append((float(stamp_s), depth))

    def match(self, stamp_s: float) -> Any | None:
        """The depth with the stamp nearest ``stamp_s`` within ``max_age_s``, else None."""
        with self._lock:
            best = min(self._items, key=lambda item: abs(item[0] - stamp_s), default=None)
        if best is None or not abs(best[0] - stamp_s) <= self.max_age_s:
            return None
        return best[1]

    def clear(self) -> None:
        """Forget every depth image."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


# ----------------------------------------------------------------------------- sampling

def scale_pixels(pixels: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates of one image grid in another of the same field of view.

    Args:
        pixels: (N, 2) ``(u, v)`` in an image of ``from_size = (width, height)``.
        to_size: ``(width, height)`` of the target image.
    Returns:
        (N, 2) float64 ``(u * W_to / W_from, v * H_to / H_from)``.
    """
    p = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    return p * np.array([to_size[0] / from_size[0], to_size[1] / from_size[1]])


def window_samples(depth: np.ndarray, pixels: np.ndarray, window: int = 5,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """Depth values in a ``window x window`` square around each pixel.

    Pixel ``(u, v)`` lies in column ``floor(u)``, row ``floor(v)``. Samples outside the image,
    outside ``mask`` or without a valid depth are NaN.

    Args:
        depth: (H, W) metres, NaN = invalid.
        pixels: (N, 2) ``(u, v)``; non-finite rows give all-NaN windows.
        window: odd side length.
        mask: (H, W) bool or None.
    Returns:
        (N, window * window) float64.
    """
    h, w = depth.shape
    p = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    finite = np.isfinite(p).all(axis=1)
    # far outside stays far outside after clipping; keeps the int conversion safe
    safe = np.clip(np.where(finite[:, None], p, -1e9), -2 * window, max(h, w) + 2 * window)
    centre = np.floor(safe).astype(np.int64)
    r = window // 2
    off = np.arange(-r, r + 1)
    cols = (centre[:, 0, None, None] + off[None, None, :]).repeat(window, axis=1)
    rows = (centre[:, 1, None, None] + off[None, :, None]).repeat(window, axis=2)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h) & finite[:, None, None]
    ci, ri = np.clip(cols, 0, w - 1), np.clip(rows, 0, h - 1)
    values = np.where(inside, depth[ri, ci], np.nan).astype(np.float64)
    if mask is not None:
        values = np.where(np.asarray(mask, dtype=bool)[ri, ci], values, np.nan)
    values[~(np.isfinite(values) & (values > 0))] = np.nan
    return values.reshape(len(p), -1)


def window_surface(samples: np.ndarray, min_samples: int = 3, cluster_m: float = 0.02) -> np.ndarray:
    """Depth of the nearest surface in each window: median of the samples within ``cluster_m``
    of the window's 10th percentile; NaN with fewer than ``min_samples`` of them.

    A plain median fails where a finger covers less than half of the window (its edges, thin
    fingers far away): the background behind it wins. The sensor's view of a hand is its near
    side, so the near cluster is taken; the 10th percentile instead of the minimum ignores a
    few flying pixels in front.

    Args:
        samples: (N, M) from :func:`window_samples`.
    Returns:
        (N,) float64.
    """
    s = np.sort(samples, axis=1)  # NaN last: valid samples are a sorted prefix
    rows = np.arange(len(s))
    n = np.isfinite(s).sum(axis=1)
    anchor = s[rows, np.maximum(n - 1, 0) // 10]  # 10th percentile (lower)
    with np.errstate(invalid="ignore"):
        m = (s <= (anchor + cluster_m)[:, None]).sum(axis=1)  # the near cluster is a prefix too
    median = 0.5 * (s[rows, np.maximum(m - 1, 0) // 2] + s[rows, m // 2])
    return np.where(m >= min_samples, median, np.nan)


def robust_mean(values: np.ndarray, n_sigma: float = 3.0, min_spread: float = 0.0) -> tuple[float, np.ndarray]:
    """Mean of the values within ``n_sigma`` MAD-sigmas of the median.

    ``sigma = max(1.4826 * median(|x - median(x)|), min_spread)`` (1.4826 makes the MAD a
    consistent estimate of a Gaussian's sigma; ``min_spread`` keeps near-identical values
    from rejecting each other).

    Args:
        values: (N,) finite, N >= 1.
    Returns:
        (mean of the inliers, (N,) bool inlier mask).
    """
    x = np.asarray(values, dtype=np.float64)
    med = float(np.median(x))
    sigma = max(1.4826 * float(np.median(np.abs(x - med))), float(min_spread))
    inlier = np.abs(x - med) <= n_sigma * sigma
    return float(x[inlier].mean()), inlier


# ----------------------------------------------------------------------------- estimation

#: Surface area of an adult hand mesh, m^2 (the built-in hand: 0.046), for the vertex spacing.
HAND_AREA_M2 = 0.045


def splat_radius_m(num_vertices: int) -> float:
    """Radius (metres) around a joint within which a hand mesh has a vertex on the near side.

    ``sqrt(area / V)``, the mean vertex spacing: 5.5 mm for the built-in hand's 1490 vertices,
    7.6 mm for MANO's 778. Half of it was more precise on rendered scenes (median 0.8 mm instead
    of 2.7 mm) but sometimes missed the near side (outliers of 35 mm instead of 6 mm).
    """
    return math.sqrt(HAND_AREA_M2 / max(int(num_vertices), 1))


def _nearest_z_within(points2d: np.ndarray, verts2d: np.ndarray, verts_z: np.ndarray,
                      radius_px: float) -> np.ndarray:
    """(N,) smallest (V,) ``verts_z`` of (V, 2) ``verts2d`` within ``radius_px`` of (N, 2) points; inf if none."""
    du = points2d[:, 0, None] - verts2d[None, :, 0]
    dv = points2d[:, 1, None] - verts2d[None, :, 1]
    with np.errstate(invalid="ignore"):
        near = du * du + dv * dv <= radius_px * radius_px
    return np.where(near, verts_z[None, :], np.inf).min(axis=1, initial=np.inf)


def predicted_surface(joints2d: np.ndarray, verts2d: np.ndarray, verts_z: np.ndarray, radius_px: float,
                      other2d: np.ndarray | None = None, other_z: np.ndarray | None = None,
                      other_radius_px: float | None = None) -> np.ndarray:
    """Depth of the estimated skin seen at each joint pixel (module docstring).

    The nearest own vertex within ``radius_px``; NaN when there is none, or when a vertex of the
    other hand within ``other_radius_px`` (default ``2 * radius_px``: occlusion must not be
    missed between sparse vertices) is nearer still (the joint is hidden behind the other hand).

    Args:
        joints2d: (N, 2) joint pixels; verts2d: (V, 2) vertex pixels; verts_z: (V,) vertex depths.
        other2d, other_z: (M, 2), (M,) the other hand's, or None.
    Returns:
        (N,) float64 metres.
    """
    j = np.asarray(joints2d, dtype=np.float64).reshape(-1, 2)
    own = _nearest_z_within(j, np.asarray(verts2d, np.float64), np.asarray(verts_z, np.float64), radius_px)
    if other2d is not None and other_z is not None and len(other_z):
        r = 2.0 * radius_px if other_radius_px is None else other_radius_px
        other = _nearest_z_within(j, np.asarray(other2d, np.float64), np.asarray(other_z, np.float64), r)
        own = np.where(other < own, np.inf, own)
    return np.where(np.isfinite(own), own, np.nan)


def hand_distance(depth: np.ndarray, joints2d: np.ndarray, joints_cam: np.ndarray,
                  mask: np.ndarray | None = None, min_valid: int = 5, surface_z: np.ndarray | None = None,
                  window: int = 5, surface_to_joint_m: float | np.ndarray = 0.010,
                  min_spread_m: float = 0.005, max_relative_change: float | None = 0.5,
                  min_mask_pixels: int = 50) -> float | None:
    """Root depth shift of one hand from an aligned depth image (module docstring).

    Args:
        depth: (H, W) float metres, NaN/0 = invalid (from :func:`depth_to_metres`).
        joints2d: (21, 2) the joints' pixels in the depth image (see :func:`scale_pixels`).
        joints_cam: (21, 3) the current estimate, camera frame metres; row 0 is the root (wrist).
        mask: (H, W) bool of the hand's pixels, or None; min_valid: fewest valid inlying joints.
        surface_z: (21,) predicted skin depth per joint (:func:`predicted_surface`, NaN = not
            visible), or None for the joints-alone mode (``k_i = (d_i + c) / z_i``).
        window: side of the square sampled around each joint pixel; min_spread_m: floor of the
            outlier-rejection sigma; surface_to_joint_m: scalar or (21,) ``c`` (joints alone).
        max_relative_change: samples with ``|k_i - 1|`` above this are dropped before the
            statistics (background, or a wildly wrong estimate); None keeps all.
        min_mask_pixels: valid mask pixels needed for the mask fallback.
    Returns:
        Shift of the root depth in metres (new root depth = ``joints_cam[0, 2] + shift``), or
        None when there is not enough valid depth (the caller keeps the intrinsics estimate).
    """
    d = np.asarray(depth, dtype=np.float32)
    cam = np.asarray(joints_cam, dtype=np.float64).reshape(-1, 3)
    z_root = float(cam[0, 2])
    if d.ndim != 2 or not (math.isfinite(z_root) and z_root > 0):
        raise ValueError(f"need an (H, W) depth image and a root in front of the camera, got "
                         f"{d.shape} and z = {z_root}")
    # c-mode: the real joint lies c behind the real surface, k_i = (d_i + c) / z_i
    add = np.zeros(1) if surface_z is not None else np.asarray(surface_to_joint_m, dtype=np.float64)
    expected = (cam[:, 2] if surface_z is None else np.asarray(surface_z, dtype=np.float64)).reshape(-1)
    seen = window_surface(window_samples(d, joints2d, window, mask))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(expected > 0, (seen + add) / expected, np.nan)
    ok = np.isfinite(ratio)
    if max_relative_change is not None:
        ok &= np.abs(ratio - 1.0) <= max_relative_change
    if ok.sum() >= min_valid:
        shift, inlier = robust_mean((ratio[ok] - 1.0) * z_root, 3.0, min_spread_m)
        if inlier.sum() >= min_valid:
            return shift
    if mask is not None:
        return _mask_shift(d, np.asarray(mask, dtype=bool), expected, float(np.mean(add)), z_root,
                           min_mask_pixels, max_relative_change)
    return None


def _mask_shift(depth: np.ndarray, mask: np.ndarray, expected: np.ndarray, add: float, z_root: float,
                min_pixels: int, max_relative_change: float | None) -> float | None:
    """Coarse shift from the mask: ``k = (median mask depth + add) / median expected depth``.

    Args:
        depth: (H, W); mask: (H, W) bool; expected: (21,) predicted surface depths (NaN allowed).
    """
    values = depth[mask & (depth > 0)]
    values = values[np.isfinite(values)]
    expected = expected[np.isfinite(expected) & (expected > 0)]
    if values.size < min_pixels or expected.size == 0:
        return None
    k = (float(np.median(values)) + add) / float(np.median(expected))
    if max_relative_change is not None and abs(k - 1.0) > max_relative_change:
        return None
    return (k - 1.0) * z_root


def depth_shifts(placed: PlacedHands, intrinsics: Intrinsics, depth: np.ndarray,
                 valid: Sequence[bool] = (True, True), masks: Sequence[np.ndarray | None] = (None, None),
                 use_mesh: bool = True, **kwargs: Any) -> list[float | None]:
    """:func:`hand_distance` for both hands of a placement.

    Joints (and vertices) are projected with the colour intrinsics and scaled to the depth
    image's size (registered depth assumed, module docstring). With ``use_mesh`` each hand's
    expected surface comes from its vertices (:func:`predicted_surface`, radius
    :func:`splat_radius_m` at the wrist's depth, at least 1.5 px), the other valid hand acting
    as occluder.

    Args:
        placed: both hands; intrinsics: of the colour image; depth: (H, W) metres.
        valid: (2,) only valid hands are measured (others give None).
        masks: per hand (H, W) bool or None, in depth-image pixels.
        use_mesh: mesh mode (else joints alone); kwargs: passed to :func:`hand_distance`.
    Returns:
        [left shift or None, right shift or None], metres.
    """
    h, w = np.asarray(depth).shape[:2]
    sizes = ((intrinsics.width, intrinsics.height), (w, h))
    joints2d = [scale_pixels(project_points(j, intrinsics), *sizes) for j in placed.joints]
    verts2d = [scale_pixels(project_points(v, intrinsics), *sizes) for v in placed.vertices] if use_mesh else []
    f_depth = 0.5 * (intrinsics.fx * w / intrinsics.width + intrinsics.fy * h / intrinsics.height)
    out: list[float | None] = []
    for i in range(2):
        if not valid[i]:
            out.append(None)
            continue
        surface = None
        if use_mesh:
            radius = max(1.5, f_depth * splat_radius_m(len(placed.vertices[i])) / float(placed.wrist[i, 2]))
            o = 1 - i
            other = (verts2d[o], placed.vertices[o][:, 2]) if valid[o] else (None, None)
            surface = predicted_surface(joints2d[i], verts2d[i], placed.vertices[i][:, 2], radius, *other)
        out.append(hand_distance(depth, joints2d[i], placed.joints[i], masks[i], surface_z=surface, **kwargs))
    return out


def _ray_scale(z: float, shift: float | None) -> float | None:
    """``(z + shift) / z``, or None for a missing/non-finite shift or a result at or behind the camera."""
    if shift is None or not math.isfinite(shift) or not z > 0 or not z + shift > 0:
        return None
    return (z + shift) / z


def apply_depth(placed: PlacedHands, depths: Sequence[float | None]) -> PlacedHands:
    """Move each hand along its viewing rays so that its wrist depth changes by the shift.

    Every point (joints, vertices, wrist) of hand i is scaled by
    ``k_i = (z_wrist + shift_i) / z_wrist`` about the optical centre: the image of the hand is
    unchanged, its size scales with its distance. Orientations are unchanged. A None, non-finite
    shift, or one that would put the wrist at or behind the camera, leaves the hand as it is.

    ``depth_from`` becomes "depth" when both hands moved, ``"left:depth,right:<old>"`` (or the
    mirror) when one did, and stays as it was when none did.

    Args:
        placed: both hands; depths: (2,) per hand a root depth shift in metres or None.
    Returns:
        A new :class:`PlacedHands` (inputs untouched).
    """
    factors = [_ray_scale(float(placed.wrist[i, 2]), shift) for i, shift in enumerate(depths)]
    moved = [f is not None for f in factors]
    scale = np.array([1.0 if f is None else f for f in factors])
    wrist = placed.wrist * scale[:, None]
    source = ",".join(f"{side}:{'depth' if m else placed.depth_from}" for side, m in zip(("left", "right"), moved))
    source = "depth" if all(moved) else source if any(moved) else placed.depth_from
    return PlacedHands(
        joints=placed.joints * scale[:, None, None],
        vertices=(placed.vertices * scale[:, None, None]).astype(placed.vertices.dtype),
        wrist=wrist,
        wrist_rotation=placed.wrist_rotation.copy(),
        wrist_quaternion=placed.wrist_quaternion.copy(),
        right_minus_left=wrist[1] - wrist[0],
        depth_from=source,
    )
