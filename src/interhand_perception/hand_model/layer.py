"""``HandModel``: a differentiable hand layer (MANO or built-in) built from a ``HandModelData``.

Every model array is a *non-persistent* buffer: it follows ``.to()``/``.double()`` but never
enters a ``state_dict``, so network checkpoints never contain (licence-gated) MANO data. The
model identity travels as ``HandModel.fingerprint`` instead.

Coordinates are MANO-native: the global rotation acts about the rest wrist joint (joint 0 of
the shaped hand), then ``transl`` is added. Use :func:`root_relative` (or
``HandOutput.root_relative()``) for wrist-centred outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import lbs as L
from .joints import JOINT_NAMES, NUM_SKIN_JOINTS, SKIN_TO_OUTPUT
from .model_data import HandModelData

POSE_TYPES = ("pca", "axis_angle")
ROT_TYPES = ("axis_angle", "6d", "matrix")
NUM_HAND_POSE = (NUM_SKIN_JOINTS - 1) * 3  # 45


@dataclass
class HandOutput:
    """Output of :class:`HandModel` (``B`` = batch, ``V`` = vertices).

    Attributes:
        vertices: (B, V, 3) posed vertices.
        joints: (B, 21, 3) joints in ``JOINT_NAMES`` order (16 skinning joints + 5 tips).
        joints16: (B, 16, 3) skinning joints (MANO order).
        full_pose: (B, 48) axis-angle of all 16 joints (global orient first), hands mean
            included when the model is not ``flat_hand_mean``; None when the forward was
            asked not to compute it.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joints16: torch.Tensor
    full_pose: torch.Tensor | None

    @property
    def wrist(self) -> torch.Tensor:
        """(B, 3) wrist position."""
        return self.joints[:, 0]

    def root_relative(self) -> "HandOutput":
        """The same hand translated so that the wrist is at the origin."""
        return root_relative(self)


def root_relative(out: HandOutput) -> HandOutput:
    """Translate a :class:`HandOutput` so that its wrist (joint 0) is at the origin.

    Args:
        out: vertices (B, V, 3), joints (B, 21, 3), joints16 (B, 16, 3), full_pose (B, 48).

    Returns:
        A new :class:`HandOutput` with the wrist subtracted from vertices and joints.
    """
    root = out.joints[:, :1]
    return HandOutput(vertices=out.vertices - root, joints=out.joints - root,
                      joints16=out.joints16 - root, full_pose=out.full_pose)


def global_orient_to_matrix(global_orient: torch.Tensor, rot_type: str) -> torch.Tensor:
    """Global orientation in any supported form to rotation matrices.

    Args:
        global_orient: (B, 3) axis-angle, (B, 6) 6D (first two columns) or (B, 3, 3) matrices.
        rot_type: "axis_angle", "6d" or "matrix".

    Returns:
        (B, 3, 3) rotation matrices.
    """
    expected = {"axis_angle": (3,), "6d": (6,), "matrix": (3, 3)}
    if rot_type not in expected:
        raise ValueError(f"rot_type must be one of {ROT_TYPES}, got {rot_type!r}")
    if tuple(global_orient.shape[1:]) != expected[rot_type] or global_orient.ndim < 2:
        raise ValueError(f"global_orient for rot_type={rot_type!r} must be "
                         f"(B, {', '.join(map(str, expected[rot_type]))}), "
                         f"got {tuple(global_orient.shape)}")
    if rot_type == "axis_angle":
        return L.batch_rodrigues(global_orient)
    if rot_type == "6d":
        return L.rot6d_to_matrix(global_orient)
    return global_orient


class HandModel(nn.Module):
    """Differentiable 16-joint hand model with MANO's interface.

    Args:
        data: the model arrays (validated here).
        num_pca_comps: number of PCA components accepted by ``pose_type="pca"`` (1..45).
        flat_hand_mean: if False (MANO default) the model's ``hands_mean`` is added to the 45
            axis-angle values in both pose types; if True it is not.
        dtype: floating dtype of the buffers.
    """

    def __init__(self, data: HandModelData, num_pca_comps: int = NUM_HAND_POSE,
                 flat_hand_mean: bool = False, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        data.validate()
        if not 1 <= int(num_pca_comps) <= NUM_HAND_POSE:
            raise ValueError(f"num_pca_comps must be in 1..{NUM_HAND_POSE}, got {num_pca_comps}")
        tips = np.asarray(data.tip_vertex_ids)
        if tips.min() < 0 or tips.max() >= data.num_verts:
            raise ValueError(f"tip_vertex_ids {tips.tolist()} out of range for "
                             f"{data.num_verts} vertices")
        self.side = data.side
        self.name = data.name
        self.fingerprint = data.fingerprint()
        self.num_verts = data.num_verts
        self.num_betas = data.num_betas
        self.num_pca_comps = int(num_pca_comps)
        self.flat_hand_mean = bool(flat_hand_mean)
        self.joint_names = JOINT_NAMES
        self.faces = np.asarray(data.faces, dtype=np.int64)

        def floats(name: str, arr: np.ndarray) -> None:
            tensor = torch.as_tensor(np.asarray(arr), dtype=dtype)
            self.register_buffer(name, tensor, persistent=False)

        def ints(name: str, arr: np.ndarray) -> None:
            tensor = torch.as_tensor(np.asarray(arr, dtype=np.int64))
            self.register_buffer(name, tensor, persistent=False)

        floats("v_template", data.v_template)
        floats("shapedirs", data.shapedirs)
        floats("posedirs", data.posedirs)
        floats("J_regressor", data.J_regressor)
        floats("lbs_weights", data.weights)
        floats("hands_components", np.asarray(data.hands_components)[: self.num_pca_comps])
        floats("hands_mean", data.hands_mean)
        ints("parents", data.parents)
        # Plain-int copy for the kinematic loop (avoids a device sync per forward).
        self.parents_list = tuple(int(p) for p in data.parents)
        ints("tip_vertex_ids", data.tip_vertex_ids)
        ints("joint_order", SKIN_TO_OUTPUT)  # on the model's device: no per-call host copy
        ints("parent_index", self.parents_list[1:])
        ints("faces_tensor", self.faces)
        floats("eye", np.eye(3))  # for Rodrigues and the pose features: no constant built per call

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, side={self.side!r}, num_verts={self.num_verts}, "
                f"num_pca_comps={self.num_pca_comps}, flat_hand_mean={self.flat_hand_mean}, "
                f"fingerprint={self.fingerprint!r}")

    def hand_pose_to_axis_angle(self, hand_pose: torch.Tensor,
                                pose_type: str = "pca") -> torch.Tensor:
        """The 45 axis-angle values of joints 1..15 (hands mean included unless flat).

        Args:
            hand_pose: (B, K) PCA coefficients (K <= num_pca_comps) for ``pose_type="pca"``,
                (B, 45) or (B, 15, 3) axis-angle for ``pose_type="axis_angle"``.
            pose_type: "pca" or "axis_angle".

        Returns:
            (B, 45) axis-angle values.
        """
        if pose_type == "pca":
            if hand_pose.ndim != 2 or hand_pose.shape[1] > self.num_pca_comps:
                raise ValueError(f"PCA hand_pose must be (B, K) with K <= {self.num_pca_comps}, "
                                 f"got {tuple(hand_pose.shape)}")
            pose = L.pca_to_axis_angle(hand_pose, self.hands_components)
        elif pose_type == "axis_angle":
            pose = hand_pose.reshape(hand_pose.shape[0], -1)
            if pose.shape[1] != NUM_HAND_POSE:
                raise ValueError(f"axis-angle hand_pose must be (B, 45) or (B, 15, 3), "
                                 f"got {tuple(hand_pose.shape)}")
        else:
            raise ValueError(f"pose_type must be one of {POSE_TYPES}, got {pose_type!r}")
        return pose if self.flat_hand_mean else pose + self.hands_mean

    def forward(self, global_orient: torch.Tensor, hand_pose: torch.Tensor,
                betas: torch.Tensor | None = None, transl: torch.Tensor | None = None,
                pose_type: str = "pca", rot_type: str = "axis_angle",
                compute_full_pose: bool = True) -> HandOutput:
        """Pose and shape the hand.

        Args:
            global_orient: (B, 3) axis-angle, (B, 6) 6D or (B, 3, 3) matrices (see
                ``rot_type``); rotation about the rest wrist joint.
            hand_pose: (B, K) PCA coefficients or (B, 45) axis-angle (see ``pose_type``).
            betas: (B, S) shape, S <= num_betas; None means zeros (mean shape).
            transl: (B, 3) translation added after the rotation; None means zero.
            pose_type: "pca" or "axis_angle".
            rot_type: "axis_angle", "6d" or "matrix".
            compute_full_pose: False skips ``full_pose`` (None then): for rot_type "6d" or
                "matrix" it costs a matrix -> axis-angle conversion that training never reads.

        Returns:
            HandOutput with vertices (B, V, 3), joints (B, 21, 3), joints16 (B, 16, 3) and
            full_pose (B, 48) (or None).
        """
        batch = global_orient.shape[0]
        if hand_pose.shape[0] != batch:
            raise ValueError(f"batch mismatch: global_orient {batch}, "
                             f"hand_pose {hand_pose.shape[0]}")
        root_mat = global_orient_to_matrix(global_orient, rot_type)
        pose45 = self.hand_pose_to_axis_angle(hand_pose, pose_type)
        finger_mats = L.batch_rodrigues(pose45.reshape(batch, -1, 3), self.eye)
        rot_mats = torch.cat([root_mat[:, None], finger_mats], dim=1)
        if betas is None:
            betas = self.v_template.new_zeros(batch, self.num_betas)
        elif betas.ndim != 2 or betas.shape[0] != batch or betas.shape[1] > self.num_betas:
            raise ValueError(f"betas must be (B, S) with B = {batch}, S <= {self.num_betas}, "
                             f"got {tuple(betas.shape)}")
        verts, joints16 = L.lbs(betas, rot_mats, self.v_template, self.shapedirs, self.posedirs,
                                self.J_regressor, self.parents_list, self.lbs_weights,
                                parent_index=self.parent_index, eye=self.eye)
        if transl is not None:
            verts = verts + transl[:, None]
            joints16 = joints16 + transl[:, None]
        joints = L.joints21_from(joints16, verts, self.tip_vertex_ids, self.joint_order)
        full_pose = None
        if compute_full_pose:
            root_aa = global_orient if rot_type == "axis_angle" else L.matrix_to_axis_angle(root_mat)
            full_pose = torch.cat([root_aa, pose45], dim=1)
        return HandOutput(vertices=verts, joints=joints, joints16=joints16, full_pose=full_pose)


def pairable(left: nn.Module, right: nn.Module, num_betas: int) -> bool:
    """Whether two hand models can run as one :class:`HandPair`: both :class:`HandModel` with the
    same topology (vertices, kinematic tree), PCA size, mean-pose convention and dtype, and at
    least ``num_betas`` shape values. MANO's and the built-in model's sides are."""
    if not (isinstance(left, HandModel) and isinstance(right, HandModel)):
        return False
    return (left.num_verts == right.num_verts and left.parents_list == right.parents_list
            and left.num_pca_comps == right.num_pca_comps and left.flat_hand_mean == right.flat_hand_mean
            and left.v_template.dtype == right.v_template.dtype
            and min(left.num_betas, right.num_betas) >= int(num_betas))


class HandPair(nn.Module):
    """The left and right :class:`HandModel` evaluated together, the side a batch axis.

    The linear parts are combined once, in float64, when the pair is built: the shape and pose
    blend shapes become one matrix (``[betas, R - I] @ [shapedirs; posedirs]``), the rest joints
    are regressed from regressed blend shapes (``J @ v_template``, ``J @ shapedirs``), forward
    kinematics is one product per tree level and skinning two matrix products. The result
    equals :class:`HandModel`'s (6D or matrix root, PCA pose, no translation) to float rounding.
    Every array is a non-persistent buffer (no state-dict entry) and every index is a buffer,
    so the forward builds no tensor from host data and makes no host round trip.

    Args:
        left, right: the two models (:func:`pairable`).
        num_betas: shape values the caller passes (the first ``num_betas`` blend shapes).
        tip_vertex_ids: optional {side: 5 vertex ids} replacing the models' fingertips.
    Forward:
        root_rot (B, 2, 3, 3) root rotations, pca (B, 2, K) PCA pose (K <= num_pca_comps),
        betas (B, 2, num_betas); sides ordered ("left", "right").
        returns (vertices (B, 2, V, 3), joints (B, 2, 21, 3)), model frame (not wrist-relative).
    """

    def __init__(self, left: HandModel, right: HandModel, num_betas: int,
                 tip_vertex_ids: dict | None = None) -> None:
        super().__init__()
        if not pairable(left, right, num_betas):
            raise ValueError("the left and right hand models differ in topology, PCA size, mean pose or dtype, "
                             f"or have fewer than {num_betas} shape values; they cannot be paired")
        models = (left, right)
        dtype, device = left.v_template.dtype, left.v_template.device
        nb, v = int(num_betas), left.num_verts
        self.num_verts, self.num_betas, self.num_joints = v, nb, len(left.parents_list)
        tips = dict(tip_vertex_ids or {})
        tip_rows = [list(tips.get(m.side, m.tip_vertex_ids.tolist())) for m in models]

        def f64(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(torch.float64)

        def both(fn) -> torch.Tensor:  # (2, ...) float buffer of fn(model) in the models' dtype
            return torch.stack([fn(m) for m in models]).to(device=device, dtype=dtype)

        def buffer(name: str, tensor: torch.Tensor) -> None:
            self.register_buffer(name, tensor, persistent=False)

        def long(values) -> torch.Tensor:
            return torch.as_tensor(values, dtype=torch.long, device=device)

        buffer("dirs", both(lambda m: torch.cat([  # (2, S + 135, V * 3)
            f64(m.shapedirs[..., :nb]).permute(2, 0, 1).reshape(nb, v * 3),
            f64(m.posedirs).permute(2, 0, 1).reshape(-1, v * 3)])))
        buffer("v_template", both(lambda m: f64(m.v_template)))  # (2, V, 3)
        buffer("j_template", both(lambda m: f64(m.J_regressor) @ f64(m.v_template)))  # (2, J, 3)
        buffer("j_dirs", both(lambda m: torch.einsum(  # (2, S, J * 3)
            "jv,vcs->sjc", f64(m.J_regressor), f64(m.shapedirs[..., :nb])).reshape(nb, -1)))
        buffer("weights", both(lambda m: f64(m.lbs_weights)))  # (2, V, J)
        buffer("components", both(lambda m: f64(m.hands_components)))  # (2, K, 45)
        buffer("mean", both(lambda m: f64(m.hands_mean) * (0.0 if m.flat_hand_mean else 1.0)))  # (2, 45)
        buffer("eye", torch.eye(3, dtype=dtype, device=device))
        # fingertips of both sides as rows of the (B, 2 * V, 3) flattened vertices
        buffer("tips", long([[side * v + t for t in row] for side, row in enumerate(tip_rows)]))  # (2, 5)
        buffer("order", long(SKIN_TO_OUTPUT))  # (21,)
        levels, restore = L.level_plan(left.parents_list)
        self.num_levels = len(levels)
        for i, (joints, parents, slots) in enumerate(levels):
            buffer(f"level{i}_joints", long(joints))
            buffer(f"level{i}_parents", long(parents))
            buffer(f"level{i}_slots", long(slots))
        buffer("restore", long(restore))

    def levels(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The kinematic levels' index buffers (:func:`lbs.level_forward_kinematics`)."""
        return [(getattr(self, f"level{i}_joints"), getattr(self, f"level{i}_parents"),
                 getattr(self, f"level{i}_slots")) for i in range(self.num_levels)]

    def rotations(self, root_rot: torch.Tensor, pca: torch.Tensor) -> torch.Tensor:
        """(B, 2, 3, 3) roots, (B, 2, K) PCA -> (B, 2, J, 3, 3) local rotations (root first)."""
        k = pca.shape[-1]
        pose = (pca[..., None, :] @ self.components[:, :k])[..., 0, :] + self.mean  # (B, 2, 45)
        fingers = L.batch_rodrigues(pose.reshape(*pose.shape[:-1], -1, 3), self.eye)  # (B, 2, J - 1, 3, 3)
        return torch.cat([root_rot[..., None, :, :], fingers], dim=-3)

    def forward(self, root_rot: torch.Tensor, pca: torch.Tensor,
                betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bsz, v, nj = root_rot.shape[0], self.num_verts, self.num_joints
        rot = self.rotations(root_rot, pca)
        coeffs = torch.cat([betas, L.pose_features(rot, self.eye)], dim=-1)  # (B, 2, S + 135)
        v_posed = (coeffs[..., None, :] @ self.dirs).reshape(bsz, 2, v, 3) + self.v_template
        rest = (betas[..., None, :] @ self.j_dirs).reshape(bsz, 2, nj, 3) + self.j_template
        world_rot, joints16 = L.level_forward_kinematics(rot, rest, self.levels(), self.restore)
        transl = joints16 - (world_rot @ rest[..., None])[..., 0]  # (B, 2, J, 3)
        affine = torch.cat([world_rot, transl[..., None]], dim=-1).flatten(-2)  # (B, 2, J, 12)
        per_vertex = (self.weights @ affine).reshape(bsz, 2, v, 3, 4)
        verts = (per_vertex[..., :3] * v_posed[..., None, :]).sum(-1) + per_vertex[..., 3]
        tips = verts.reshape(bsz, 2 * v, 3)[:, self.tips]  # (B, 2, 5, 3)
        joints = torch.cat([joints16, tips], dim=-2)[:, :, self.order]
        return verts, joints
