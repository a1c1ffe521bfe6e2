"""InterHand2.6M v1.0 geometry: joint orders, camera frames and MANO fits moved into a camera.

Facts used (public sources): the 42 joints of ``joint_3d.json`` are the right hand (0..20) then
the left (21..41); per hand ``thumb4 (tip), thumb3, thumb2, thumb1, index4..1, middle4..1,
ring4..1, pinky4..1, wrist``. ``camera.json`` gives ``campos`` (camera centre, world mm) and
``camrot`` (world->camera rotation): ``X_cam = camrot @ (X_world - campos)``. The NeuralAnnot
``pose`` is "axis-angle minus the mean pose" (``flat_hand_mean=False`` layers add the mean).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..hand_model.joints import SIDES

NUM_IH_JOINTS = 42  # InterHand2.6M: 21 right + 21 left

SPLITS = ("train", "val", "test")
ANNOT_KINDS = ("data", "camera", "joint_3d", "MANO_NeuralAnnot")
NUM_IH_JOINTS = 42  # InterHand2.6M: 21 right + 21 left

#: For each of our 21 output joints, its index inside one InterHand2.6M hand block of 21
#: (``thumb4, thumb3, thumb2, thumb1, index4..1, middle4..1, ring4..1, pinky4..1, wrist``; "4" is
#: the tip, "1" the joint nearest the wrist).
IH_TO_OURS = np.array(
    [20,              # wrist
     3, 2, 1, 0,      # thumb  cmc(thumb1), mcp(thumb2), ip(thumb3), tip(thumb4)
     7, 6, 5, 4,      # index  mcp, pip, dip, tip
     11, 10, 9, 8,    # middle
     15, 14, 13, 12,  # ring
     19, 18, 17, 16], # little (pinky)
    dtype=np.int64,
)
#: Offset of each hand's block in the 42 InterHand2.6M joints.
IH_HAND_OFFSET = {"right": 0, "left": 21}
#: Wrist (root) index of each hand in the 42 InterHand2.6M joints.
IH_ROOT = {"right": 20, "left": 41}

_INDEX_VERSION = 1
_INDEX_MEMO: dict[str, "_FrameIndex"] = {}

from ..hand_model.rotation_np import axis_angle_to_matrix, matrix_to_axis_angle


def ih42_to_ours(joints42: np.ndarray) -> np.ndarray:
    """Reorder InterHand2.6M's 42 joints (right block, left block) into ``(2, 21, ...)``.

    Args:
        joints42: (42, ...) array in the dataset's order.
    Returns:
        (2, 21, ...) array; index 0 = left, 1 = right; joints in ``JOINT_NAMES`` order.
    """
    j = np.asarray(joints42)
    if j.shape[0] != NUM_IH_JOINTS:
        raise ValueError(f"expected {NUM_IH_JOINTS} InterHand2.6M joints, got shape {j.shape}")
    return np.stack([j[IH_HAND_OFFSET[s] + IH_TO_OURS] for s in SIDES])


def ours_to_ih42(joints: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ih42_to_ours`: ``(2, 21, ...)`` (left, right) -> ``(42, ...)``."""
    j = np.asarray(joints)
    out = np.zeros((NUM_IH_JOINTS,) + j.shape[2:], dtype=j.dtype)
    for k, s in enumerate(SIDES):
        out[IH_HAND_OFFSET[s] + IH_TO_OURS] = j[k]
    return out


def camera_extrinsics(campos_mm: Sequence[float], camrot: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """World->camera ``(R, t)`` in metres from the dataset's ``campos`` (mm) and ``camrot``.

    ``X_cam = R @ X_world + t`` with ``X`` in metres and ``t = -R @ campos / 1000``.
    """
    R = np.asarray(camrot, dtype=np.float64).reshape(3, 3)
    c = np.asarray(campos_mm, dtype=np.float64).reshape(3) / 1000.0
    return R, -R @ c


def world_mm_to_camera_m(points_mm: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, 3) world millimetres -> (N, 3) camera metres."""
    return (np.asarray(points_mm, dtype=np.float64) / 1000.0) @ np.asarray(R).T + np.asarray(t)


def _hand_pose_for_model(model: Any, neural_pose45: np.ndarray) -> np.ndarray:
    """The 45 values to pass as ``hand_pose`` so that the model sees NeuralAnnot's full pose.

    NeuralAnnot stores "pose minus the mean pose" (``flat_hand_mean=False`` convention): the full
    finger rotations are ``hands_mean + pose``. A layer built with ``flat_hand_mean=False`` adds
    its mean itself; one built with ``flat_hand_mean=True`` needs it added here.
    """
    pose = np.asarray(neural_pose45, dtype=np.float64).reshape(45)
    if bool(getattr(model, "flat_hand_mean", False)):
        mean = _model_hands_mean(model)
        pose = pose + mean
    return pose


def _model_hands_mean(model: Any) -> np.ndarray:
    """(45,) float64 mean finger pose of a hand model (``HandModel`` or an ``smplx`` MANO layer).

    ``smplx`` zeroes its ``hand_mean`` buffer in ``flat_hand_mean=True`` layers, so such a layer
    cannot say what its mean is: that case is refused (use a ``flat_hand_mean=False`` layer).
    """
    for name in ("hands_mean", "hand_mean"):
        v = getattr(model, name, None)
        if v is not None:
            mean = np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=np.float64).reshape(45)
            if bool(getattr(model, "flat_hand_mean", False)) and not mean.any():
                raise ValueError("hand model has flat_hand_mean=True and an all-zero mean pose (an smplx "
                                 "layer?): build it with flat_hand_mean=False to read NeuralAnnot fits")
            return mean
    data = getattr(model, "data", None)
    if data is not None and getattr(data, "hands_mean", None) is not None:
        return np.asarray(data.hands_mean, dtype=np.float64).reshape(45)
    raise AttributeError("hand model exposes no hands_mean (needed to turn NeuralAnnot's "
                         "mean-subtracted pose into the full pose)")


def _model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    for t in list(model.buffers()) + list(model.parameters()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


@torch.no_grad()
def rest_root_joint(model: Any, betas: np.ndarray) -> np.ndarray:
    """The rest-pose root (wrist) joint ``J0(betas)`` of a hand model, metres, model frame.

    The global rotation of MANO-style models turns the hand about this point. It depends on the
    shape only (``J0 = J_regressor[0] @ (v_template + shapedirs @ betas)``); it is read from the
    model's ``J_regressor`` / ``v_template`` / ``shapedirs`` buffers, or else from its output with
    zero global rotation and zero translation (the root joint is not moved by the finger pose).
    """
    beta = np.asarray(betas, dtype=np.float64).reshape(-1)
    bufs = [getattr(model, n, None) for n in ("J_regressor", "v_template", "shapedirs")]
    if all(torch.is_tensor(b) for b in bufs):
        jr, vt, sd = (b.detach().cpu().double().numpy() for b in bufs)
        n = min(len(beta), sd.shape[2])
        return jr[0] @ (vt + sd[:, :, :n] @ beta[:n])
    device, dtype = _model_device_dtype(model)
    b = torch.as_tensor(beta.reshape(1, -1), dtype=dtype, device=device)
    z3 = torch.zeros(1, 3, dtype=dtype, device=device)
    out = model(global_orient=z3, hand_pose=torch.zeros(1, 45, dtype=dtype, device=device),
                betas=b, transl=z3, pose_type="axis_angle")
    return out.joints[0, 0].detach().cpu().double().numpy()


def mano_world_to_camera(global_orient: np.ndarray, transl: np.ndarray, root_joint: np.ndarray,
                         R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Express a MANO fit given in the world frame in a camera frame.

    A MANO-style layer produces ``V = Rg (X - J0) + J0 + T``: ``X`` the shaped and posed hand
    before the global rotation, ``J0`` the rest root joint (a function of the shape), ``Rg`` the
    global orientation and ``T`` the translation. Applying the camera ``X_c = R X_w + t`` gives
    ``R Rg (X - J0) + R J0 + R T + t``; writing it again in the layer's form
    ``Rg' (X - J0) + J0 + T'`` yields::

        Rg' = R Rg
        T'  = R (T + J0) + t - J0

    (the rotation is about the root joint, not about the origin, hence the ``J0`` terms).

    Args:
        global_orient: (3,) world axis-angle.
        transl: (3,) world translation, metres.
        root_joint: (3,) ``J0`` of this hand's shape (:func:`rest_root_joint`), metres.
        R, t: world->camera rotation (3, 3) and translation (3,), metres.
    Returns:
        ``(global_orient_cam (3,), transl_cam (3,))`` float64.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    j0 = np.asarray(root_joint, dtype=np.float64).reshape(3)
    rg = R @ axis_angle_to_matrix(global_orient)
    trans = R @ (np.asarray(transl, dtype=np.float64).reshape(3) + j0) + t - j0
    return matrix_to_axis_angle(rg), trans

