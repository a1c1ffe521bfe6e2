"""DIR training losses (paper section 3.3, weights from the reference release).

Every term is applied to every stage (initial estimate and each refinement) with equal weight:

=====================  =========================================================  ======
term                   what                                                       weight
=====================  =========================================================  ======
``joints2d``           smooth-L1 on 2D joints in [-1, 1] crop coordinates          10
``verts2d``            smooth-L1 on 2D vertices                                   10
``joints3d``           smooth-L1 on wrist-relative 3D joints / 0.15 m             10
``verts3d``            smooth-L1 on wrist-relative 3D vertices / 0.15 m           10
``edge``               L1 on mesh edge lengths / 0.15 m                           1
``normal``             1 - cos between predicted and true face normals            0.1
``offset``             smooth-L1 on the right-minus-left root (units of 0.15 m)   10
``seg``                cross-entropy, class weights 0.1 / 0.45 / 0.45 (bg/L/R)    0.1
``dense``              mean squared error of the dense correspondence map         1
``root_rot``           L1 on the root rotation matrix (auxiliary, see below)      1
``finger_rot``         L1 on the 15 finger-joint rotation matrices (auxiliary)    1
``betas``              L1 on the 10 shape values (auxiliary)                      0.1
``camera``             L1 on (log s, tx, ty) against the least-squares weak-      1
                       perspective fit of the true 3D to the true 2D joints
                       (auxiliary)
=====================  =========================================================  ======

The last four terms are **not in the paper**: the release supervises only joints, vertices and
pixels. They use the hand-model parameters every data source here provides (synthetic ground
truth, InterHand2.6M NeuralAnnot fits). Without them, a network trained from scratch on a small
budget settles early into a degenerate optimum (shrunken, distorted shapes and a collapsed
projection while the orientation is still unknown); with them the orientation gets a direct
gradient. Set their weights to 0 to train with the paper's losses only.

"Smooth L1" is the Huber loss with delta 0.01 (the release's choice). Hands marked not valid in
the targets contribute nothing. All functions are pure: tensors in, scalar tensors out.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..hand_model.joints import SIDES
from ..hand_model.lbs import batch_rodrigues, rot6d_to_matrix

UNIT = 0.15  # metres: the release normalises 3D coordinates and the offset by 0.15 m


@dataclass
class LossWeights:
    joints2d: float = 10.0
    verts2d: float = 10.0
    joints3d: float = 10.0
    verts3d: float = 10.0
    edge: float = 1.0
    normal: float = 0.1
    offset: float = 10.0
    seg: float = 0.1
    dense: float = 1.0
    root_rot: float = 1.0
    finger_rot: float = 1.0
    betas: float = 0.1
    camera: float = 1.0
    huber_delta: float = 0.01
    seg_class_weights: tuple = (0.1, 0.45, 0.45)

    @classmethod
    def from_dict(cls, d: dict | None) -> "LossWeights":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {sorted(known)}")
        if "seg_class_weights" in d:
            d["seg_class_weights"] = tuple(d["seg_class_weights"])
        return cls(**d)


def masked_huber(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, delta: float) -> torch.Tensor:
    """Huber loss averaged over valid samples.

    Args:
        pred, target: (B, ..., D) tensors.
        valid: (B,) bool or float mask.
        delta: Huber threshold.
    Returns:
        () scalar: mean over valid samples of the per-element loss (0 when none valid).
    """
    per = F.huber_loss(pred, target, reduction="none", delta=delta)
    per = per.flatten(1).mean(dim=1)
    w = valid.to(per.dtype)
    return (per * w).sum() / w.sum().clamp(min=1.0)


def edge_length_loss(verts: torch.Tensor, verts_gt: torch.Tensor, edges: torch.Tensor,
                     valid: torch.Tensor) -> torch.Tensor:
    """L1 difference of mesh edge lengths.

    Args:
        verts, verts_gt: (B, V, 3).
        edges: (E, 2) long, unique undirected edges.
        valid: (B,) mask.
    Returns:
        () scalar.
    """
    def lengths(v: torch.Tensor) -> torch.Tensor:
        return (v[:, edges[:, 0]] - v[:, edges[:, 1]]).norm(dim=-1)

    per = (lengths(verts) - lengths(verts_gt)).abs().mean(dim=1)
    w = valid.to(per.dtype)
    return (per * w).sum() / w.sum().clamp(min=1.0)


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit face normals.

    Args:
        verts: (B, V, 3); faces: (F, 3) long.
    Returns:
        (B, F, 3).
    """
    a, b, c = verts[:, faces[:, 0]], verts[:, faces[:, 1]], verts[:, faces[:, 2]]
    return F.normalize(torch.cross(b - a, c - a, dim=-1), dim=-1, eps=1e-12)


def normal_consistency_loss(verts: torch.Tensor, verts_gt: torch.Tensor, faces: torch.Tensor,
                            valid: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos`` between predicted and ground-truth face normals.

    Args:
        verts, verts_gt: (B, V, 3); faces: (F, 3) long; valid: (B,).
    Returns:
        () scalar.
    """
    cos = (face_normals(verts, faces) * face_normals(verts_gt, faces)).sum(dim=-1)
    per = (1.0 - cos).mean(dim=1)
    w = valid.to(per.dtype)
    return (per * w).sum() / w.sum().clamp(min=1.0)


def unique_edges(faces: torch.Tensor) -> torch.Tensor:
    """Undirected unique edges of a triangle mesh.

    Args:
        faces: (F, 3) long.
    Returns:
        (E, 2) long with ``edges[:, 0] < edges[:, 1]``.
    """
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], dim=0)
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over valid samples. pred, target: (B, ...); valid: (B,)."""
    per = (pred - target).abs().flatten(1).mean(dim=1)
    w = valid.to(per.dtype)
    return (per * w).sum() / w.sum().clamp(min=1.0)


def parameter_losses(params: torch.Tensor, target_pose: torch.Tensor, target_betas: torch.Tensor,
                     pose_to_axis_angle, num_pca: int, valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """Auxiliary hand-model parameter losses of one hand (unweighted).

    Args:
        params: (B, 64) network parameters (6D root rotation, K PCA coefficients, betas, camera).
        target_pose: (B, 48) camera-frame root axis-angle + full 45 axis-angle (mean included).
        target_betas: (B, 10).
        pose_to_axis_angle: the network hand model's ``hand_pose_to_axis_angle`` (PCA
            coefficients (B, K) -> full (B, 45) axis-angle, mean included unless flat).
        num_pca: K.
        valid: (B,) mask.
    Returns:
        ``root_rot``, ``finger_rot``, ``betas`` scalars.
    """
    k = num_pca
    b = params.shape[0]
    root = rot6d_to_matrix(params[:, 0:6])
    fingers = batch_rodrigues(pose_to_axis_angle(params[:, 6:6 + k], "pca").reshape(-1, 3)).reshape(b, 15, 3, 3)
    root_t = batch_rodrigues(target_pose[:, :3])
    fingers_t = batch_rodrigues(target_pose[:, 3:].reshape(-1, 3)).reshape(b, 15, 3, 3)
    nb = target_betas.shape[1]
    return {"root_rot": masked_l1(root, root_t, valid), "finger_rot": masked_l1(fingers, fingers_t, valid),
            "betas": masked_l1(params[:, 6 + k:6 + k + nb], target_betas, valid)}


def fit_weak_perspective(xyz: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Least-squares weak-perspective camera: ``argmin_{s,t} sum |s * xyz[:, :2] + t - uv|^2``.

    Args:
        xyz: (B, J, 3) wrist-relative 3D points (metres); uv: (B, J, 2) their 2D positions.
    Returns:
        (B, 3) ``(s, tx, ty)``; ``s = <xy_c, uv_c> / |xy_c|^2`` with both centred.
    """
    xy = xyz[..., :2]
    xy_c, uv_c = xy - xy.mean(dim=1, keepdim=True), uv - uv.mean(dim=1, keepdim=True)
    s = (xy_c * uv_c).sum(dim=(1, 2)) / (xy_c ** 2).sum(dim=(1, 2)).clamp(min=1e-12)
    t = uv.mean(dim=1) - s[:, None] * xy.mean(dim=1)
    return torch.cat([s[:, None], t], dim=1)


def camera_loss(cam: torch.Tensor, xyz: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L1 between a predicted camera and the fit of the true joints, scale compared in log space.

    Args:
        cam: (B, 3) decoded ``(s, tx, ty)``; xyz: (B, J, 3) true wrist-relative joints;
        uv: (B, J, 2) true 2D joints in [-1, 1]; valid: (B,).
    """
    gt = fit_weak_perspective(xyz, uv)
    log_s = lambda c: torch.log(c[:, :1].clamp(min=1e-3))  # noqa: E731
    pred = torch.cat([log_s(cam), cam[:, 1:]], dim=1)
    return masked_l1(pred, torch.cat([log_s(gt), gt[:, 1:]], dim=1), valid)


def stage_loss(stage: dict, targets: dict, mesh: dict, w: LossWeights) -> dict[str, torch.Tensor]:
    """Weighted loss terms of one stage's prediction (both hands).

    Args:
        stage: one element of ``DIRNet(...)["stages"]`` (joints/verts/joints2d/verts2d per side,
            offset (B, 3) in units of 0.15 m).
        targets: batch from ``data.dataset.to_training_targets`` collated: ``joints3d_rel``
            (B, 2, 21, 3) and ``verts3d_rel`` (B, 2, V, 3) wrist-relative metres, ``joints2d`` (B, 2, 21, 2) and
            ``verts2d`` (B, 2, V, 2) in [-1, 1], ``offset`` (B, 3) in units of 0.15 m,
            ``hand_valid`` (B, 2).
        mesh: ``{"faces": {side: (F, 3)}, "edges": {side: (E, 2)}}`` long tensors, and
            ``"hand_models": {side: HandModel}`` for the parameter terms.
    Returns:
        dict of weighted scalar terms (without the pixel-wise terms).
    """
    out: dict[str, torch.Tensor] = {}
    d = w.huber_delta
    use_params = (w.root_rot or w.finger_rot or w.betas) and "pose" in targets and "hand_models" in mesh
    for k in ("joints2d", "verts2d", "joints3d", "verts3d", "edge", "normal", "camera") + (
            ("root_rot", "finger_rot", "betas") if use_params else ()):
        out[k] = stage["offset"].new_zeros(())
    for i, side in enumerate(SIDES):
        valid = targets["hand_valid"][:, i]
        pj, pv = stage["joints"][side], stage["verts"][side]
        tj, tv = targets["joints3d_rel"][:, i], targets["verts3d_rel"][:, i]
        out["joints3d"] = out["joints3d"] + masked_huber(pj / UNIT, tj / UNIT, valid, d)
        out["verts3d"] = out["verts3d"] + masked_huber(pv / UNIT, tv / UNIT, valid, d)
        out["joints2d"] = out["joints2d"] + masked_huber(stage["joints2d"][side], targets["joints2d"][:, i], valid, d)
        out["verts2d"] = out["verts2d"] + masked_huber(stage["verts2d"][side], targets["verts2d"][:, i], valid, d)
        out["edge"] = out["edge"] + edge_length_loss(pv / UNIT, tv / UNIT, mesh["edges"][side], valid)
        out["normal"] = out["normal"] + normal_consistency_loss(pv, tv, mesh["faces"][side], valid)
        if w.camera:
            out["camera"] = out["camera"] + camera_loss(stage["camera"][side], tj, targets["joints2d"][:, i], valid)
        if use_params:
            hm = mesh["hand_models"][side]
            for k, v in parameter_losses(stage["params"][side], targets["pose"][:, i], targets["betas"][:, i],
                                         hm.hand_pose_to_axis_angle, hm.num_pca_comps, valid).items():
                out[k] = out[k] + v
    both = targets["hand_valid"].all(dim=1)
    out["offset"] = masked_huber(stage["offset"], targets["offset"], both, d)
    return {k: v * getattr(w, k) for k, v in out.items()}


def pixel_losses(pred: dict, targets: dict, w: LossWeights) -> dict[str, torch.Tensor]:
    """Segmentation and dense-correspondence losses.

    Args:
        pred: ``seg`` (B, 3, h, w) logits and ``dense`` (B, 3, h, w) in [0, 1].
        targets: ``seg`` (B, h', w') long and ``dense`` (B, 3, h', w') in [0, 1]; resized to the
            prediction's size if they differ. The dense loss counts hand pixels only.
    Returns:
        dict with weighted ``seg`` and ``dense`` scalars.
    """
    seg_logits, dense = pred["seg"], pred["dense"]
    seg_t, dense_t = targets["seg"], targets["dense"]
    if seg_t.shape[-2:] != seg_logits.shape[-2:]:
        seg_t = F.interpolate(seg_t[:, None].float(), size=seg_logits.shape[-2:], mode="nearest")[:, 0].long()
        dense_t = F.interpolate(dense_t, size=dense.shape[-2:], mode="area")
    cw = torch.tensor(w.seg_class_weights, dtype=seg_logits.dtype, device=seg_logits.device)
    seg = F.cross_entropy(seg_logits, seg_t, weight=cw)
    fg = (seg_t > 0).to(dense.dtype)[:, None]
    dense_l = (((dense - dense_t) ** 2) * fg).sum() / (fg.sum() * 3).clamp(min=1.0)
    return {"seg": seg * w.seg, "dense": dense_l * w.dense}


def dir_loss(pred: dict, targets: dict, mesh: dict, w: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss over all stages plus pixel terms.

    Returns:
        ``(total, logs)`` where logs holds float values per term summed over stages and
        ``stage{i}`` totals.
    """
    total = pred["stages"][0]["offset"].new_zeros(())
    logs: dict[str, float] = {}
    for i, stage in enumerate(pred["stages"]):
        terms = stage_loss(stage, targets, mesh, w)
        s = sum(terms.values())
        total = total + s
        logs[f"stage{i}"] = float(s.detach())
        for k, v in terms.items():
            logs[k] = logs.get(k, 0.0) + float(v.detach())
    for k, v in pixel_losses(pred, targets, w).items():
        total = total + v
        logs[k] = float(v.detach())
    logs["total"] = float(total.detach())
    return total, logs
