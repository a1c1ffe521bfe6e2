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

from ..hand_model.joints import BONES, NUM_JOINTS
from .mfp import centres_for, to_cells

#: Added to each coordinate difference before the endpoint distances (pairwise_distance's eps).
PAIRWISE_EPS = 1e-6


def bone_distance_weights(a: torch.Tensor, b: torch.Tensor, h: int, w: int, radius: float,
                          centres: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend weights of K segments on an (h, w) map, zero outside the footprint.

    Args:
        a, b: (B, K, 2) segment endpoints (parent, child) in cell units.
        h, w: map size; radius: footprint radius in cells (strict ``distance < radius``).
        centres: optional (h * w, 2) cell centres (a module buffer); None builds them.
    Returns:
        (w_parent, w_child), each (B, K, h * w).
    """
    c = centres_for(centres, h, w, a)[None, None]  # (1, 1, P, 2)
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
    zero = torch.zeros_like(total)
    return (torch.where(inside, 1.0 - d_parent / total, zero),
            torch.where(inside, 1.0 - d_child / total, zero))


def bone_index(hands: int = 1) -> tuple[list[int], list[int]]:
    """(parents, children) of the bones of ``hands`` hands whose joints are concatenated
    (hand k's joint j at ``21 k + j``), hand-major, ``BONES`` order within a hand. 20 per hand."""
    parent = [p + NUM_JOINTS * k for k in range(hands) for p, _ in BONES]
    child = [c + NUM_JOINTS * k for k in range(hands) for _, c in BONES]
    return parent, child


def bone_planes(uv: torch.Tensor, feats: torch.Tensor, h: int, w: int, radius: float,
                parent: torch.Tensor | None = None, child: torch.Tensor | None = None,
                centres: torch.Tensor | None = None) -> torch.Tensor:
    """Bone planes of one or more hands.

    Args:
        uv: (B, N, 2) joints in [-1, 1] crop coordinates (N = 21 for one hand, 42 for both);
        feats: (B, N, C) joint features; h, w: map size; radius: footprint in cells.
        parent, child: (K,) long bone-end indices into the N joints (:func:`bone_index`, as
            module buffers); None: one hand's 20 bones, built here (a host-to-device copy).
        centres: optional (h * w, 2) cell centres.
    Returns:
        (B, K * C, h, w), channel ``k * C + c`` = channel c of bone k.
    """
    if parent is None or child is None:
        parent, child = (torch.as_tensor(i, device=uv.device) for i in bone_index(1))
    q = to_cells(uv, h, w)
    wa, wb = bone_distance_weights(q[:, parent], q[:, child], h, w, radius, centres)  # (B, K, P)
    planes = wa[:, :, None, :] * feats[:, parent, :, None] + wb[:, :, None, :] * feats[:, child, :, None]
    bsz, k, ch, _ = planes.shape
    return planes.reshape(bsz, k * ch, h, w)


__all__ = ["PAIRWISE_EPS", "bone_distance_weights", "bone_index", "bone_planes"]
