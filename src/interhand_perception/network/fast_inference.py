"""Inference-only fast paths for DIRNet on the CPU: same function, fewer and cheaper operations.

Why: at batch 1 on a CPU, two parts of the demo network (ResNet-18, 128 px, T = 2) cost far more
than their arithmetic (profiles in docs/cpu_speed.md), in PyTorch eager and in ONNX Runtime alike:

1. **The hand models.** ``DIRNet.decode`` runs the left and right hand models one after the
   other at every stage (3 x 2 calls), each ~100 small tensor operations (Gram-Schmidt,
   Rodrigues, blend shapes, a 15-step kinematic loop, skinning): about a third of the time.
   :class:`BatchedDecoder` computes the same stage dict with the side as a batch axis and the
   linear parts pre-combined: shape and pose blend shapes in one product
   (``[betas, R - I] @ [shapedirs; posedirs]``), rest joints from pre-regressed blend shapes
   (``J @ v_template``, ``J @ shapedirs``), forward kinematics one product per tree level (3
   instead of 15) and skinning as plain matrix products (no ``einsum``, which ONNX Runtime runs
   slowly).
2. **The multi-plane projection with a 1x1 enhancement conv** (``mfp_kernel: 1``, the CPU
   configs). It builds 40 planes x 64 channels per cell and convolves 2560 channels down to
   ``width``. Because the planes are ``weight(cell) x feature(bone)`` and the conv is linear,
   ``conv(planes) = (W . features) @ weights``: the projection of each bone's feature through
   the conv is done once per bone, not once per cell (~60x fewer multiply-adds at 16 x 16).

Both give the network's results to float rounding (~1e-7 m on vertices, checked by
``tests/test_onnx_export.py``). :func:`optimise_for_inference` installs them on a network in
place, as instance attributes: the module tree, the state dict and the checkpoint format are
unchanged, and training code never sees them. The ONNX export uses them too, so the exported
graph is the smaller one.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from ..dir_net.heads import decode_camera, project_weak_perspective
from ..dir_net.mfp import MultiPlaneProjection, cell_centres, segment_weights, to_cells
from ..hand_model.joints import NUM_JOINTS, SIDES, SKIN_TO_OUTPUT
from ..hand_model.lbs import batch_rodrigues, rot6d_to_matrix


def kinematic_levels(parents: tuple[int, ...]) -> list[list[int]]:
    """Joints grouped by depth in the tree (root excluded): [[depth-1 joints], [depth-2], ...]."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return [[j for j in range(len(parents)) if depth[j] == d] for d in range(1, max(depth) + 1)]


def can_batch(hand_models: dict) -> bool:
    """Whether the two hand models share topology (vertices, tree, tips), as MANO and built-in do."""
    left, right = (hand_models[s] for s in SIDES)
    return (left.num_verts == right.num_verts and left.parents_list == right.parents_list
            and bool(torch.equal(left.tip_vertex_ids.cpu(), right.tip_vertex_ids.cpu()))
            and left.num_pca_comps == right.num_pca_comps and left.flat_hand_mean == right.flat_hand_mean)


class BatchedHandLayer(nn.Module):
    """The left and right hand models evaluated together (6D root rotation, PCA pose).

    Args:
        hand_models: {"left": HandModel, "right": HandModel} sharing topology (:func:`can_batch`).
        num_betas: shape values the network predicts (<= the models' number).
    Forward:
        rot6d (B, 2, 6), pca (B, 2, K), betas (B, 2, num_betas), sides ordered ("left", "right")
        -> (vertices (B, 2, V, 3), joints (B, 2, 21, 3)) in the models' frame (not root-relative).
    """

    def __init__(self, hand_models: dict, num_betas: int) -> None:
        super().__init__()
        if not can_batch(hand_models):
            raise ValueError("the left and right hand models differ in topology; they cannot be batched")
        models = [hand_models[s] for s in SIDES]
        ref = models[0]
        dtype, device = ref.v_template.dtype, ref.v_template.device
        self.num_verts, self.num_betas = ref.num_verts, int(num_betas)
        self.levels = kinematic_levels(ref.parents_list)
        self.parents = ref.parents_list

        def stack(fn) -> torch.Tensor:  # per-hand float64 arrays -> (2, ...) in the models' dtype
            return torch.stack([fn(m) for m in models]).to(device=device, dtype=dtype)

        def f64(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(torch.float64)

        nb, v = self.num_betas, ref.num_verts
        # (S + 135, V * 3): rows 0..S-1 shape blend shapes, then the 135 pose correctives.
        self.register_buffer("dirs", stack(lambda m: torch.cat([
            f64(m.shapedirs[..., :nb]).permute(2, 0, 1).reshape(nb, v * 3),
            f64(m.posedirs).permute(2, 0, 1).reshape(-1, v * 3)])), persistent=False)
        self.register_buffer("v_template", stack(lambda m: f64(m.v_template)), persistent=False)
        self.register_buffer("j_template", stack(lambda m: f64(m.J_regressor) @ f64(m.v_template)),
                             persistent=False)  # (2, 16, 3)
        self.register_buffer("j_dirs", stack(lambda m: torch.einsum(
            "jv,vcs->sjc", f64(m.J_regressor), f64(m.shapedirs[..., :nb])).reshape(nb, -1)),
            persistent=False)  # (2, S, 48)
        self.register_buffer("weights", stack(lambda m: f64(m.lbs_weights)), persistent=False)  # (2, V, 16)
        self.register_buffer("components", stack(lambda m: f64(m.hands_components)), persistent=False)
        self.register_buffer("mean", stack(lambda m: f64(m.hands_mean) * (0.0 if m.flat_hand_mean else 1.0)),
                             persistent=False)
        self.register_buffer("tips", ref.tip_vertex_ids.detach().clone().long(), persistent=False)
        self.register_buffer("order", torch.as_tensor(SKIN_TO_OUTPUT, dtype=torch.long, device=device),
                             persistent=False)
        self.register_buffer("eye", torch.eye(3, dtype=dtype, device=device), persistent=False)

    def rotations(self, rot6d: torch.Tensor, pca: torch.Tensor) -> torch.Tensor:
        """(B, 2, 6), (B, 2, K) -> (B, 2, 16, 3, 3) local joint rotations (root first)."""
        k = pca.shape[-1]
        pose = (pca.unsqueeze(-2) @ self.components[:, :k]).squeeze(-2) + self.mean  # (B, 2, 45)
        fingers = batch_rodrigues(pose.reshape(pose.shape[0], 2, -1, 3))  # (B, 2, 15, 3, 3)
        return torch.cat([rot6d_to_matrix(rot6d).unsqueeze(2), fingers], dim=2)

    def kinematics(self, rot: torch.Tensor, rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward kinematics, one product per tree level.

        Args:
            rot: (B, 2, 16, 3, 3) local rotations; rest: (B, 2, 16, 3) rest joints.
        Returns:
            world rotations (B, 2, 16, 3, 3) and posed joints (B, 2, 16, 3), joint order.
        """
        prev, prev_rot, prev_pos = [0], rot[:, :, :1], rest[:, :, :1]
        rots, poss, order = [prev_rot], [prev_pos], [0]
        for level in self.levels:  # every parent of a level lies in the level before
            par = [prev.index(self.parents[j]) for j in level]
            bone = rest[:, :, level] - rest[:, :, [self.parents[j] for j in level]]  # (B, 2, n, 3)
            pr = prev_rot[:, :, par]
            prev_pos = (pr @ bone.unsqueeze(-1)).squeeze(-1) + prev_pos[:, :, par]
            prev_rot, prev = pr @ rot[:, :, level], level
            rots.append(prev_rot)
            poss.append(prev_pos)
            order += level
        back = [order.index(j) for j in range(len(order))]  # level order -> joint order
        return torch.cat(rots, dim=2)[:, :, back], torch.cat(poss, dim=2)[:, :, back]

    def forward(self, rot6d: torch.Tensor, pca: torch.Tensor,
                betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rot = self.rotations(rot6d, pca)
        feats = (rot[:, :, 1:] - self.eye).flatten(2)  # (B, 2, 135)
        coeffs = torch.cat([betas, feats], dim=-1).unsqueeze(-2)  # (B, 2, 1, S + 135)
        v_posed = (coeffs @ self.dirs).reshape(-1, 2, self.num_verts, 3) + self.v_template
        rest = (betas.unsqueeze(-2) @ self.j_dirs).reshape(-1, 2, len(self.parents), 3) + self.j_template
        rot_w, joints16 = self.kinematics(rot, rest)
        transl = joints16 - (rot_w @ rest.unsqueeze(-1)).squeeze(-1)  # (B, 2, 16, 3)
        affine = torch.cat([rot_w, transl.unsqueeze(-1)], dim=-1).flatten(3)  # (B, 2, 16, 12)
        per_vertex = (self.weights @ affine).reshape(-1, 2, self.num_verts, 3, 4)
        verts = (per_vertex[..., :3] * v_posed.unsqueeze(-2)).sum(-1) + per_vertex[..., 3]
        joints = torch.cat([joints16, verts[:, :, self.tips]], dim=2)[:, :, self.order]
        return verts, joints


class BatchedDecoder(nn.Module):
    """Drop-in replacement of ``DIRNet.decode``: parameters -> one stage dict (same keys/shapes).

    Args:
        config: the network's ``DIRConfig`` (parameter layout).
        hand_models: the network's hand models.
    Forward:
        params {side: (B, P)}, offset (B, 3) -> stage dict (see ``DIRNet.forward``).
    """

    def __init__(self, config, hand_models: dict) -> None:
        super().__init__()
        self.slices = config.param_slices
        self.hands = BatchedHandLayer(hand_models, config.num_betas)

    def forward(self, params: dict, offset: torch.Tensor) -> dict:
        sl = self.slices
        p = torch.stack([params[s] for s in SIDES], dim=1)  # (B, 2, P)
        verts, joints = self.hands(p[..., sl["rot6d"]], p[..., sl["pose"]], p[..., sl["betas"]])
        root = joints[:, :, :1]
        joints, verts = joints - root, verts - root
        cam = decode_camera(p[..., sl["camera"]])  # (B, 2, 3)
        out = {"params": params, "offset": offset, "joints": {}, "verts": {}, "joints2d": {},
               "verts2d": {}, "camera": {}}
        for i, s in enumerate(SIDES):
            out["joints"][s], out["verts"][s], out["camera"][s] = joints[:, i], verts[:, i], cam[:, i]
            out["joints2d"][s] = project_weak_perspective(joints[:, i], cam[:, i])
            out["verts2d"][s] = project_weak_perspective(verts[:, i], cam[:, i])
        return out


def install_batched_decode(model: nn.Module) -> bool:
    """Make ``model.decode`` (a DIRNet) the batched decoder, in place; False if not possible.

    The decoder becomes the submodule ``batched_decode`` (it follows ``.to()``; its buffers are
    non-persistent, so ``state_dict`` is unchanged) and the instance attribute ``decode``, which
    ``DIRNet.forward`` and the refinement stages call. Idempotent.
    """
    if "batched_decode" in model._modules:
        return True
    if getattr(model.config, "variant", "project") != "project":  # the release variant decodes differently
        return False
    if not can_batch(dict(model.hand_models.items())):
        return False
    dec = BatchedDecoder(model.config, dict(model.hand_models.items()))
    dtype = next(model.parameters()).dtype
    model.add_module("batched_decode", dec.to(dtype))
    object.__setattr__(model, "decode", dec)  # instance attribute: shadows DIRNet.decode
    return True


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
        diff = (cell_centres(h, w, q)[None, None] - q[:, :, None, :]).abs() / radius
        return torch.relu(1.0 - diff).prod(dim=-1), f
    par = torch.cat([mfp.parent, mfp.parent + NUM_JOINTS])
    chi = torch.cat([mfp.child, mfp.child + NUM_JOINTS])
    wa, wb = segment_weights(q[:, par], q[:, chi], h, w, radius)
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
