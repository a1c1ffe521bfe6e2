"""The network's crops: square boxes in an image, the crop itself, and points and intrinsics
between image and crop (the data sources, the pipeline and the detector all use these).

The DIR crop (facts note): a square around both hands' projected vertices whose side is the
larger extent divided by 0.8, resized to S x S. Pixel convention: pixel i covers [i, i + 1).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

CROP_FILL = 0.8  # the hands' extent fills 80% of the crop side
#: A square box around the 21 joints (or a detector's landmarks) of the hands, made this much
#: larger, is the box around their mesh vertices: DIR is trained and evaluated on vertex boxes at
#: :data:`CROP_FILL` (synthetic data, InterHand2.6M, the release's evaluation), while a detector
#: sees joints. Measured on 600 synthetic two-hand scenes: median 1.165 (p10-p90 1.07-1.26),
#: centres 3% of the side apart (``tests/test_detection.py`` re-measures it).
JOINT_BOX_SCALE = 1.165
#: The fill that gives a joint box the size of the vertex box at :data:`CROP_FILL`.
JOINT_FILL = CROP_FILL / JOINT_BOX_SCALE
#: Fixed crops of method dir (``crop_mode`` detect finds the box with ``detection``).
CROP_MODES: tuple[str, ...] = ("center", "full", "roi")


def square_box(points2d: np.ndarray, fill: float = CROP_FILL, min_side: float = 8.0) -> np.ndarray:
    """Square box around 2D points.

    Args:
        points2d: (N, 2) pixel coordinates (finite values only are used).
        fill: fraction of the side the points' larger extent should fill.
        min_side: lower bound of the side in pixels.
    Returns:
        (3,) float64 ``(cx, cy, side)``.
    """
    p = np.asarray(points2d, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) == 0:
        raise ValueError("square_box needs at least one finite point")
    lo, hi = p.min(axis=0), p.max(axis=0)
    centre = 0.5 * (lo + hi)
    side = max(float((hi - lo).max()) / fill, min_side)
    return np.array([centre[0], centre[1], side])


def box_to_affine(box: np.ndarray, out_size: int) -> np.ndarray:
    """2x3 affine matrix mapping original pixel coordinates into the S x S crop.

    Args:
        box: (3,) ``(cx, cy, side)``.
        out_size: S.
    Returns:
        (2, 3) float64 ``A`` with ``crop_xy = A[:, :2] @ xy + A[:, 2]``.
    """
    cx, cy, side = (float(v) for v in box)
    s = out_size / side
    return np.array([[s, 0.0, out_size / 2.0 - s * cx], [0.0, s, out_size / 2.0 - s * cy]])


def crop_image(image: np.ndarray, box: np.ndarray, out_size: int,
               interpolation: int = cv2.INTER_LINEAR, border_value=0) -> np.ndarray:
    """Cut the square ``box`` out of ``image`` and resize it to ``out_size``; outside is padded.

    Args:
        image: (H, W[, C]) array.
    Returns:
        (S, S[, C]) array of the same dtype.
    """
    a = box_to_affine(box, out_size)
    # warpAffine samples pixel centres at integer coordinates; shift by half a pixel both ways
    a_cv = a.copy()
    a_cv[:, 2] += a[:, :2].sum(axis=1) * 0.5 - 0.5
    return cv2.warpAffine(image, a_cv, (out_size, out_size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def transform_points(points2d: np.ndarray, box: np.ndarray, out_size: int) -> np.ndarray:
    """Map (..., 2) original pixel coordinates into crop pixel coordinates."""
    a = box_to_affine(box, out_size)
    return points2d @ a[:, :2].T + a[:, 2]


def crop_intrinsics(K: np.ndarray, box: np.ndarray, out_size: int) -> np.ndarray:
    """Intrinsics of the crop: ``K_crop @ X`` projects straight into crop pixels.

    Args:
        K: (3, 3) intrinsics of the full image (pixel i covers [i, i + 1) convention).
    Returns:
        (3, 3) float64.
    """
    a = box_to_affine(box, out_size)
    m = np.eye(3)
    m[:2, :] = a
    return m @ np.asarray(K, dtype=np.float64)


def to_normalised(px: np.ndarray, size: int) -> np.ndarray:
    """Crop pixels -> [-1, 1] coordinates (``grid_sample(align_corners=False)`` convention)."""
    return px * (2.0 / size) - 1.0


def from_normalised(uv: np.ndarray, size: int) -> np.ndarray:
    """[-1, 1] coordinates -> crop pixels."""
    return (uv + 1.0) * (size / 2.0)


def crop_box(mode: str, image_width: int, image_height: int,
             roi: Sequence[float] | None = None) -> np.ndarray:
    """The square box fed to the network, ``(cx, cy, side)`` in pixels.

    Modes: "center" = largest centred square (side min(W, H)); "full" = the centred square
    containing the whole image (side max(W, H), padded outside by ``crop_image``); "roi" =
    ``roi`` given as ``(cx, cy, side)``.

    Returns:
        (3,) float64.
    """
    w, h = float(image_width), float(image_height)
    if mode == "center":
        return np.array([w / 2.0, h / 2.0, min(w, h)])
    if mode == "full":
        return np.array([w / 2.0, h / 2.0, max(w, h)])
    if mode == "roi":
        if roi is None:
            raise ValueError("crop mode 'roi' needs roi = (cx, cy, side) in pixels")
        box = np.asarray(roi, dtype=np.float64).reshape(-1)
        if box.size != 3 or not np.isfinite(box).all() or box[2] <= 0:
            raise ValueError(f"roi must be 3 finite values (cx, cy, side) with side > 0, got {list(roi)}")
        return box
    raise ValueError(f"unknown crop mode {mode!r}; expected one of {', '.join(CROP_MODES)}")


def crop_to_frame(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """(N, 2) crop pixels of an S x S crop of ``box`` = (cx, cy, side) -> (N, 2) frame pixels."""
    cx, cy, side = (float(v) for v in box)
    return np.asarray(points, np.float64) * (side / size) + np.array([cx - side / 2, cy - side / 2])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes (4,); 0 when the union is empty."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0
