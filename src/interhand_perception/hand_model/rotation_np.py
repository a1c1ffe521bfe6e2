"""Numpy front-ends to the rotation maths of :mod:`hand_model.lbs` (one implementation for all).

Data generation and loading work in numpy; these wrap the torch functions (float64) so that
every part of the project converts rotations the same way, accurately near 0 and pi.
"""
from __future__ import annotations

import numpy as np
import torch

from . import lbs


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (float64)."""
    a = np.asarray(aa, dtype=np.float64)
    return lbs.batch_rodrigues(torch.from_numpy(a.reshape(-1, 3).copy())).numpy().reshape(a.shape[:-1] + (3, 3))


def matrix_to_axis_angle(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle (float64), angles in [0, pi]."""
    r = np.asarray(rot, dtype=np.float64)
    return lbs.matrix_to_axis_angle(torch.from_numpy(r.reshape(-1, 3, 3).copy())).numpy().reshape(r.shape[:-2] + (3,))


def axis_angle_to_quaternion(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 4) unit quaternions ``(w, x, y, z)`` with ``w >= 0`` (float64)."""
    rot = torch.from_numpy(axis_angle_to_matrix(aa).reshape(-1, 3, 3))
    a = np.asarray(aa)
    return lbs.matrix_to_quaternion(rot).numpy().reshape(a.shape[:-1] + (4,))
