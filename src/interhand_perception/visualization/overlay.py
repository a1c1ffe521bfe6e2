"""Pictures of reconstructions: meshes and skeletons drawn over images, and side views.

Meshes are drawn with the painter's algorithm (faces sorted far to near, flat Lambert shading)
using OpenCV polygon fills: no GPU, no OpenGL, a few milliseconds per hand.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..hand_model.joints import BONES

#: Colours (RGB) per side: left blue, right orange, the project's convention everywhere.
SIDE_COLOURS = {"left": (70, 130, 255), "right": (255, 140, 40)}
FINGER_COLOURS = [(255, 255, 255), (255, 80, 80), (80, 220, 80), (80, 160, 255), (255, 220, 60), (220, 90, 255)]


def draw_mesh(image: np.ndarray, verts2d: np.ndarray, depth: np.ndarray, faces: np.ndarray,
              colour, alpha: float = 0.6, light=(0.3, -0.4, -0.85), verts3d: np.ndarray | None = None) -> np.ndarray:
    """Draw a shaded mesh over an RGB image.

    Args:
        image: (H, W, 3) uint8 RGB (not modified).
        verts2d: (V, 2) pixel coordinates.
        depth: (V,) distance along the viewing direction (larger = farther).
        faces: (F, 3) int.
        colour: RGB base colour.
        alpha: opacity of the mesh layer.
        light: direction towards the light in the camera frame (x right, y down, z forward).
        verts3d: (V, 3) for shading; None shades from (verts2d, depth).
    Returns:
        (H, W, 3) uint8 RGB.
    """
    v3 = verts3d if verts3d is not None else np.concatenate([verts2d, depth[:, None]], axis=1)
    tri = v3[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    lvec = np.asarray(light, dtype=np.float64)
    lvec /= np.linalg.norm(lvec)
    shade = 0.35 + 0.65 * np.abs(n @ lvec)  # two-sided
    order = np.argsort(-depth[faces].mean(axis=1))  # far first
    layer = image.copy()
    pts = np.round(verts2d[faces] * 16).astype(np.int32)  # 4 fractional bits
    base = np.asarray(colour, dtype=np.float64)
    finite = np.isfinite(verts2d[faces]).all(axis=(1, 2))
    for f in order:
        if not finite[f]:
            continue
        c = tuple(int(x) for x in np.clip(base * shade[f], 0, 255))
        cv2.fillConvexPoly(layer, pts[f], c, lineType=cv2.LINE_8, shift=4)  # AA would leave seams
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [p for p, ok in zip(pts, finite) if ok], 1, shift=4)
    out = image.copy()
    m = mask.astype(bool)
    out[m] = (alpha * layer[m] + (1 - alpha) * image[m]).astype(np.uint8)
    return out


def draw_skeleton(image: np.ndarray, joints2d: np.ndarray, colour=None, radius: int = 2,
                  thickness: int = 1) -> np.ndarray:
    """Draw the 21-joint skeleton (bones coloured per finger unless ``colour`` is given)."""
    out = image.copy()
    for k, (p, c) in enumerate(BONES):
        a, b = joints2d[p], joints2d[c]
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        col = colour or FINGER_COLOURS[1 + k // 4]
        cv2.line(out, tuple(int(round(x)) for x in a), tuple(int(round(x)) for x in b), col, thickness, cv2.LINE_AA)
    for j in joints2d:
        if np.isfinite(j).all():
            cv2.circle(out, tuple(int(round(x)) for x in j), radius, colour or (255, 255, 255), -1, cv2.LINE_AA)
    return out


def weak_perspective_to_pixels(xyz: np.ndarray, camera: np.ndarray, size: int) -> np.ndarray:
    """(N, 3) wrist-relative metres -> (N, 2) crop pixels with ``uv = s * xy + t``."""
    s, tx, ty = camera
    uv = s * xyz[:, :2] + np.array([tx, ty])
    return (uv + 1.0) * (size / 2.0)


def overlay_two_hands(image: np.ndarray, result, faces: dict, alpha: float = 0.6,
                      skeleton: bool = True) -> np.ndarray:
    """Both predicted meshes over the crop they were predicted from.

    Args:
        image: (S', S', 3) uint8 RGB crop (any size; points are rescaled from the network size).
        result: ``network.TwoHandResult``.
        faces: ``{side: (F, 3)}``.
    """
    scale = image.shape[0] / result.crop_size
    out = image
    hands = [result.left, result.right]
    # draw the farther hand first: the right wrist sits at +offset from the left one
    if result.offset[2] > 0:
        hands = hands[::-1]
    for h in hands:
        if not h.confidence >= 0:  # NaN guard
            continue
        v2 = weak_perspective_to_pixels(h.vertices, h.camera, result.crop_size) * scale
        out = draw_mesh(out, v2, h.vertices[:, 2], faces[h.side], SIDE_COLOURS[h.side], alpha, verts3d=h.vertices)
        if skeleton:
            j2 = weak_perspective_to_pixels(h.joints, h.camera, result.crop_size) * scale
            out = draw_skeleton(out, j2)
    return out


def side_view(result, faces: dict, size: int = 256, yaw_deg: float = 90.0,
              background=(40, 40, 48)) -> np.ndarray:
    """Both hands seen from the side (rotated ``yaw_deg`` about the camera's vertical axis).

    The left hand's wrist is at the origin and the right hand's at ``offset``, so the picture
    shows the predicted relative placement of the two hands.
    """
    t = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    pts = {"left": result.left.vertices, "right": result.right.vertices + result.offset}
    allv = np.concatenate(list(pts.values())) @ rot.T
    centre = 0.5 * (allv.min(axis=0) + allv.max(axis=0))
    extent = max(float((allv.max(axis=0) - allv.min(axis=0))[:2].max()), 1e-3)
    k = 0.8 * size / extent
    img = np.full((size, size, 3), background, np.uint8)
    depth_order = sorted(pts, key=lambda s: -float((pts[s] @ rot.T)[:, 2].mean()))
    for side in depth_order:
        v = pts[side] @ rot.T - centre
        v2 = v[:, :2] * k + size / 2.0
        img = draw_mesh(img, v2, v[:, 2], faces[side], SIDE_COLOURS[side], alpha=1.0, verts3d=v)
    return img


def label(image: np.ndarray, text: str) -> np.ndarray:
    """Write a small caption in the top-left corner."""
    out = image.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(rows: list[list[np.ndarray]], pad: int = 2, fill=(255, 255, 255)) -> np.ndarray:
    """Tile equally sized RGB images into one picture."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), fill, np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            if im.shape[:2] != (h, w):
                im = cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)
            out[pad + i * (h + pad): pad + i * (h + pad) + h, pad + j * (w + pad): pad + j * (w + pad) + w] = im
    return out
