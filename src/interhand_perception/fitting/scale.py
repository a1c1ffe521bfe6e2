"""The hand model's metric size and the world landmarks' scale (torch, float64).

A single camera sees a hand's size and its distance only as their ratio. The keypoint fit
takes the metric size from the hand model, held at the mean adult hand by a prior on the sum
of its 20 rest bone lengths ``L(b)`` (:func:`metric_size_prior`), and estimates the scale of
MediaPipe's world landmarks instead of trusting it (:func:`world_scale_start` gives its start).
``L(b) = sum_k |B_k + D_k b|`` with ``B_k`` the rest bones at zero betas and ``D_k`` their
shape directions, so ``dL/db = sum_k u_k^T D_k`` with ``u_k`` the unit bones.
"""
from __future__ import annotations

import torch

from ..hand_model.joints import JOINT_PARENTS
from .twist_swing import OUTPUT_FROM_CAT, HandSkeleton, rest_points

_PARENTS = list(JOINT_PARENTS[1:])


def bone_lengths(points: torch.Tensor) -> torch.Tensor:
    """(B, 20) lengths of the 20 bones of (B, 21, 3) points in ``JOINT_NAMES`` order."""
    return (points[:, 1:] - points[:, _PARENTS]).norm(dim=-1)


def model_size(sk: HandSkeleton, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The hand model's size ``L(b)``, the sum of its 20 rest bone lengths (B,) (m), at betas
    (B, S), and its derivative (B, S)."""
    s = betas.shape[-1]
    rest, tips = rest_points(sk, betas)
    pts = torch.cat([rest, tips], dim=1)[:, OUTPUT_FROM_CAT]
    dirs = torch.cat([sk.j_dirs[..., :s], sk.tip_dirs[..., :s]], dim=0)[OUTPUT_FROM_CAT]     # (21, 3, S)
    bones = pts[:, 1:] - pts[:, _PARENTS]
    unit = bones / bones.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return bones.norm(dim=-1).sum(-1), torch.einsum("bkc,kcs->bs", unit, dirs[1:] - dirs[_PARENTS])


def mean_size(sk: HandSkeleton) -> torch.Tensor:
    """``L(0)`` (scalar tensor, m): the size of the model at zero betas."""
    return bone_lengths(torch.cat([sk.j_template, sk.tip_template])[OUTPUT_FROM_CAT][None])[0].sum()


def metric_size_prior(sk: HandSkeleton, betas: torch.Tensor, sigma: float
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Residual (B,) ``(L(b) / L(0) - 1) / sigma`` keeping the model at the mean hand's size
    (its metric scale sets the depth), and its derivative (B, S) w.r.t. the betas (B, S);
    None when ``sigma`` is 0 (no prior)."""
    if sigma <= 0:
        return None
    size, d_size = model_size(sk, betas)
    size0 = mean_size(sk)
    return (size / size0 - 1.0) / sigma, d_size / (size0 * sigma)


def world_scale_start(sk: HandSkeleton, world: torch.Tensor) -> torch.Tensor:
    """(B,) factor taking the world landmarks (B, 21, 3) to the hand model's size at zero
    betas: ``L(0)`` / their summed bone lengths (the start of the scale ``k_w``)."""
    return mean_size(sk) / bone_lengths(world).sum(-1).clamp_min(1e-6)
