"""Does an exported network give what PyTorch gives? (ROS-free)

:func:`check_parity` runs the plain ``HandReconstructor`` and ONNX Runtime on the same held-out
synthetic crops (:func:`parity_images`) and compares every output (:func:`parity_report`)
against :data:`PARITY_TOLERANCE`. ``interhand export onnx`` runs it after every export.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..hand_model.joints import SIDES
from .factory import make_backend
from .reconstructor import HandReconstructor


def parity_images(num: int, img_size: int, seed: int = 0) -> np.ndarray:
    """(num, S, S, 3) uint8 synthetic two-hand crops from the held-out test split."""
    from ..data.synthetic import SyntheticConfig, generate_sample, load_models

    cfg, models = SyntheticConfig(img_size=img_size, seed=seed), load_models()
    return np.stack([generate_sample(i, "test", cfg, models)["image"] for i in range(num)])


def parity_report(reference: Sequence, candidate: Sequence) -> dict[str, float]:
    """Largest absolute differences between two lists of ``TwoHandResult`` (metres, unitless)."""
    keys = {"vertices": "vertices", "joints": "joints", "joints2d_px": "joints2d", "camera": "camera",
            "global_orient": "global_orient", "hand_pose": "hand_pose", "betas": "betas"}
    rep = {k: 0.0 for k in [*keys, "confidence", "offset", "stage_joints"]}
    for a, b in zip(reference, candidate):
        for s in SIDES:
            ha, hb = a.hand(s), b.hand(s)
            for name, attr in keys.items():
                rep[name] = max(rep[name], float(np.abs(getattr(ha, attr) - getattr(hb, attr)).max()))
            rep["confidence"] = max(rep["confidence"], abs(ha.confidence - hb.confidence))
            for ja, jb in zip(a.stage_joints, b.stage_joints):
                rep["stage_joints"] = max(rep["stage_joints"], float(np.abs(ja[s] - jb[s]).max()))
        rep["offset"] = max(rep["offset"], float(np.abs(a.offset - b.offset).max()))
    return rep


#: Bounds of :func:`check_parity` (metres for 3D, pixels for 2D, radians for poses).
PARITY_TOLERANCE = {"vertices": 1e-4, "joints": 1e-4, "offset": 1e-4, "stage_joints": 1e-4,
                    "joints2d_px": 1e-2, "confidence": 1e-4, "camera": 1e-3, "global_orient": 1e-3,
                    "hand_pose": 1e-3, "betas": 1e-3}


def check_parity(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike, num_images: int = 4,
                 mano_dir: str | None = None, threads: int | None = None) -> tuple[dict[str, float], bool]:
    """PyTorch (plain ``HandReconstructor``) vs ONNX Runtime on synthetic crops.

    Returns:
        (largest differences per quantity, whether all are within :data:`PARITY_TOLERANCE`).
    """
    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu", mano_dir=mano_dir)
    ort_backend = make_backend("onnxruntime", checkpoint, device="cpu", onnx_path=onnx_path,
                               threads=threads, mano_dir=mano_dir)
    images = parity_images(num_images, rec.img_size)
    rep = parity_report(rec(images), ort_backend(images))
    return rep, all(rep[k] <= tol for k, tol in PARITY_TOLERANCE.items())
