"""Composite figures: predictions next to ground truth for a few samples."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..hand_model.joints import SIDES
from .overlay import SIDE_COLOURS, draw_mesh, draw_skeleton, grid, label, overlay_two_hands, side_view


def ground_truth_overlay(sample: dict, faces: dict, alpha: float = 0.6) -> np.ndarray:
    """The sample's true meshes (perspective projection with its crop intrinsics) over its image."""
    out = sample["image"]
    order = np.argsort([-float(sample["verts3d"][i][:, 2].mean()) for i in range(2)])  # far first
    for i in order:
        if not sample["hand_valid"][i]:
            continue
        side = SIDES[i]
        out = draw_mesh(out, sample["verts2d"][i], sample["verts3d"][i][:, 2], faces[side], SIDE_COLOURS[side],
                        alpha, verts3d=sample["verts3d"][i])
        out = draw_skeleton(out, sample["joints2d"][i])
    return out


def prediction_rows(reconstructor, samples: list[dict], tile: int = 192) -> list[list[np.ndarray]]:
    """One row per sample: input | prediction overlay | predicted side view | ground truth."""
    results = reconstructor(np.stack([s["image"] for s in samples]))
    faces = reconstructor.faces
    rows = []
    for s, r in zip(samples, results):
        img = cv2.resize(s["image"], (tile, tile), interpolation=cv2.INTER_LINEAR)
        pred = overlay_two_hands(img, r, faces)
        conf = f"conf L {r.left.confidence:.2f} R {r.right.confidence:.2f}"
        gt_s = dict(s, image=img, verts2d=s["verts2d"] * (tile / s["image"].shape[0]),
                    joints2d=s["joints2d"] * (tile / s["image"].shape[0]))
        rows.append([label(img, "input"), label(pred, "DIR " + conf), label(side_view(r, faces, tile), "side view"),
                     label(ground_truth_overlay(gt_s, faces), "ground truth")])
    return rows


def save_prediction_figure(reconstructor, samples: list[dict], path: str | Path, tile: int = 192) -> Path:
    """Write :func:`prediction_rows` as one PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = grid(prediction_rows(reconstructor, samples, tile))
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path
