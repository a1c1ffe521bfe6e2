"""Inference-only fast paths for DIRNet on the CPU: same function, fewer and cheaper operations.

Why: at batch 1 on a CPU, two parts of the demo network (ResNet-18, 128 px, T = 2) cost far more
than their arithmetic (profiles in docs/cpu_speed.md), in PyTorch eager and in ONNX Runtime alike:

1. **The hand models.** ``DIRNet.decode`` used to run the left and right hand models one after
   the other at every stage (3 x 2 calls), each ~100 small tensor operations: about a third of
   the time. Since issue 13 the network itself decodes both sides in one call of
   ``hand_model.layer.HandPair`` (the side a batch axis, linear parts pre-combined, forward
   kinematics one product per tree level, skinning as plain matrix products); this module only
   reports it (:func:`install_batched_decode`).
2. **The multi-plane projection with a 1x1 enhancement conv** (``mfp_kernel: 1``, the CPU
   configs). It builds 40 planes x 64 channels per cell and convolves 2560 channels down to
   ``width``. Because the planes are ``weight(cell) x feature(bone)`` and the conv is linear,
   ``conv(planes) = (W . features) @ weights``: the projection of each bone's feature through
   the conv is done once per bone, not once per cell (~60x fewer multiply-adds at 16 x 16).

Both give the network's results to float rounding (~1e-7 m on vertices, checked by
``tests/test_onnx_export.py``). :func:`optimise_for_inference` installs the second on a network in
place, as an instance attribute: the module tree, the state dict and the checkpoint format are
unchanged, and training code never sees them. The ONNX export uses them too, so the exported
graph is the smaller one.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from ..dir_net.mfp import MultiPlaneProjection, point_weights, segment_weights, to_cells
from ..hand_model.joints import SIDES


def install_batched_decode(model: nn.Module) -> bool:
    """Whether ``model`` decodes both hands in one batched hand-model call; False if not possible.

    Both variants of DIRNet do this themselves since issue 13 (``DIRNet.hand_pair``, a
    ``hand_model.layer.HandPair`` built with the network): nothing is installed any more, and a
    network whose hand models cannot be paired (``DIRNet.decode_each``) reports False.
    """
    return getattr(model, "hand_pair", None) is not None


# ----------------------------------------------------------------------------- MFP, 1x1 conv
def factorisable(mfp: nn.Module) -> bool:
    """Whether an MFP module's first enhancement conv is 1x1 and its planes are per bone/joint."""
    conv = mfp.enhance[0]
    return (isinstance(mfp, MultiPlaneProjection) and mfp.mode in ("bone", "joint")
            and tuple(conv.kernel_size) == (1, 1) and conv.groups == 1)


def _splat_weights(mfp: MultiPlaneProjection, joints2d: dict, feats: dict, h: int, w: int,
                   radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-plane cell weights (B, N, h * w) and features (B, N, C), N planes' worth of terms.

    Bone mode: both segment ends as separate terms (N = 2 x 40); joint mode: N = 42.
    """
    q = torch.cat([to_cells(joints2d[s].detach(), h, w) for s in SIDES], dim=1)  # (B, 42, 2)
    f = torch.cat([feats[s] for s in SIDES], dim=1)  # (B, 42, C)
    if mfp.mode == "joint":
        return point_weights(q, h, w, radius, mfp.centres), f
    par, chi = mfp.bone_parent, mfp.bone_child  # (40,) bone ends of both hands
    wa, wb = segment_weights(q[:, par], q[:, chi], h, w, radius, mfp.centres)
    return torch.cat([wa, wb], dim=1), torch.cat([f[:, par], f[:, chi]], dim=1)


def factorised_mfp_forward(mfp: MultiPlaneProjection, fmap: torch.Tensor, joints2d: dict, feats: dict,
                           radius: float, size: tuple[int, int]) -> torch.Tensor:
    """``MultiPlaneProjection.forward`` for a 1x1 first conv, without materialising the planes.

    ``conv(planes)[o, p] = b[o] + sum_n (sum_c W[o, plane(n), c] f[n, c]) * weight[n, p]``.
    Same arguments and result as the module's forward: (B, width, h, w).
    """
    h, w = size
    conv = mfp.enhance[0]
    weights, f = _splat_weights(mfp, joints2d, feats, h, w, radius)  # (B, N, P), (B, N, C)
    bsz, n, c = f.shape
    planes = conv.in_channels // c
    ends = n // planes  # 2 in bone mode (both ends of a bone share its plane), 1 in joint mode
    kernel = conv.weight.reshape(conv.out_channels, planes, c).transpose(0, 1)  # (planes, O, C), a view
    fk = f.reshape(bsz, ends, planes, c).permute(2, 3, 1, 0).reshape(planes, c, ends * bsz)
    proj = (kernel @ fk).reshape(planes, -1, ends, bsz)  # (planes, O, ends, B)
    proj = proj.permute(3, 1, 2, 0).reshape(bsz, -1, n)  # (B, O, N), N ordered end-major like weights
    out = proj @ weights  # (B, O, P)
    if conv.bias is not None:
        out = out + conv.bias[:, None]
    out = out.reshape(out.shape[0], -1, h, w)
    return fmap + mfp.enhance[1:](out)


def install_factorised_mfp(model: nn.Module) -> int:
    """Use :func:`factorised_mfp_forward` for every factorisable MFP of ``model``; returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, MultiPlaneProjection) and factorisable(module):
            object.__setattr__(module, "forward", functools.partial(factorised_mfp_forward, module))
            count += 1
    return count


def optimise_for_inference(model: nn.Module) -> list[str]:
    """Install every applicable fast path on a DIRNet in place; returns their names.

    Call it on a network in eval mode whose weights are loaded (the fast paths read the weights
    at every call, so a later ``load_state_dict`` is still honoured).
    """
    done = []
    if install_batched_decode(model):
        done.append("batched_decode")
    if install_factorised_mfp(model):
        done.append("factorised_mfp")
    return done
