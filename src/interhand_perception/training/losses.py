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
``attention``          binary cross-entropy of each hand's spatial attention      0 (off)
                       map (initial head, stride 32) against that hand's mask,
                       average-pooled from the stride-8 seg target (optional)
=====================  =========================================================  ======

The last four terms are **not in the paper**: the release supervises only joints, vertices and
pixels. They use the hand-model parameters every data source here provides (synthetic ground
truth, InterHand2.6M NeuralAnnot fits). Without them, a network trained from scratch on a small
budget settles early into a degenerate optimum (shrunken, distorted shapes and a collapsed
projection while the orientation is still unknown); with them the orientation gets a direct
gradient. Set their weights to 0 to train with the paper's losses only.

``attention`` is not in the paper either: the release lets the attention maps that split the
features into a left and a right hand learn only through the regression. Supervising them with
the hand masks gives the left/right split a direct signal (set ``loss.attention`` > 0).

"Smooth L1" is the Huber loss with delta 0.01 (the release's choice). Hands marked not valid in
the targets contribute nothing. All functions are pure: tensors in, scalar tensors out.

Precision and synchronisation: :func:`dir_loss_terms` casts every prediction to float32 and
runs with autocast disabled, so mixed-precision training (bf16/fp16 autocast around the forward)
computes its losses in fp32. It reads no value back to the host: the per-term logs stay 0-d
tensors on the device until :func:`logs_to_floats` copies all of them at once (one sync).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..hand_model.joints import SIDES
from ..dir_net.inputs import UNIT
from ..hand_model.lbs import batch_rodrigues, rot6d_to_matrix



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
    attention: float = 0.0
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


_CONSTANTS: dict = {}


def device_constant(values: tuple, like: torch.Tensor) -> torch.Tensor:
    """A small constant tensor on ``like``'s device and dtype, built once and cached.

    ``torch.tensor(values, device=cuda)`` copies from the host and waits for the copy, which
    stalls the CPU until the GPU has finished all queued work; a cached copy avoids that.

    Args:
        values: tuple of Python numbers; like: any tensor (sets device and dtype).
    Returns:
        (len(values),) tensor (do not modify it in place).
    """
    if torch.compiler.is_compiling():  # a constant of the compiled graph: no copy per call
        return torch.tensor(values, dtype=like.dtype, device=like.device)
    key = (tuple(values), like.device, like.dtype)
    out = _CONSTANTS.get(key)
    if out is None:
        out = _CONSTANTS[key] = torch.tensor(values, dtype=like.dtype, device=like.device)
    return out


def to_float32(tree):
    """``tree`` (nested dicts/lists/tuples of tensors) with every floating tensor in float32.

    Tensors already in float32 are returned as they are (no copy).
    """
    if torch.is_tensor(tree):
        return tree.float() if tree.is_floating_point() and tree.dtype != torch.float32 else tree
    if isinstance(tree, dict):
        return {k: to_float32(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_float32(v) for v in tree)
    return tree


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
    return _valid_mean(per.flatten(1).mean(dim=1), valid)


def _valid_mean(per: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample values (B,) over the valid samples (0 when none is)."""
    w = valid.to(per.dtype)
    return (per * w).sum() / w.sum().clamp(min=1.0)


def edge_lengths(verts: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vertices, (E, 2) long edges -> (B, E) edge lengths."""
    return (verts[:, edges[:, 0]] - verts[:, edges[:, 1]]).norm(dim=-1)


def edge_length_loss(verts: torch.Tensor, verts_gt: torch.Tensor, edges: torch.Tensor,
                     valid: torch.Tensor, lengths_gt: torch.Tensor | None = None) -> torch.Tensor:
    """L1 difference of mesh edge lengths.

    Args:
        verts, verts_gt: (B, V, 3).
        edges: (E, 2) long, unique undirected edges.
        valid: (B,) mask.
        lengths_gt: (B, E) ``edge_lengths(verts_gt, edges)`` when already computed (then
            ``verts_gt`` is not read).
    Returns:
        () scalar.
    """
    if lengths_gt is None:
        lengths_gt = edge_lengths(verts_gt, edges)
    return _valid_mean((edge_lengths(verts, edges) - lengths_gt).abs().mean(dim=1), valid)


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
                            valid: torch.Tensor, normals_gt: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ``1 - cos`` between predicted and ground-truth face normals.

    Args:
        verts, verts_gt: (B, V, 3); faces: (F, 3) long; valid: (B,).
        normals_gt: (B, F, 3) ``face_normals(verts_gt, faces)`` when already computed.
    Returns:
        () scalar.
    """
    if normals_gt is None:
        normals_gt = face_normals(verts_gt, faces)
    cos = (face_normals(verts, faces) * normals_gt).sum(dim=-1)
    return _valid_mean((1.0 - cos).mean(dim=1), valid)


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
    return _valid_mean((pred - target).abs().flatten(1).mean(dim=1), valid)


def target_rotations(target_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 48) axis-angle pose -> root (B, 3, 3) and finger (B, 15, 3, 3) rotation matrices."""
    b = target_pose.shape[0]
    return batch_rodrigues(target_pose[:, :3]), batch_rodrigues(target_pose[:, 3:].reshape(-1, 3)).reshape(b, 15, 3, 3)


def parameter_losses(params: torch.Tensor, target_pose: torch.Tensor | None, target_betas: torch.Tensor,
                     pose_to_axis_angle, num_pca: int, valid: torch.Tensor,
                     target_rots: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Auxiliary hand-model parameter losses of one hand (unweighted).

    Args:
        params: (B, 64) network parameters (6D root rotation, K PCA coefficients, betas, camera).
        target_pose: (B, 48) camera-frame root axis-angle + full 45 axis-angle (mean included).
        target_betas: (B, 10).
        pose_to_axis_angle: the network hand model's ``hand_pose_to_axis_angle`` (PCA
            coefficients (B, K) -> full (B, 45) axis-angle, mean included unless flat).
        num_pca: K.
        valid: (B,) mask.
        target_rots: ``target_rotations(target_pose)`` when already computed (then
            ``target_pose`` is not read).
    Returns:
        ``root_rot``, ``finger_rot``, ``betas`` scalars.
    """
    k = num_pca
    b = params.shape[0]
    root = rot6d_to_matrix(params[:, 0:6])
    fingers = batch_rodrigues(pose_to_axis_angle(params[:, 6:6 + k], "pca").reshape(-1, 3)).reshape(b, 15, 3, 3)
    root_t, fingers_t = target_rots if target_rots is not None else target_rotations(target_pose)
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


def _log_scale_camera(cam: torch.Tensor) -> torch.Tensor:
    """(B, 3) ``(s, tx, ty)`` -> ``(log max(s, 1e-3), tx, ty)``."""
    return torch.cat([torch.log(cam[:, :1].clamp(min=1e-3)), cam[:, 1:]], dim=1)


def camera_loss(cam: torch.Tensor, xyz: torch.Tensor | None, uv: torch.Tensor | None, valid: torch.Tensor,
                target_log_cam: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between a predicted camera and the fit of the true joints, scale compared in log space.

    Args:
        cam: (B, 3) decoded ``(s, tx, ty)``; xyz: (B, J, 3) true wrist-relative joints;
        uv: (B, J, 2) true 2D joints in [-1, 1]; valid: (B,).
        target_log_cam: (B, 3) the fit in log space (``camera_targets``) when already computed
            (then ``xyz`` and ``uv`` are not read).
    """
    if target_log_cam is None:
        target_log_cam = _log_scale_camera(fit_weak_perspective(xyz, uv))
    return masked_l1(_log_scale_camera(cam), target_log_cam, valid)


def batch_targets(targets: dict, mesh: dict, w: LossWeights) -> dict[str, dict[str, torch.Tensor]]:
    """What every stage's loss needs of the targets, computed once per batch (no gradient).

    Returns:
        {side: {"joints" (B, 21, 3) and "verts" (B, V, 3) in units of 0.15 m, "valid" (B,),
        "edge_len" (B, E), "normals" (B, F, 3), "log_cam" (B, 3) (when ``w.camera``),
        "rots" (root (B, 3, 3), fingers (B, 15, 3, 3)) (when ``"pose"`` is in the targets)}}.
    """
    out = {}
    for i, side in enumerate(SIDES):
        tj, tv = targets["joints3d_rel"][:, i], targets["verts3d_rel"][:, i]
        t = {"joints": tj / UNIT, "verts": tv / UNIT, "valid": targets["hand_valid"][:, i],
             "edge_len": edge_lengths(tv / UNIT, mesh["edges"][side]),
             "normals": face_normals(tv, mesh["faces"][side])}
        if w.camera:
            t["log_cam"] = _log_scale_camera(fit_weak_perspective(tj, targets["joints2d"][:, i]))
        if "pose" in targets:
            t["rots"] = target_rotations(targets["pose"][:, i])
        out[side] = t
    return out


def stage_loss(stage: dict, targets: dict, mesh: dict, w: LossWeights,
               prepared: dict | None = None) -> dict[str, torch.Tensor]:
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
        prepared: ``batch_targets(targets, mesh, w)`` when already computed (shared by stages).
    Returns:
        dict of weighted scalar terms (without the pixel-wise terms).
    """
    if prepared is None:
        prepared = batch_targets(targets, mesh, w)
    out: dict[str, torch.Tensor] = {}
    d = w.huber_delta
    use_params = (w.root_rot or w.finger_rot or w.betas) and "pose" in targets and "hand_models" in mesh
    for k in ("joints2d", "verts2d", "joints3d", "verts3d", "edge", "normal", "camera") + (
            ("root_rot", "finger_rot", "betas") if use_params else ()):
        out[k] = stage["offset"].new_zeros(())
    for i, side in enumerate(SIDES):
        t = prepared[side]
        valid = t["valid"]
        pv = stage["verts"][side]
        pv_u = pv / UNIT
        out["joints3d"] = out["joints3d"] + masked_huber(stage["joints"][side] / UNIT, t["joints"], valid, d)
        out["verts3d"] = out["verts3d"] + masked_huber(pv_u, t["verts"], valid, d)
        out["joints2d"] = out["joints2d"] + masked_huber(stage["joints2d"][side], targets["joints2d"][:, i], valid, d)
        out["verts2d"] = out["verts2d"] + masked_huber(stage["verts2d"][side], targets["verts2d"][:, i], valid, d)
        out["edge"] = out["edge"] + edge_length_loss(pv_u, None, mesh["edges"][side], valid, t["edge_len"])
        out["normal"] = out["normal"] + normal_consistency_loss(pv, None, mesh["faces"][side], valid, t["normals"])
        if w.camera:
            out["camera"] = out["camera"] + camera_loss(stage["camera"][side], None, None, valid, t["log_cam"])
        if use_params:
            hm = mesh["hand_models"][side]
            for k, v in parameter_losses(stage["params"][side], None, targets["betas"][:, i],
                                         hm.hand_pose_to_axis_angle, hm.num_pca_comps, valid, t["rots"]).items():
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
    cw = device_constant(tuple(float(c) for c in w.seg_class_weights), seg_logits)
    seg = F.cross_entropy(seg_logits, seg_t, weight=cw)
    fg = (seg_t > 0).to(dense.dtype)[:, None]
    dense_l = (((dense - dense_t) ** 2) * fg).sum() / (fg.sum() * 3).clamp(min=1.0)
    return {"seg": seg * w.seg, "dense": dense_l * w.dense}


def attention_targets(seg: torch.Tensor, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Soft per-hand masks at the attention maps' size.

    Args:
        seg: (B, H, W) long, 0 background, 1 left, 2 right (stride-8 target).
        size: (h, w) of the attention maps (stride 32).
    Returns:
        {side: (B, 1, h, w)} float32 in [0, 1]: the fraction of each cell covered by the hand
        (average pooling of its binary mask; exact when H, W are multiples of h, w).
    """
    out = {}
    for i, side in enumerate(SIDES):
        mask = (seg == i + 1).to(torch.float32)[:, None]
        out[side] = F.adaptive_avg_pool2d(mask, size)
    return out


def attention_loss(logits: dict, seg: torch.Tensor, hand_valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each hand's attention map against its soft mask (unweighted).

    Args:
        logits: {side: (B, 1, h, w)} attention logits (``sigmoid`` of them is the attention).
        seg: (B, H, W) long seg target (0 bg, 1 left, 2 right).
        hand_valid: (B, 2) mask; a hand not valid in a sample contributes nothing.
    Returns:
        () scalar: sum over the hands of the mean over valid samples of the per-cell BCE.
    """
    first = logits[SIDES[0]]
    soft = attention_targets(seg, tuple(first.shape[-2:]))
    total = first.new_zeros((), dtype=torch.float32)
    for i, side in enumerate(SIDES):
        bce = F.binary_cross_entropy_with_logits(logits[side].float(), soft[side], reduction="none")
        per = bce.flatten(1).mean(dim=1)
        v = hand_valid[:, i].to(per.dtype)
        total = total + (per * v).sum() / v.sum().clamp(min=1.0)
    return total


def _attention_logits(pred: dict) -> dict:
    """{side: (B, 1, h, w)} logits: ``attention_logits``, else the logit of ``attention``."""
    if "attention_logits" in pred:
        return pred["attention_logits"]
    eps = 1e-6
    return {s: torch.logit(a.float().clamp(eps, 1.0 - eps)) for s, a in pred["attention"].items()}


def dir_loss_terms(pred: dict, targets: dict, mesh: dict,
                   w: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss over all stages plus pixel terms, without reading anything back to the host.

    The predictions are cast to float32 and the terms computed with autocast disabled, so the
    losses are fp32 whatever precision the forward ran in.

    Returns:
        ``(total, logs)``: ``total`` the () loss to back-propagate; ``logs`` detached () tensors
        per term (summed over stages) and ``stage{i}`` totals, and ``total``.
    """
    pred = to_float32(pred)
    device_type = pred["stages"][0]["offset"].device.type
    with torch.autocast(device_type=device_type, enabled=False):
        total = pred["stages"][0]["offset"].new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        prepared = batch_targets(targets, mesh, w)  # target-only quantities, shared by the stages
        for i, stage in enumerate(pred["stages"]):
            terms = stage_loss(stage, targets, mesh, w, prepared)
            s = sum(terms.values())
            total = total + s
            logs[f"stage{i}"] = s.detach()
            for k, v in terms.items():
                logs[k] = logs[k] + v.detach() if k in logs else v.detach()
        pixel = pixel_losses(pred, targets, w)
        if w.attention:
            pixel["attention"] = w.attention * attention_loss(_attention_logits(pred), targets["seg"],
                                                              targets["hand_valid"])
        for k, v in pixel.items():
            total = total + v
            logs[k] = v.detach()
        logs["total"] = total.detach()
    return total, logs


def logs_to_floats(logs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detached () tensors -> Python floats with one device-to-host copy (one sync)."""
    if not logs:
        return {}
    values = torch.stack([v.detach().float().reshape(()) for v in logs.values()]).tolist()
    return dict(zip(logs.keys(), values))


def dir_loss(pred: dict, targets: dict, mesh: dict, w: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss over all stages plus pixel terms (see :func:`dir_loss_terms`).

    Returns:
        ``(total, logs)`` where logs holds float values per term summed over stages and
        ``stage{i}`` totals (read back with one sync).
    """
    total, logs = dir_loss_terms(pred, targets, mesh, w)
    return total, logs_to_floats(logs)
