"""Linear blend skinning for the 16-joint hand models (MANO and the built-in model).

Small pure torch functions: batched, differentiable, dtype/device-agnostic (every new tensor
follows the dtype and device of the inputs), no module state. Conventions follow MANO/SMPL:

* rotations act on column vectors (``x' = R @ x``),
* pose correctives are driven by ``R_j - I`` of joints 1..15, flattened joint-major and
  row-major into 135 numbers,
* the 21 output joints are the 16 skinning joints plus 5 fingertip vertices, reordered with
  :data:`joints.SKIN_TO_OUTPUT`.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

from .joints import NUM_SKIN_JOINTS, SKIN_TO_OUTPUT

IntSeq = Union[torch.Tensor, Sequence[int]]

# Below this squared angle (rad^2) the Rodrigues coefficients use their Taylor series.
_SMALL_ANGLE_SQ = 1e-6


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices.

    Args:
        v: (..., 3) vectors.

    Returns:
        (..., 3, 3) matrices ``K`` with ``K @ x == cross(v, x)``.
    """
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    rows = (torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1))
    return torch.stack(rows, -2)


def batch_rodrigues(rot_vecs: torch.Tensor, eye: torch.Tensor | None = None) -> torch.Tensor:
    """Axis-angle vectors to rotation matrices.

    ``R = I + a K + b K^2`` with ``K = skew(r)``, ``a = sin(t)/t``, ``b = (1 - cos t)/t^2`` and
    ``t = |r|``; both coefficients switch to their Taylor series near ``t = 0`` so values and
    gradients are finite (and exact to float64 precision) at and around the identity.

    Args:
        rot_vecs: (N, 3) axis-angle vectors (any leading shape ``(..., 3)`` also works).
        eye: optional (3, 3) identity in ``rot_vecs``' dtype and device (a module buffer); None
            builds it.

    Returns:
        (N, 3, 3) rotation matrices (``(..., 3, 3)``).
    """
    theta_sq = (rot_vecs * rot_vecs).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # Replace the small angles by 1 before sqrt/sin/cos so the unused branch has finite grads.
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = safe_sq.sqrt()
    a_exact = torch.sin(theta) / theta
    half_sin = torch.sin(0.5 * theta)
    b_exact = 2.0 * half_sin * half_sin / safe_sq  # (1 - cos t) / t^2 without cancellation
    a_taylor = 1.0 - theta_sq / 6.0 + theta_sq * theta_sq / 120.0
    b_taylor = 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0
    a = torch.where(small, a_taylor, a_exact)[..., None, None]
    b = torch.where(small, b_taylor, b_exact)[..., None, None]
    k = skew(rot_vecs)
    if eye is None:
        eye = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device)
    return eye + a * k + b * (k @ k)


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6D rotation representation to rotation matrices (Gram-Schmidt).

    Args:
        x: (..., 6) with ``x[..., 0:3]`` the first column and ``x[..., 3:6]`` the second column
            of the (unnormalised) rotation matrix.

    Returns:
        (..., 3, 3) rotation matrices whose first column is ``x[..., 0:3]`` normalised.
    """
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to the 6D representation (inverse of :func:`rot6d_to_matrix`).

    Args:
        rot: (..., 3, 3) rotation matrices.

    Returns:
        (..., 6) first column followed by second column.
    """
    return torch.cat([rot[..., :, 0], rot[..., :, 1]], dim=-1)


def matrix_to_quaternion(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Shepperd's method: each of the four components can be recovered from the diagonal; the
    largest one is computed from the diagonal and the other three from the off-diagonal terms
    divided by it, which keeps the result accurate for every angle including pi.

    Args:
        rot: (..., 3, 3) rotation matrices.

    Returns:
        (..., 4) quaternions.
    """
    m = rot
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 * q_i^2 for i = w, x, y, z.
    four_sq = torch.stack([
        1.0 + m00 + m11 + m22,
        1.0 + m00 - m11 - m22,
        1.0 - m00 + m11 - m22,
        1.0 - m00 - m11 + m22,
    ], dim=-1)
    d21, d12 = m[..., 2, 1], m[..., 1, 2]
    d02, d20 = m[..., 0, 2], m[..., 2, 0]
    d10, d01 = m[..., 1, 0], m[..., 0, 1]
    # Row i: 4 * q_i * (w, x, y, z); dividing by 4 * q_i (= 2 * sqrt(four_sq_i)) gives q.
    cand = torch.stack([
        torch.stack([four_sq[..., 0], d21 - d12, d02 - d20, d10 - d01], -1),
        torch.stack([d21 - d12, four_sq[..., 1], d10 + d01, d02 + d20], -1),
        torch.stack([d02 - d20, d10 + d01, four_sq[..., 2], d21 + d12], -1),
        torch.stack([d10 - d01, d02 + d20, d21 + d12, four_sq[..., 3]], -1),
    ], dim=-2)
    best = four_sq.argmax(dim=-1)
    denom = 2.0 * four_sq.gather(-1, best[..., None]).clamp_min(1e-12).sqrt()
    idx = best[..., None, None].expand(*best.shape, 1, 4)
    quat = cand.gather(-2, idx).squeeze(-2) / denom
    quat = F.normalize(quat, dim=-1)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(w, x, y, z)`` to axis-angle vectors with angle in [0, pi].

    Args:
        quat: (..., 4) unit quaternions.

    Returns:
        (..., 3) axis-angle vectors.
    """
    quat = torch.where(quat[..., :1] < 0, -quat, quat)
    w, xyz = quat[..., 0], quat[..., 1:]
    s_sq = (xyz * xyz).sum(-1)
    small = s_sq < 1e-12
    s = torch.where(small, torch.ones_like(s_sq), s_sq).sqrt()
    # angle / sin(angle / 2); its limit 2 / w (w -> 1) for tiny rotations.
    factor = torch.where(small, 2.0 / w.clamp_min(1e-6), 2.0 * torch.atan2(s, w) / s)
    return xyz * factor[..., None]


def matrix_to_axis_angle(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to axis-angle vectors (angle in [0, pi]), robust near 0 and pi.

    Args:
        rot: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) axis-angle vectors.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(rot))


def pca_to_axis_angle(coeffs: torch.Tensor, components: torch.Tensor,
                      mean: torch.Tensor | None = None) -> torch.Tensor:
    """PCA pose coefficients to the 45 axis-angle values of joints 1..15 (MANO convention).

    Args:
        coeffs: (B, K) coefficients, K <= 45 (not whitened).
        components: (45, 45) PCA basis, one component per row; the first K rows are used.
        mean: (45,) mean pose added to the result, or None.

    Returns:
        (B, 45) ``mean + coeffs @ components[:K]``.
    """
    k = coeffs.shape[-1]
    pose = coeffs @ components[:k]
    return pose if mean is None else pose + mean


def blend_shapes(betas: torch.Tensor, shapedirs: torch.Tensor) -> torch.Tensor:
    """Vertex offsets of the shape blend shapes.

    Args:
        betas: (B, S) shape coefficients (S may be smaller than the model's number).
        shapedirs: (V, 3, S_model) blend shapes; the first S are used.

    Returns:
        (B, V, 3) offsets.
    """
    return torch.einsum("bs,vcs->bvc", betas, shapedirs[..., : betas.shape[-1]])


def vertices2joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Regress joint locations from vertices.

    Args:
        J_regressor: (J, V) regressor.
        vertices: (B, V, 3) vertices.

    Returns:
        (B, J, 3) joints.
    """
    return torch.einsum("jv,bvc->bjc", J_regressor, vertices)


def pose_features(rot_mats: torch.Tensor, eye: torch.Tensor | None = None) -> torch.Tensor:
    """Pose-corrective features ``R_j - I`` of all joints but the root.

    Args:
        rot_mats: (..., J, 3, 3) local joint rotations (usually (B, J, 3, 3)).
        eye: optional (3, 3) identity (a module buffer); None builds it.

    Returns:
        (..., (J - 1) * 9) features, joint-major then row-major.
    """
    if eye is None:
        eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[..., 1:, :, :] - eye).flatten(-3)


def _parent_list(parents: IntSeq) -> list[int]:
    """Parents as a Python list (the kinematic loop runs over joints in Python)."""
    out = parents.tolist() if isinstance(parents, torch.Tensor) else [int(p) for p in parents]
    for i, p in enumerate(out[1:], start=1):
        if not 0 <= p < i:
            raise ValueError(f"parents must be topologically ordered, got parents[{i}] = {p}")
    return out


def _homogeneous(rot: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
    """Stack (..., 3, 3) rotations and (..., 3) translations into (..., 4, 4) transforms.

    The bottom row ``(0, 0, 0, 1)`` is made from the inputs (``zeros_like``/``ones_like``): an
    item assignment of a Python number would copy a host scalar to the device on every call.
    """
    top = torch.cat([rot, transl[..., None]], dim=-1)
    last = top[..., :1, 3:]
    bottom = torch.cat([torch.zeros_like(top[..., :1, :3]), torch.ones_like(last)], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def batch_rigid_transform(rot_mats: torch.Tensor, joints: torch.Tensor, parents: IntSeq,
                          parent_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics of a kinematic tree.

    Joint ``j`` rotates by ``rot_mats[:, j]`` about its rest position; the root rotates about
    its own rest position (no translation is added).

    Args:
        rot_mats: (B, J, 3, 3) local rotations.
        joints: (B, J, 3) rest joint positions.
        parents: (J,) parent indices, ``parents[0] == -1`` and ``parents[j] < j``.
        parent_index: optional (J - 1,) long tensor ``parents[1:]`` on ``joints``' device (a
            module buffer): indexing with a Python list copies it to the device on every call,
            which on CUDA waits for all queued work. None builds it from ``parents``.

    Returns:
        posed_joints: (B, J, 3) joint positions after posing.
        rel_transforms: (B, J, 4, 4) transforms mapping a rest-pose point to its posed position
            when moved rigidly with joint ``j`` (world transform times the inverse rest
            transform).
    """
    par = _parent_list(parents)
    if parent_index is None:
        parent_index = torch.as_tensor(par[1:], dtype=torch.long, device=joints.device)
    rel_joints = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parent_index]], dim=1)
    local = _homogeneous(rot_mats, rel_joints)
    chain = [local[:, 0]]
    for j in range(1, len(par)):
        chain.append(chain[par[j]] @ local[:, j])
    world = torch.stack(chain, dim=1)
    posed_joints = world[..., :3, 3]
    # Subtract the rotated rest joint so the transform applies to rest-pose coordinates.
    offset = (world[..., :3, :3] @ joints[..., None])[..., 0]
    rel_transforms = _homogeneous(world[..., :3, :3], posed_joints - offset)
    return posed_joints, rel_transforms


def kinematic_levels(parents: Sequence[int]) -> list[list[int]]:
    """Joints grouped by depth in the tree, root excluded: ``[[depth 1], [depth 2], ...]``.

    Every parent of a depth-``d`` joint has depth ``d - 1``, so one level can be posed with one
    batched product once the level before it is. MANO's 16 joints give 3 levels of 5.
    """
    par = _parent_list(parents)
    depth = [0] * len(par)
    for j in range(1, len(par)):
        depth[j] = depth[par[j]] + 1
    return [[j for j in range(len(par)) if depth[j] == d] for d in range(1, max(depth, default=0) + 1)]


def level_plan(parents: Sequence[int]) -> tuple[list[tuple[list[int], list[int], list[int]]], list[int]]:
    """Index lists for :func:`level_forward_kinematics` (built once, stored as module buffers).

    Returns:
        levels: per level ``(joints, parent_joints, parent_slots)``: the level's joint ids, their
            parents' joint ids and the parents' positions within the previous level (the root
            is level 0, alone).
        restore: (J,) position of joint ``j`` in level order (root, level 1, level 2, ...), so
            ``level_ordered[..., restore, :]`` is in joint order.
    """
    par = _parent_list(parents)
    prev, order, levels = [0], [0], []
    for level in kinematic_levels(par):
        levels.append((level, [par[j] for j in level], [prev.index(par[j]) for j in level]))
        order += level
        prev = level
    return levels, [order.index(j) for j in range(len(par))]


def level_forward_kinematics(rot_mats: torch.Tensor, joints: torch.Tensor,
                             levels: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                             restore: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics with one batched product per tree level (3 for a hand, not 15).

    ``W_j = W_p R_j`` and ``x_j = W_p (r_j - r_p) + x_p`` for joint j with parent p, rest
    position r; the root keeps ``W_0 = R_0``, ``x_0 = r_0`` (:func:`batch_rigid_transform`'s
    convention).

    Args:
        rot_mats: (..., J, 3, 3) local rotations; joints: (..., J, 3) rest joints.
        levels: :func:`level_plan`'s levels as long tensors on the inputs' device.
        restore: (J,) long tensor, :func:`level_plan`'s ``restore``.

    Returns:
        world_rot: (..., J, 3, 3) world rotations; posed: (..., J, 3) posed joints; joint order.
    """
    prev_rot, prev_pos = rot_mats[..., :1, :, :], joints[..., :1, :]
    rots, poss = [prev_rot], [prev_pos]
    for level, parent, slot in levels:
        bone = joints[..., level, :] - joints[..., parent, :]  # (..., n, 3)
        parent_rot = prev_rot[..., slot, :, :]
        prev_pos = (parent_rot @ bone[..., None])[..., 0] + prev_pos[..., slot, :]
        prev_rot = parent_rot @ rot_mats[..., level, :, :]
        rots.append(prev_rot)
        poss.append(prev_pos)
    world_rot = torch.cat(rots, dim=-3)[..., restore, :, :]
    return world_rot, torch.cat(poss, dim=-2)[..., restore, :]


def lbs(betas: torch.Tensor, full_pose: torch.Tensor, v_template: torch.Tensor,
        shapedirs: torch.Tensor, posedirs: torch.Tensor, J_regressor: torch.Tensor,
        parents: IntSeq, lbs_weights: torch.Tensor, pose2rot: bool = False,
        parent_index: torch.Tensor | None = None,
        eye: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape, pose-correct and skin a 16-joint hand.

    Args:
        betas: (B, S) shape coefficients.
        full_pose: (B, 16, 3, 3) local rotations of all joints (root first); with
            ``pose2rot=True`` instead (B, 48) axis-angle values.
        v_template: (V, 3) rest vertices.
        shapedirs: (V, 3, S_model) shape blend shapes.
        posedirs: (V, 3, 135) pose-corrective blend shapes.
        J_regressor: (16, V) joint regressor.
        parents: (16,) kinematic tree.
        lbs_weights: (V, 16) skinning weights.
        pose2rot: whether ``full_pose`` is axis-angle.
        parent_index: optional (15,) long tensor ``parents[1:]`` on the device
            (:func:`batch_rigid_transform`).
        eye: optional (3, 3) identity in the inputs' dtype and device (a module buffer).

    Returns:
        verts: (B, V, 3) posed vertices.
        joints16: (B, 16, 3) posed skinning joints.
    """
    batch = betas.shape[0]
    if pose2rot:
        rot_mats = batch_rodrigues(full_pose.reshape(-1, 3), eye).reshape(batch, -1, 3, 3)
    else:
        rot_mats = full_pose
    v_shaped = v_template + blend_shapes(betas, shapedirs)
    rest_joints = vertices2joints(J_regressor, v_shaped)
    feats = pose_features(rot_mats, eye)
    v_posed = v_shaped + torch.einsum("bp,vcp->bvc", feats, posedirs)
    joints16, rel = batch_rigid_transform(rot_mats, rest_joints, parents, parent_index)
    per_vertex = torch.einsum("vj,bjmn->bvmn", lbs_weights, rel[..., :3, :])
    verts = (per_vertex[..., :3] @ v_posed[..., None])[..., 0] + per_vertex[..., 3]
    return verts, joints16


def joints21_from(joints16: torch.Tensor, verts: torch.Tensor,
                  tip_vertex_ids: IntSeq, order: IntSeq | None = None) -> torch.Tensor:
    """The 21 output joints from the 16 skinning joints and 5 fingertip vertices.

    Args:
        joints16: (B, 16, 3) skinning joints (MANO order).
        verts: (B, V, 3) vertices.
        tip_vertex_ids: (5,) fingertip vertex ids: thumb, index, middle, ring, little.
        order: (21,) :data:`joints.SKIN_TO_OUTPUT` as a long tensor on ``verts``' device (a
            module buffer, so that no host-to-device copy happens per call); None builds it.

    Returns:
        (B, 21, 3) joints in ``joints.JOINT_NAMES`` order.
    """
    if joints16.shape[1] != NUM_SKIN_JOINTS:
        raise ValueError(f"expected (B, {NUM_SKIN_JOINTS}, 3) joints, got {tuple(joints16.shape)}")
    tips = torch.as_tensor(tip_vertex_ids, dtype=torch.long, device=verts.device)
    if order is None:
        order = SKIN_TO_OUTPUT
    order = torch.as_tensor(order, dtype=torch.long, device=verts.device)
    return torch.cat([joints16, verts[:, tips]], dim=1)[:, order]
