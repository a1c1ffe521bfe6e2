"""Hands placed in the camera frame, drawn over the full camera image and from the side.

Unlike ``overlay.py`` (DIR's crop and weak perspective), these take metric hands in the camera
frame (``pipeline.placement.PlacedHands`` or plain arrays) and project them with the real
intrinsics, so a picture shows exactly what the node publishes.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..hand_model.joints import SIDES
from .overlay import SIDE_COLOURS, draw_mesh, draw_skeleton



def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixels with the 3x3 intrinsics K (z clamped > 0)."""
    q = np.asarray(points, np.float64) @ np.asarray(K, np.float64).T
    return q[:, :2] / np.maximum(q[:, 2:3], 1e-6)


def draw_hands(image: np.ndarray, vertices: np.ndarray, joints: np.ndarray, valid, faces: dict,
               K: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Meshes and skeletons of the valid hands over an RGB image, farther hand first.

    Args:
        image: (H, W, 3) uint8 RGB (not modified).
        vertices: (2, V, 3) and joints: (2, 21, 3) camera frame, metres, [left, right].
        valid: (2,) bool.
        faces: {side: (F, 3)}.
        K: (3, 3) intrinsics of ``image``.
    """
    out = image
    order = sorted((i for i in range(2) if valid[i]), key=lambda i: -float(np.mean(vertices[i][:, 2])))
    for i in order:
        v = np.asarray(vertices[i], np.float64)
        out = draw_mesh(out, project(v, K), v[:, 2], faces[SIDES[i]], SIDE_COLOURS[SIDES[i]], alpha, verts3d=v)
    for i in order:
        out = draw_skeleton(out, project(joints[i], K), radius=max(1, image.shape[1] // 320))
    return out


def side_view(vertices: np.ndarray, valid, faces: dict, size: int = 256, yaw_deg: float = 90.0,
              background=(40, 40, 48)) -> np.ndarray:
    """The valid hands seen from the camera's right (rotated ``yaw_deg`` about its y axis),
    in their placed relative position. vertices: (2, V, 3) camera frame."""
    img = np.full((size, size, 3), background, np.uint8)
    idx = [i for i in range(2) if valid[i]]
    if not idx:
        return img
    t = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    pts = {i: np.asarray(vertices[i], np.float64) @ rot.T for i in idx}
    allv = np.concatenate(list(pts.values()))
    centre = 0.5 * (allv.min(axis=0) + allv.max(axis=0))
    k = 0.8 * size / max(float((allv.max(axis=0) - allv.min(axis=0))[:2].max()), 1e-3)
    for i in sorted(idx, key=lambda j: -float(pts[j][:, 2].mean())):
        v = pts[i] - centre
        img = draw_mesh(img, v[:, :2] * k + size / 2.0, v[:, 2], faces[SIDES[i]], SIDE_COLOURS[SIDES[i]], 1.0, verts3d=v)
    return img


def panel(image: np.ndarray, vertices: np.ndarray, joints: np.ndarray, valid, faces: dict, K: np.ndarray,
          box=None, height: int = 360, caption: str = "", show_image: bool = True) -> np.ndarray:
    """[input with hands | side view] at a given height; the crop box drawn when given.

    ``show_image=False`` draws on a neutral canvas of the image's size instead of the image (for
    pictures of inputs that may not be redistributed)."""
    canvas = image if show_image else np.full_like(image, 215)
    over = draw_hands(canvas, vertices, joints, valid, faces, K)
    if box is not None:
        cx, cy, s = (float(v) for v in box)
        cv2.rectangle(over, (int(cx - s / 2), int(cy - s / 2)), (int(cx + s / 2), int(cy + s / 2)), (255, 255, 0),
                      max(1, image.shape[1] // 400))
    scale = height / over.shape[0]
    over = cv2.resize(over, (max(1, int(round(over.shape[1] * scale))), height), interpolation=cv2.INTER_AREA)
    out = np.concatenate([over, side_view(vertices, valid, faces, size=height)], axis=1)
    if caption:
        (tw, th), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(out, (0, 0), (tw + 10, th + 10), (0, 0, 0), -1)
        cv2.putText(out, caption, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out
