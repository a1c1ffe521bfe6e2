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


#: Colour (RGB) of the crop box the method ran on (DIR's input square, or the detector's crop).
CROP_BOX_COLOUR = (255, 255, 0)


def draw_boxes(image: np.ndarray, crop_box=None, detections=()) -> np.ndarray:
    """The crop box (3,) ``(cx, cy, side)`` in :data:`CROP_BOX_COLOUR` and the detector's hand
    boxes ``[(side, (4,) x0, y0, x1, y1)]`` dashed in their side's colour, on a copy of an
    (H, W, 3) image (pixels of that image)."""
    out = image.copy()
    t = max(1, image.shape[1] // 400)
    if crop_box is not None:
        cx, cy, s = (float(v) for v in crop_box)
        cv2.rectangle(out, (int(cx - s / 2), int(cy - s / 2)), (int(cx + s / 2), int(cy + s / 2)), CROP_BOX_COLOUR, t)
    for side, box in detections:
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        dash = max(4, 4 * t)
        for x in range(x0, x1, 2 * dash):
            for y in (y0, y1):
                cv2.line(out, (x, y), (min(x + dash, x1), y), SIDE_COLOURS[side], t)
        for y in range(y0, y1, 2 * dash):
            for x in (x0, x1):
                cv2.line(out, (x, y), (x, min(y + dash, y1)), SIDE_COLOURS[side], t)
    return out


def _item_width(item, font, fs: float, th: int, scale: float) -> int:
    """Pixels one ``(colour or None, text)`` legend item takes, its gap included."""
    colour, text = item
    swatch = int(round(15 * scale)) if colour is not None else 0
    return swatch + cv2.getTextSize(text, font, fs, th)[0][0] + int(round(14 * scale))


def legend_lines(width: int, rows: list, scale: float = 1.0) -> list:
    """``rows`` of ``(colour or None, text)`` items laid out in lines no wider than ``width``
    pixels: a row's items wrap onto further lines (an item wider than a line keeps one)."""
    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, 0.42 * scale, max(1, int(round(scale)))
    lines = []
    for items in rows:
        line, used = [], int(round(6 * scale))
        for item in items:
            w = _item_width(item, font, fs, th, scale)
            if line and used + w > width:
                lines.append(line)
                line, used = [], int(round(6 * scale))
            line.append(item)
            used += w
        lines.append(line)
    return lines


def legend_strip(width: int, rows: list, scale: float = 1.0, background=(24, 24, 28)) -> np.ndarray:
    """A (h, width, 3) uint8 strip of legend rows, to go under a panel.

    Args:
        rows: each row a list of ``(colour or None, text)`` items drawn left to right, wrapped
            onto further lines when wider than ``width`` (:func:`legend_lines`); a colour draws
            a filled swatch before its text.
        scale: text size (1.0 suits a 360-pixel-high panel).
    """
    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, 0.42 * scale, max(1, int(round(scale)))
    lines = legend_lines(width, rows, scale)
    step = int(round(20 * scale))
    out = np.full((step * len(lines) + int(round(6 * scale)), width, 3), background, np.uint8)
    for r, items in enumerate(lines):
        x, base = int(round(6 * scale)), step * (r + 1) - int(round(4 * scale))
        for colour, text in items:
            if colour is not None:
                sw = int(round(11 * scale))
                cv2.rectangle(out, (x, base - sw), (x + sw, base), tuple(int(c) for c in colour), -1)
                x += sw + int(round(4 * scale))
            cv2.putText(out, text, (x, base), font, fs, (235, 235, 235), th, cv2.LINE_AA)
            x += cv2.getTextSize(text, font, fs, th)[0][0] + int(round(14 * scale))
    return out


def _picture_height(image_shape, height: int, rows: list | None, scale: float) -> int:
    """The picture's height so that picture + legend strip are ``height`` pixels: the strip's
    lines depend on the panel's width, which depends on the picture's height (a few rounds)."""
    if not rows:
        return height
    h_img, w_img = image_shape[:2]
    pic = height
    for _ in range(4):
        width = int(round(w_img * pic / h_img)) + pic
        strip = int(round(20 * scale)) * len(legend_lines(width, rows, scale)) + int(round(6 * scale))
        if pic == height - strip:
            break
        pic = height - strip
    return pic


def panel(image: np.ndarray, vertices: np.ndarray, joints: np.ndarray, valid, faces: dict, K: np.ndarray,
          box=None, height: int = 360, caption: str = "", show_image: bool = True, detections=(),
          legend: list | None = None) -> np.ndarray:
    """[input with hands | side view] over a legend strip (when given), ``height`` pixels in all.

    Args:
        image: (H, W, 3) uint8 RGB; vertices (2, V, 3), joints (2, 21, 3) camera frame, metres;
            valid (2,); faces {side: (F, 3)}; K (3, 3) of ``image``.
        box: (3,) crop box ``(cx, cy, side)`` pixels, drawn when given.
        height: the whole picture's height in pixels, legend included.
        caption: a line in the top-left corner.
        show_image: False draws on a neutral canvas of the image's size instead of the image
            (for pictures of inputs that may not be redistributed).
        detections: the detector's hands ``[(side, (4,) x0, y0, x1, y1)]``, drawn dashed.
        legend: rows for :func:`legend_strip` (None: no legend).
    Returns:
        (height, W', 3) uint8 RGB.
    """
    text_scale = max(0.6, height / 360)
    total, height = height, _picture_height(image.shape, height, legend, text_scale)
    if height < 32:
        raise ValueError(f"height {total} leaves no room for the picture under the legend")
    canvas = image if show_image else np.full_like(image, 215)
    over = draw_boxes(draw_hands(canvas, vertices, joints, valid, faces, K), box, detections)
    scale = height / over.shape[0]
    over = cv2.resize(over, (max(1, int(round(over.shape[1] * scale))), height), interpolation=cv2.INTER_AREA)
    out = np.concatenate([over, side_view(vertices, valid, faces, size=height)], axis=1)
    if caption:
        fs = 0.45 * text_scale
        (tw, th), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
        cv2.rectangle(out, (0, 0), (tw + 10, th + 10), (0, 0, 0), -1)
        cv2.putText(out, caption, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), 1, cv2.LINE_AA)
    if legend:
        out = np.concatenate([out, legend_strip(out.shape[1], legend, text_scale)], axis=0)
    return out
