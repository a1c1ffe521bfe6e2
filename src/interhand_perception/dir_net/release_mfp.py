"""Bone planes of the release variant's multi-plane feature projection.

Like ``mfp.py``'s "bone" mode, every bone of every hand gets its own plane and a cell is
filled when its centre lies closer than ``radius`` cells to the projected 2D bone segment. The
release blends the two endpoint features by the *distances to the endpoints* instead of by the
position along the bone:

``w_parent = 1 - d_p / (d_p + d_c)``, ``w_child = 1 - d_c / (d_p + d_c)``,

with ``d_p = |c - a + eps|``, ``d_c = |c - b + eps|`` (c the cell centre, a/b the parent/child
in cell units, eps = 1e-6 added to each coordinate difference, the convention of
``torch.nn.functional.pairwise_distance`` that the release uses). The segment distance is
``hypot(max(s, t, 0), q)`` with ``s = (a - c).u``, ``t = (c - b).u`` (u the unit bone direction)
and ``q`` the signed perpendicular distance ``(c - a) x u``.

The 2D joints are not detached here (the release lets gradients reach the camera through the
blend weights).
"""
from __future__ import annotations

import torch

from ..hand_model.joints import BONES
from .mfp import cell_centres, to_cells

#: Added to each coordinate difference before the endpoint distances (pairwise_distance's eps).
PAIRWISE_EPS = 1e-6


def bone_distance_weights(a: torch.Tensor, b: torch.Tensor, h: int, w: int,
                          radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend weights of K segments on an (h, w) map, zero outside the footprint.

    Args:
        a, b: (B, K, 2) segment endpoints (parent, child) in cell units.
        h, w: map size; radius: footprint radius in cells (strict ``distance < radius``).
    Returns:
        (w_parent, w_child), each (B, K, h * w).
    """
    c = cell_centres(h, w, a)[None, None]  # (1, 1, P, 2)
    a, b = a[:, :, None, :], b[:, :, None, :]  # (B, K, 1, 2)
    d = b - a
    u = d / torch.linalg.vector_norm(d, dim=-1, keepdim=True)
    s = ((a - c) * u).sum(-1)  # (B, K, P)
    t = ((c - b) * u).sum(-1)
    along = torch.clamp_min(torch.maximum(s, t), 0.0)
    ca = c - a
    perp = ca[..., 0] * u[..., 1] - ca[..., 1] * u[..., 0]
    inside = torch.sqrt(along * along + perp * perp) < radius  # hypot (no ONNX operator for it)
    d_parent = torch.linalg.vector_norm(c - a + PAIRWISE_EPS, dim=-1)
    d_child = torch.linalg.vector_norm(c - b + PAIRWISE_EPS, dim=-1)
    total = d_parent + d_child
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    return (torch.where(inside, 1.0 - d_parent / total, zero),
            torch.where(inside, 1.0 - d_child / total, zero))


def bone_planes(uv: torch.Tensor, feats: torch.Tensor, h: int, w: int, radius: float) -> torch.Tensor:
    """One hand's 20 bone planes.

    Args:
        uv: (B, 21, 2) joints in [-1, 1] crop coordinates; feats: (B, 21, C) joint features.
        h, w: map size; radius: footprint in cells.
    Returns:
        (B, 20 * C, h, w), channel ``k * C + c`` = channel c of bone k (``BONES`` order).
    """
    parent = [p for p, _ in BONES]
    child = [c for _, c in BONES]
    q = to_cells(uv, h, w)
    wa, wb = bone_distance_weights(q[:, parent], q[:, child], h, w, radius)  # (B, K, P)
    planes = wa[:, :, None, :] * feats[:, parent, :, None] + wb[:, :, None, :] * feats[:, child, :, None]
    bsz, k, ch, _ = planes.shape
    return planes.reshape(bsz, k * ch, h, w)


__all__ = ["PAIRWISE_EPS", "bone_distance_weights", "bone_planes"]
