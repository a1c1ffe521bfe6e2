"""``interhand eval``: run a network over a test set and report every metric per stage.

Reported (millimetres unless stated):

* MPJPE / MPVPE under the three protocols of :mod:`evaluation.metrics` for every stage
  (stage 0 = initial estimate, then each refinement), so the effect of refinement is visible;
* MRRPE of the right-minus-left wrist vector (the network's offset vs. ground truth);
* MIAA in crop pixels; PCK curve and AUC over 0-50 mm (wrist-aligned, scaled joints);
* interpenetration volume (cm^3, 0.5 cm voxels) of the predicted pair and of the ground truth;
* handedness diagnostics (:mod:`evaluation.handedness`): left/right accuracy of the segmentation
  head, distance between the two predicted hand centres, spread of the predicted offset and
  palm-orientation error, each next to its ground-truth value or a constant-guess baseline, so a
  network that never learns which hand is which is visible in the summary.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from ..dir_net.inputs import UNIT, normalise_batch
from ..hand_model.joints import SIDES
from .handedness import downsample_seg, handedness_summary
from .penetration_volume import penetration_volume
from .metrics import evaluate_protocols, joint_errors, miaa, pck_curve


def sample_batches(dataset, batch_size: int, progress: bool = True, desc: str = "eval"):
    """Consecutive raw samples of ``dataset`` as lists of at most ``batch_size`` (the last may be
    shorter), in order, under a tqdm bar (``progress``)."""
    n = len(dataset)
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc=desc, unit="batch"):
        yield [dataset[i] for i in range(start, min(n, start + batch_size))]


def ground_truth(samples: list[dict]) -> dict:
    """The labels of raw samples as arrays: joints (B,2,21,3) and verts (B,2,V,3) in metres,
    joints2d (B,2,21,2) and verts2d (B,2,V,2) in crop pixels, valid (B,2) bool."""
    return {"joints": np.stack([s["joints3d"] for s in samples]), "verts": np.stack([s["verts3d"] for s in samples]),
            "verts2d": np.stack([s["verts2d"] for s in samples]),
            "joints2d": np.stack([s["joints2d"] for s in samples]),
            "valid": np.stack([s["hand_valid"] for s in samples]).astype(bool)}


def seg_labels(samples: list[dict], size) -> np.ndarray | None:
    """Ground-truth labels (B, h, w) at the seg head's map ``size`` (h, w) (nearest, sampled at
    cell centres: :func:`handedness.downsample_seg`), or None when a sample has no ``seg``."""
    if not all("seg" in s for s in samples):
        return None
    return downsample_seg(np.stack([s["seg"] for s in samples]), tuple(size))


def stack_prediction(pred: dict, img_size: int) -> list[dict]:
    """Per stage numpy arrays: joints (B,2,21,3) and verts (B,2,V,3) in a common frame
    (left wrist at the origin, right wrist at the predicted offset), verts2d (B,2,V,2) and
    joints2d (B,2,21,2) in crop pixels, offset (B,3) right minus left root in units of UNIT."""
    out = []
    for st in pred["stages"]:
        offset = (st["offset"].float() * UNIT).cpu().numpy()  # (B, 3) metres
        shift = np.stack([np.zeros_like(offset), offset], axis=1)[:, :, None, :]
        joints = np.stack([st["joints"][s].float().cpu().numpy() for s in SIDES], axis=1) + shift
        verts = np.stack([st["verts"][s].float().cpu().numpy() for s in SIDES], axis=1) + shift
        v2d = np.stack([st["verts2d"][s].float().cpu().numpy() for s in SIDES], axis=1)
        j2d = np.stack([st["joints2d"][s].float().cpu().numpy() for s in SIDES], axis=1)
        out.append({"joints": joints, "verts": verts, "verts2d": (v2d + 1.0) * (img_size / 2.0),
                    "joints2d": (j2d + 1.0) * (img_size / 2.0), "offset": offset / UNIT})
    return out


@torch.inference_mode()
def evaluate_model(model: torch.nn.Module, dataset, batch_size: int = 16, device=None,
                   with_iv: bool = True, iv_samples: int = 100, progress: bool = True) -> dict:
    """Evaluate ``model`` (a DIRNet) on a dataset of raw samples (see docs/architecture.md).

    Returns:
        ``{"summary": flat dict of headline numbers, "stages": [protocol dicts per stage],
        "pck": {"thresholds_mm", "pck"}, "num_samples": N}``.

        The summary holds ``mpjpe_stage{i}`` for every stage i (0 = initial), the final stage's
        protocol numbers, MIAA, AUC/PCK, optionally ``iv_cm3``/``iv_gt_cm3``, and the
        handedness diagnostics of :func:`evaluation.handedness.handedness_summary`:

        * ``lr_seg_acc``: on GT hand pixels (GT seg downsampled to the seg head's S/8 map by
          nearest sampling at cell centres), fraction where the larger of the left/right logits
          is the GT side (background ignored; chance 0.5); ``seg_acc``: 3-class pixel accuracy;
        * ``lr_centre_dist_px`` / ``lr_centre_dist_gt_px``: mean distance (crop pixels) between
          the left and right hand centres (mean of the 21 projected joints, final stage) /
          the same for the GT 2D joints, over samples with both hands;
        * ``offset_spread`` / ``offset_spread_gt``: RMS distance to their mean of the final
          predicted offsets / of the GT right-minus-left wrist vectors, units of 0.15 m;
        * ``palm_normal_err_deg`` (``_left``, ``_right``): mean angle between predicted (final
          stage) and GT palm normals; ``palm_normal_err_const_deg`` (``_left``, ``_right``):
          the same for the constant guess = the normalised mean GT normal of the side.
    """
    model.eval()
    device = device or next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    stages_acc: list[dict[str, list]] = []
    gt_acc: dict[str, list] = {"joints": [], "verts": [], "verts2d": [], "joints2d": [], "valid": [], "seg": []}
    seg_logits: list[np.ndarray] = []
    with_seg = True  # every batch has a seg head output and GT labels
    faces = {s: np.asarray(model.hand_models[s].faces) for s in SIDES} if hasattr(model, "hand_models") else None
    for samples in sample_batches(dataset, batch_size, progress):
        img_size = samples[0]["image"].shape[0]
        pred = model(normalise_batch([s["image"] for s in samples], device, dtype))
        per_stage = stack_prediction(pred, img_size)
        if not stages_acc:
            stages_acc = [{k: [] for k in per_stage[0]} for _ in per_stage]
        for acc, st in zip(stages_acc, per_stage):
            for k, v in st.items():
                acc[k].append(v)
        for k, v in ground_truth(samples).items():
            gt_acc[k].append(v)
        labels = seg_labels(samples, pred["seg"].shape[-2:]) if "seg" in pred else None
        with_seg = with_seg and labels is not None
        if with_seg:
            seg_logits.append(pred["seg"].float().cpu().numpy())
            gt_acc["seg"].append(labels)
    gt = {k: np.concatenate(v) for k, v in gt_acc.items() if v}
    stages = [{k: np.concatenate(v) for k, v in acc.items()} for acc in stages_acc]

    summary: dict = {}
    stage_reports = []
    for i, st in enumerate(stages):
        rep = evaluate_protocols(st["joints"], gt["joints"], st["verts"], gt["verts"], gt["valid"])
        stage_reports.append(rep)
        summary[f"mpjpe_stage{i}"] = rep["wrist_scaled"]["mpjpe"]
    final, rep = stages[-1], stage_reports[-1]
    summary.update({
        "mpjpe": rep["wrist_scaled"]["mpjpe"], "mpvpe": rep["wrist_scaled"]["mpvpe"],
        "mpjpe_ms": rep["mcp_scaled"]["mpjpe"], "mpvpe_ms": rep["mcp_scaled"]["mpvpe"],
        "mpjpe_m": rep["mcp"]["mpjpe"], "mpvpe_m": rep["mcp"]["mpvpe"], "mrrpe": rep["mrrpe"],
    })
    v = gt["valid"]
    if getattr(getattr(model, "config", None), "variant", "project") == "release":  # also the release's protocol
        from .release_protocol import release_protocol_summary

        regs = {sd: model.hand_models[sd].J_regressor.float().cpu().numpy() for sd in SIDES}
        summary.update(release_protocol_summary(final["verts"], final["offset"] * UNIT, gt["verts"], v, regs))
    summary["miaa_px"] = float(miaa(final["verts2d"][v], gt["verts2d"][v]).mean()) if v.any() else math.nan
    errs = joint_errors(final["joints"][v], gt["joints"][v], root=0, scale=True)
    thresholds = np.linspace(0.0, 50.0, 101)
    pck, auc = pck_curve(errs, thresholds)
    summary["auc_0_50"] = auc
    summary["pck_20mm"] = float(pck[np.searchsorted(thresholds, 20.0)])
    gt_offset = (gt["joints"][:, 1, 0] - gt["joints"][:, 0, 0]) / UNIT
    summary.update(handedness_summary(
        np.concatenate(seg_logits) if with_seg and seg_logits else None, gt.get("seg"), final["joints2d"], gt["joints2d"],
        final["offset"], gt_offset, final["joints"], gt["joints"], v))
    if with_iv and faces is not None:
        both = np.nonzero(v.all(axis=1))[0][:iv_samples]
        iv_pred = [penetration_volume(final["verts"][j, 0], faces["left"], final["verts"][j, 1], faces["right"]) for j in both]
        iv_gt = [penetration_volume(gt["verts"][j, 0], faces["left"], gt["verts"][j, 1], faces["right"]) for j in both]
        summary["iv_cm3"] = float(np.mean(iv_pred)) if iv_pred else math.nan
        summary["iv_gt_cm3"] = float(np.mean(iv_gt)) if iv_gt else math.nan
    return {"summary": summary, "stages": stage_reports, "num_samples": len(dataset),
            "pck": {"thresholds_mm": thresholds.tolist(), "pck": pck.tolist()}}


def load_for_eval(checkpoint: str, data: str = "synthetic", root: str | None = None, split: str = "test",
                  num_samples: int = 500, device: str = "auto", mano_dir: str | None = None) -> tuple:
    """The checkpoint's :class:`HandReconstructor`, its run config with ``data.kind``/``root``
    set, and the first ``num_samples`` samples of the held-out ``split`` (raw sample dicts)."""
    from ..network.reconstructor import HandReconstructor
    from ..data.splits import build_test_set

    rec = HandReconstructor.from_checkpoint(checkpoint, device=device, mano_dir=mano_dir)
    cfg = dict(rec.config)
    cfg["data"] = {**cfg["data"], "kind": data, "root": root or cfg["data"].get("root")}
    return rec, cfg, build_test_set(cfg, rec.hand_models, limit=num_samples, split=split)


def evaluate_checkpoint(checkpoint: str, data: str = "synthetic", root: str | None = None, split: str = "test",
                        num_samples: int = 500, iv_samples: int = 100, device: str = "auto",
                        mano_dir: str | None = None, batch_size: int = 16, overlay: str | None = None,
                        overlay_samples: int = 6) -> dict:
    """Load a checkpoint and evaluate it on the synthetic test split or on InterHand2.6M.

    With ``overlay`` a PNG is written: input, predicted meshes, side view and ground truth for
    the first ``overlay_samples`` samples.
    """
    rec, cfg, dataset = load_for_eval(checkpoint, data, root, split, num_samples, device, mano_dir)
    res = evaluate_model(rec.model, dataset, batch_size=batch_size, device=rec.device,
                         with_iv=iv_samples > 0, iv_samples=iv_samples)
    res.update({"checkpoint": str(checkpoint), "data": data, "split": split,
                "config": {k: cfg[k] for k in ("model",)}})
    if overlay:
        from ..visualization.figures import save_prediction_figure

        picks = [dataset[i] for i in range(min(overlay_samples, len(dataset)))]
        res["overlay"] = str(save_prediction_figure(rec, picks, overlay))
    return res


def format_report(res: dict) -> str:
    """Human-readable table of an evaluation result."""
    s = res["summary"]
    lines = [f"evaluation on {res.get('data', '?')}/{res.get('split', '?')}: {res['num_samples']} samples",
             "", f"{'stage':<10}{'MPJPE':>8}{'MPVPE':>8}{'MPJPE-MS':>10}{'MPVPE-MS':>10}{'MPJPE-M':>9}{'MRRPE':>8}",
             "-" * 63]
    for i, rep in enumerate(res["stages"]):
        name = "initial" if i == 0 else f"refine {i}"
        lines.append(f"{name:<10}{rep['wrist_scaled']['mpjpe']:>8.2f}{rep['wrist_scaled']['mpvpe']:>8.2f}"
                     f"{rep['mcp_scaled']['mpjpe']:>10.2f}{rep['mcp_scaled']['mpvpe']:>10.2f}"
                     f"{rep['mcp']['mpjpe']:>9.2f}{rep['mrrpe']:>8.2f}")
    lines += ["", "MPJPE/MPVPE: wrist-aligned, scaled by the wrist->middle-MCP bone (paper's main table);",
              "-MS: middle-MCP aligned + scaled; -M: middle-MCP aligned only. All in mm.",
              f"MIAA {s['miaa_px']:.2f} px (crop pixels)   AUC(0-50 mm) {s['auc_0_50']:.3f}   "
              f"PCK@20mm {s['pck_20mm']:.3f}"]
    if "lr_seg_acc" in s or "lr_centre_dist_px" in s:
        lines += ["", "handedness (does the network tell the hands apart?):"]
        if "lr_seg_acc" in s:
            lines.append(f"  left/right seg accuracy on hand pixels {s['lr_seg_acc']:.3f} (chance 0.5)   "
                         f"3-class seg accuracy {s['seg_acc']:.3f}")
        lines += [f"  hand centre distance {s['lr_centre_dist_px']:.1f} px (ground truth "
                  f"{s['lr_centre_dist_gt_px']:.1f} px)   offset spread {s['offset_spread']:.3f} "
                  f"(ground truth {s['offset_spread_gt']:.3f}) x 0.15 m",
                  f"  palm normal error {s['palm_normal_err_deg']:.1f} deg (left "
                  f"{s['palm_normal_err_deg_left']:.1f}, right {s['palm_normal_err_deg_right']:.1f}); "
                  f"constant guess {s['palm_normal_err_const_deg']:.1f} deg"]
    if "release_mpjpe" in s:
        lines.append(f"release protocol (joints regressed from vertices): MPJPE {s['release_mpjpe']:.2f}  MPVPE "
                     f"{s['release_mpvpe']:.2f}  MPJPE-MS {s['release_mpjpe_ms']:.2f}  MPJPE-M "
                     f"{s['release_mpjpe_m']:.2f}  MRRPE {s['release_mrrpe']:.2f} (root 0) / "
                     f"{s['release_mrrpe_mcp']:.2f} (root 9) mm")
    if "iv_cm3" in s:
        lines.append(f"interpenetration volume {s['iv_cm3']:.2f} cm^3 (ground truth {s['iv_gt_cm3']:.2f} cm^3)")
    return "\n".join(lines)
