"""Analytic inverse kinematics of the 16-joint hand by twist-swing decomposition.

Skeleton. A :class:`HandSkeleton` holds only what the 21 output joints need from a hand model
(MANO or built-in, any vertex count): the shaped rest joints ``J(b) = J_0 + D_J b`` (the joint
regressor applied to the template and to the shape blend shapes: linear in the betas ``b``),
the five fingertip vertices with their shape, pose-corrective and skinning rows, and the
kinematic tree. :func:`forward_kinematics` poses it exactly as :class:`HandModel` does, without
touching the other vertices: ``G_0 = R_0``, ``G_j = G_p R_j``, ``p_0 = J_0`` (the root turns
about the rest wrist), ``p_j = p_p + G_p (J_j - J_p)``, and a tip
``t = sum_j w_j (G_j (v - J_j) + p_j)`` with ``v`` its shaped, pose-corrected rest position.

Inverse kinematics (the seed's twist-swing mapping from joints to pose). Targets are 21
wrist-relative points ``X`` in the output order; every non-root skinning joint ``j`` has one
child ``c`` (the next joint or the fingertip) and a rest bone ``a_j = J_c - J_j``.

1. Root: the wrist and the finger bases are rigid with the root, so
   ``R_0 = argmin sum_i |R J'_i - X'_i|^2`` over i in {wrist, index, middle, ring, little MCP},
   primes marking centred points (Kabsch: ``H = sum_i J'_i X'_i^T = U S V^T``,
   ``R_0 = V diag(1, 1, det(V U^T)) U^T``).
2. Down the tree, level by level (the five fingers at once), with the parent's global rotation
   ``G_p`` known: the bone target in the joint's rest frame is ``d = G_p^T (X_c - X_j)``, and
   ``R_j = S(a, d) T(a, psi)``, a *swing* ``S`` (the smallest rotation taking the unit ``a`` to
   the unit ``d``: ``S = I + [a x d] + [a x d]^2 / (1 + a.d)``) after a *twist* ``T`` about
   ``a`` itself (which leaves the bone where the swing put it).
3. The twist is not visible in the bone, so it comes from a reference. With the joint's hinge
   (flexion) axis ``h`` (the axis of its mean-pose rotation; for the built-in hand within 1
   degree of the pose prior's flexion axes, see ``pose_prior.joint_axes``), ``l`` = ``h``
   made orthogonal to ``a`` and the dorsal axis ``n = a x l``, the rotation is written as a
   flexion after an abduction, ``R_j = Rot(l, f) Rot(n, alpha)``, which has no Euler twist
   (the pose prior's parameterisation with twist 0). Since
   ``R_j a = cos(alpha) (cos(f) a - sin(f) n) + sin(alpha) l``, the unit target ``d`` gives
   ``alpha = asin(d.l)``, ``f = atan2(-d.n, d.a)`` in closed form; this equals the swing
   followed by a twist about ``a``. Joints without a hinge (zero mean pose) keep the pure
   swing (``twist="zero"`` everywhere: the rotation closest to the identity).

Bone directions are then reproduced exactly; positions are exact when the bone lengths are
(:func:`fit_betas_to_bones` fits the betas to the target bone lengths by Gauss-Newton on
``sum_k (|B_k(b)| - L_k)^2 / s_L^2 + |b|^2 / s_b^2``, ``B_k`` linear in ``b``).

Rotations act on column vectors. Poses here are *full* local rotations (the model's mean pose
included); :func:`model_hand_pose` converts them to the ``hand_pose`` a ``HandModel`` with
``pose_type="axis_angle"`` expects (it subtracts ``hands_mean`` unless ``flat_hand_mean``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..hand_model import lbs as L
from ..hand_model.joints import JOINT_NAMES, JOINT_PARENTS, NUM_SKIN_JOINTS, SKIN_TO_OUTPUT

#: Output joints whose positions fix the root rotation (rigid with the wrist).
PALM_JOINTS: tuple[int, ...] = tuple(JOINT_NAMES.index(f"{f}_mcp") for f in
                                     ("index", "middle", "ring", "little"))
#: ``out = cat[:, OUTPUT_FROM_CAT]`` reorders (16 skinning joints + 5 tips) into the output
#: order; ``CAT_TO_OUTPUT[c]`` is the output index of concatenated index c (int64 tensors).
OUTPUT_FROM_CAT = torch.as_tensor(SKIN_TO_OUTPUT)
CAT_TO_OUTPUT = torch.as_tensor(np.argsort(SKIN_TO_OUTPUT))
#: Twist references of :func:`twist_swing_ik`.
TWISTS: tuple[str, ...] = ("anatomical", "zero")


@dataclass(frozen=True)
class HandSkeleton:
    """The joint-only part of a hand model (float tensors, S betas, P pose correctives).

    Attributes:
        side: "left" or "right".
        j_template: (16, 3) rest joints at zero betas.
        j_dirs: (16, 3, S) rest-joint shape directions.
        tip_template: (5, 3) rest fingertip vertices (thumb, index, middle, ring, little).
        tip_dirs: (5, 3, S) their shape directions.
        tip_posedirs: (5, 3, P) their pose correctives.
        tip_weights: (5, 16) their skinning weights.
        hinge: (15, 3) unit flexion axis of joints 1..15 in the rest frame (0 if unknown).
        hands_mean: (45,) the model's mean pose.
        flat_hand_mean: the model's setting (see :func:`model_hand_pose`).
        parents: (16,) kinematic tree (MANO order).
        children: (16,) concatenated index of each joint's child (-1 for the root).
        levels: per depth in the tree (parents first), int64 index tensors of the joints,
            their parents and their children (concatenated indices).
        ancestors: (16, 16) ``A[i, k] = 1`` if joint k is a proper ancestor of joint i.
    """

    side: str
    j_template: torch.Tensor
    j_dirs: torch.Tensor
    tip_template: torch.Tensor
    tip_dirs: torch.Tensor
    tip_posedirs: torch.Tensor
    tip_weights: torch.Tensor
    hinge: torch.Tensor
    hands_mean: torch.Tensor
    flat_hand_mean: bool
    parents: tuple[int, ...]
    children: tuple[int, ...]
    levels: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]
    ancestors: torch.Tensor


def ancestor_matrix(parents: tuple[int, ...], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(J, J) matrix ``A[i, k] = 1`` if joint k is a proper ancestor of joint i."""
    a = torch.zeros(len(parents), len(parents), dtype=dtype)
    for i in range(1, len(parents)):
        a[i] = a[parents[i]]
        a[i, parents[i]] = 1.0
    return a


def skeleton_children() -> tuple[int, ...]:
    """Concatenated index of the child of each skinning joint, from the 21-joint tree."""
    out_to_cat = SKIN_TO_OUTPUT
    children = [-1] * NUM_SKIN_JOINTS
    for o, p in enumerate(JOINT_PARENTS):
        if p > 0:   # children of the wrist are the five finger bases (several): not needed
            children[int(out_to_cat[p])] = int(out_to_cat[o])
    return tuple(children)


def skeleton_from_model(model, dtype: torch.dtype = torch.float64, device: str | None = None,
                        min_hinge_angle: float = 0.1) -> HandSkeleton:
    """Extract the :class:`HandSkeleton` of a ``HandModel`` (copies).

    Args:
        model: a ``HandModel``.
        dtype, device: of the skeleton tensors (device None: the model's).
        min_hinge_angle: mean-pose rotations smaller than this (rad) give no hinge axis.
    """
    def f(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device=device or t.device, dtype=dtype)

    jr, shapedirs = f(model.J_regressor), f(model.shapedirs)
    tips = model.tip_vertex_ids.to(jr.device)
    parents = tuple(int(p) for p in model.parents_list)
    children = skeleton_children()
    for o, p in enumerate(JOINT_PARENTS):
        c = int(SKIN_TO_OUTPUT[o])
        if 0 < c < NUM_SKIN_JOINTS and parents[c] != int(SKIN_TO_OUTPUT[p]):
            raise ValueError(f"model tree {parents} does not match the 21-joint tree")
    mean = f(model.hands_mean).reshape(15, 3)
    angle = mean.norm(dim=-1, keepdim=True)
    hinge = torch.where(angle > min_hinge_angle, mean / angle.clamp_min(1e-9), torch.zeros_like(mean))
    return HandSkeleton(
        side=model.side, j_template=jr @ f(model.v_template),
        j_dirs=torch.einsum("jv,vcs->jcs", jr, shapedirs),
        tip_template=f(model.v_template)[tips], tip_dirs=shapedirs[tips],
        tip_posedirs=f(model.posedirs)[tips], tip_weights=f(model.lbs_weights)[tips],
        hinge=hinge, hands_mean=f(model.hands_mean), flat_hand_mean=bool(model.flat_hand_mean),
        parents=parents, children=children,
        levels=tuple(tuple(torch.tensor([idx[j] for j in level], device=jr.device)
                           for idx in (range(NUM_SKIN_JOINTS), parents, children))
                     for level in L.kinematic_levels(parents)),
        ancestors=ancestor_matrix(parents, dtype).to(jr.device))


def rest_points(sk: HandSkeleton, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shaped rest joints (B, 16, 3) and rest fingertips (B, 5, 3) for betas (B, S)."""
    s = betas.shape[-1]
    joints = sk.j_template + torch.einsum("bs,jcs->bjc", betas, sk.j_dirs[..., :s])
    tips = sk.tip_template + torch.einsum("bs,tcs->btc", betas, sk.tip_dirs[..., :s])
    return joints, tips


@dataclass
class Kinematics:
    """Posed skeleton (B hands).

    Attributes:
        joints: (B, 21, 3) output joints (model coordinates, wrist at the rest wrist).
        skin: (B, 16, 3) posed skinning joints; rest: (B, 16, 3) shaped rest joints.
        glob: (B, 16, 3, 3) global rotation of each joint.
        tip_moved: (B, 5, 16, 3) each tip moved rigidly by each joint (blended by the weights).
    """

    joints: torch.Tensor
    skin: torch.Tensor
    rest: torch.Tensor
    glob: torch.Tensor
    tip_moved: torch.Tensor


def forward_kinematics(sk: HandSkeleton, rot_mats: torch.Tensor, betas: torch.Tensor) -> Kinematics:
    """Pose the skeleton like ``HandModel`` does (module docstring), joints only.

    Args:
        rot_mats: (B, 16, 3, 3) local rotations, root first, mean pose included.
        betas: (B, S) shape.
    """
    rest, tip_rest = rest_points(sk, betas)
    glob = torch.empty_like(rot_mats)
    skin = torch.empty_like(rest)
    glob[:, 0], skin[:, 0] = rot_mats[:, 0], rest[:, 0]
    for level, par, _ in sk.levels:
        glob[:, level] = glob[:, par] @ rot_mats[:, level]
        bone = (rest[:, level] - rest[:, par])[..., None]
        skin[:, level] = skin[:, par] + (glob[:, par] @ bone)[..., 0]
    feats = L.pose_features(rot_mats)
    v = tip_rest + torch.einsum("bp,tcp->btc", feats, sk.tip_posedirs[..., :feats.shape[-1]])
    moved = torch.einsum("bjcd,btjd->btjc", glob, v[:, :, None] - rest[:, None]) + skin[:, None]
    tips = torch.einsum("tj,btjc->btc", sk.tip_weights, moved)
    joints = torch.cat([skin, tips], dim=1)[:, OUTPUT_FROM_CAT]
    return Kinematics(joints=joints, skin=skin, rest=rest, glob=glob, tip_moved=moved)


def kabsch(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Rotation R (B, 3, 3) minimising ``sum_i w_i |R src_i - dst_i|^2`` (no centring).

    Args:
        src, dst: (B, N, 3) point sets; weights: (B, N) or None.
    """
    w = torch.ones_like(src[..., 0]) if weights is None else weights
    h = torch.einsum("bn,bni,bnj->bij", w, src, dst)
    u, _, vt = torch.linalg.svd(h)
    d = torch.det(vt.transpose(-1, -2) @ u.transpose(-1, -2))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return vt.transpose(-1, -2) @ fix @ u.transpose(-1, -2)


def swing(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Smallest rotations (..., 3, 3) taking directions a (..., 3) to b (..., 3).

    ``I + [v] + [v]^2 / (1 + c)`` with ``v = a x b``, ``c = a.b`` (unit a, b); for opposite
    directions (c -> -1) a half turn about an axis perpendicular to a.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    v = torch.cross(a, b, dim=-1)
    c = (a * b).sum(-1)
    k = L.skew(v)
    eye = torch.eye(3, dtype=a.dtype, device=a.device)
    opposite = c < -1.0 + eps
    rot = eye + k + k @ k / torch.where(opposite, torch.ones_like(c), 1.0 + c)[..., None, None]
    if bool(opposite.any()):
        e = torch.eye(3, dtype=a.dtype, device=a.device)[a.abs().argmin(-1)]
        n = F.normalize(torch.cross(a, e, dim=-1), dim=-1)
        half_turn = 2.0 * n[..., :, None] * n[..., None, :] - eye
        rot = torch.where(opposite[..., None, None], half_turn, rot)
    return rot


def rotation_about(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotations (..., 3, 3) by ``angle`` (...) about unit ``axis`` (..., 3)."""
    return L.batch_rodrigues(axis * angle[..., None])


def flex_abduct(axis: torch.Tensor, hinge: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Rotations ``Rot(l, f) Rot(n, alpha)`` taking the bone ``axis`` to ``want`` (no Euler twist).

    ``l`` is the hinge orthogonalised against the bone ``a``, ``n = a x l``; then
    ``Rot(l, f) Rot(n, alpha) a = cos(alpha) (cos(f) a - sin(f) n) + sin(alpha) l``, so
    ``alpha = asin(d.l)`` and ``f = atan2(-d.n, d.a)`` for the unit target ``d``.

    Args:
        axis: (..., 3) unit rest bone directions; hinge: (..., 3) flexion axes (non-zero).
        want: (..., 3) target directions (any length).
    Returns:
        (..., 3, 3) rotations.
    """
    d = F.normalize(want, dim=-1)
    lat = F.normalize(hinge - (hinge * axis).sum(-1, keepdim=True) * axis, dim=-1)
    dors = torch.cross(axis, lat, dim=-1)
    alpha = torch.asin((d * lat).sum(-1).clamp(-1.0, 1.0))
    flex = torch.atan2(-(d * dors).sum(-1), (d * axis).sum(-1))
    return rotation_about(lat, flex) @ rotation_about(dors, alpha)


def twist_swing_ik(sk: HandSkeleton, target: torch.Tensor, betas: torch.Tensor | None = None,
                   twist: str = "anatomical",
                   limits: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Local rotations reproducing target bone directions (module docstring, steps 1-3).

    Args:
        sk: the skeleton.
        target: (B, 21, 3) wrist-relative target joints (output order).
        betas: (B, S) shape used for the rest bones; None means zeros.
        twist: "anatomical" (flexion then abduction about the joint's own hinge, no Euler
            twist) or "zero" (pure swings, the rotation closest to the identity).
        limits: optional (lo, hi), each (15, 3): box on the axis-angle of joints 1..15; each
            level's rotations are clamped into it before their children are solved, so the
            children absorb what a joint may not do.

    Returns:
        (B, 16, 3, 3) local rotations (root first, mean pose included).
    """
    if twist not in TWISTS:
        raise ValueError(f"twist must be one of {TWISTS}, got {twist!r}")
    batch = target.shape[0]
    if betas is None:
        betas = target.new_zeros(batch, sk.j_dirs.shape[-1])
    rest, tip_rest = rest_points(sk, betas)
    rest_cat = torch.cat([rest, tip_rest], dim=1)
    tgt_cat = target[:, CAT_TO_OUTPUT] - target[:, :1]
    palm = [0] + [int(SKIN_TO_OUTPUT[o]) for o in PALM_JOINTS]
    src, dst = rest_cat[:, palm], tgt_cat[:, palm]
    rots = torch.empty(batch, NUM_SKIN_JOINTS, 3, 3, dtype=target.dtype, device=target.device)
    glob = torch.empty_like(rots)
    rots[:, 0] = glob[:, 0] = kabsch(src - src.mean(1, keepdim=True), dst - dst.mean(1, keepdim=True))
    hinge = torch.cat([torch.zeros_like(sk.hinge[:1]), sk.hinge])            # (16, 3)
    for level, par, child in sk.levels:
        axis = F.normalize(rest_cat[:, child] - rest[:, level], dim=-1)           # (B, n, 3)
        want = (glob[:, par].transpose(-1, -2) @ (tgt_cat[:, child] - tgt_cat[:, level])[..., None])[..., 0]
        h = hinge[level]
        known = h.norm(dim=-1) > 0.5 if twist == "anatomical" else torch.zeros_like(h[:, 0], dtype=torch.bool)
        if bool(known.all()):
            s = flex_abduct(axis, h.expand_as(axis), want)
        elif bool(known.any()):
            s = torch.where(known[:, None, None], flex_abduct(axis, torch.where(
                known[:, None], h, torch.ones_like(h)).expand_as(axis), want), swing(axis, want))
        else:
            s = swing(axis, want)
        if limits is not None:
            aa = L.matrix_to_axis_angle(s)
            lo, hi = (lim.to(aa)[level - 1] for lim in limits)
            s = L.batch_rodrigues(torch.maximum(torch.minimum(aa, hi), lo))
        rots[:, level] = s
        glob[:, level] = glob[:, par] @ s
    return rots


def fit_betas_to_bones(sk: HandSkeleton, target: torch.Tensor, num_betas: int | None = None,
                       sigma_length: float = 0.002, sigma_betas: float = 1.5,
                       iterations: int = 3, huber: float = 2.0) -> torch.Tensor:
    """Betas whose rest bone lengths match the target's (Gauss-Newton, Huber-weighted).

    Args:
        target: (B, 21, 3) target joints (output order, any origin).
        num_betas: number of betas fitted (default: all of the model's).
        sigma_length: bone-length noise (m); sigma_betas: prior std of each beta.
        iterations: Gauss-Newton steps; huber: Huber threshold in units of sigma_length.

    Returns:
        (B, S) betas.
    """
    s = sk.j_dirs.shape[-1] if num_betas is None else int(num_betas)
    child = list(range(1, NUM_SKIN_JOINTS)) + list(range(NUM_SKIN_JOINTS, NUM_SKIN_JOINTS + 5))
    par = [sk.parents[c] if c < NUM_SKIN_JOINTS else sk.children.index(c) for c in child]
    tgt_cat = target[:, CAT_TO_OUTPUT]
    lengths = (tgt_cat[:, child] - tgt_cat[:, par]).norm(dim=-1)                    # (B, 20)
    dirs = torch.cat([sk.j_dirs[..., :s], sk.tip_dirs[..., :s]], dim=0)
    bone_dirs = dirs[child] - dirs[par]                                           # (20, 3, S)
    betas = target.new_zeros(target.shape[0], s)
    eye = torch.eye(s, dtype=target.dtype, device=target.device) / sigma_betas ** 2
    for _ in range(iterations):
        rest, tip_rest = rest_points(sk, betas)
        cat = torch.cat([rest, tip_rest], dim=1)
        bone = cat[:, child] - cat[:, par]
        norm = bone.norm(dim=-1)
        r = (norm - lengths) / sigma_length
        jac = torch.einsum("bkc,kcs->bks", bone / norm[..., None], bone_dirs) / sigma_length
        w = torch.where(r.abs() <= huber, torch.ones_like(r), huber / r.abs().clamp_min(1e-9))
        hess = torch.einsum("bk,bks,bkt->bst", w, jac, jac) + eye
        grad = torch.einsum("bk,bks,bk->bs", w, jac, r) + betas @ eye
        betas = betas - torch.linalg.solve(hess, grad)
    return betas


def model_hand_pose(sk: HandSkeleton, full_pose: torch.Tensor) -> torch.Tensor:
    """Full axis-angle (B, 45) -> the ``hand_pose`` of ``HandModel(pose_type="axis_angle")``."""
    return full_pose if sk.flat_hand_mean else full_pose - sk.hands_mean.to(full_pose)


def ik_axis_angle(sk: HandSkeleton, target: torch.Tensor, fit_shape: bool = True,
                  twist: str = "anatomical") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Twist-swing initialisation as axis-angle.

    Args:
        target: (B, 21, 3) target joints (output order; made wrist-relative here).
        fit_shape: fit the betas to the bone lengths first (else zeros).

    Returns:
        global_orient (B, 3), hand_pose (B, 45) full axis-angle (mean pose included),
        betas (B, S).
    """
    betas = fit_betas_to_bones(sk, target) if fit_shape else \
        target.new_zeros(target.shape[0], sk.j_dirs.shape[-1])
    rots = twist_swing_ik(sk, target, betas, twist=twist)
    aa = L.matrix_to_axis_angle(rots)
    return aa[:, 0], aa[:, 1:].reshape(-1, 45), betas
