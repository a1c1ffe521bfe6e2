"""Reduced precision against fp32 (issue 13, item 2): the same held-out samples run through the
network in float32 and under ``torch.autocast`` to bf16 / fp16, output against output.

What is compared, always with float32's output of the *same* sample (never with the ground
truth), final stage unless said otherwise:

* ``joints_mm``: distance of the 21 joints, each hand wrist-relative (the metrics' wrist
  alignment, unscaled), mm; per sample the mean over its hands' joints;
* ``verts_mm``: the same for the mesh vertices (aligned with the hand's wrist joint);
* ``offset_mm``: the right-minus-left wrist vector (the MRRPE of the reduced precision's
  prediction against fp32's), samples with both hands;
* ``joints2d_px``: projected 2D joints, crop pixels (mean over the hand's joints);
* ``stage_joints_mm``: ``joints_mm`` of every stage (0 = initial estimate);
* ``worst_joint_mm``: the largest single-joint distance of the whole set;

each as median / p99 / max over samples; only hands present in the ground truth count
(``hand_valid``), as in the metrics. Also: the final MPJPE against the ground truth (wrist-aligned,
scaled: the headline number of ``interhand eval``) in fp32 and in the reduced precision on the
same hands; ``lr_seg_changed``: the fraction of ground-truth hand pixels whose left/right
segmentation decision differs from fp32's; the count of samples with a non-finite output.

Units: the network's joints and vertices are metres (wrist-relative), its offset units of
``dir_net.inputs.UNIT`` = 0.15 m; :func:`evaluate.stack_prediction` turns them into one metric
frame and :mod:`evaluation.metrics` reports millimetres, as ``interhand eval`` does.

On a CPU, autocast runs convolutions and matrix products in the reduced dtype with float32
accumulation (oneDNN), as CUDA autocast does with cuDNN/cuBLAS: the numbers are a stand-in for
the GPU's, of the same size but not bit-identical (other kernels, other summation orders). The
hand models, the camera and the projection stay float32 under autocast (``DIRNet.decode``).
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..dir_net.inputs import normalise_batch
from ..hand_model.joints import ROOT_JOINT
from ..network.reconstructor import PRECISIONS as AUTOCAST
from .evaluate import ground_truth, load_for_eval, sample_batches, seg_labels, stack_prediction
from .handedness import lr_decision
from .metrics import evaluate_protocols, joint_errors, miaa, mrrpe, vertex_errors

#: Names of the precisions on the command line: the inference's (``HandReconstructor``), fp32 = no autocast.
PRECISIONS = {name: dtype or torch.float32 for name, dtype in AUTOCAST.items()}
#: Per-sample comparisons summarised as median / p99 / max.
SPREAD_KEYS = ("joints_mm", "verts_mm", "offset_mm", "joints2d_px")


def dtype_name(dtype: torch.dtype) -> str:
    """torch.bfloat16 -> "bf16" (names of :data:`PRECISIONS`)."""
    return {d: n for n, d in PRECISIONS.items()}.get(dtype, str(dtype).replace("torch.", ""))


def parse_dtypes(text: str) -> tuple[torch.dtype, ...]:
    """"bf16,fp16" -> (torch.bfloat16, torch.float16); ValueError for an unknown name."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in PRECISIONS]
    if bad or not names:
        raise ValueError(f"--precision-check takes a comma list of {', '.join(PRECISIONS)}; got {text!r}")
    return tuple(PRECISIONS[n] for n in names)


# ---------------------------------------------------------------------------- running

def autocast_problem(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why the forward cannot run under autocast to ``dtype`` on ``device``, or None when it can.

    A tiny convolution and linear layer are run under it: autocast that raises (CUDA without
    bf16), silently turns itself off (an unsupported CPU dtype only warns) or leaves the
    convolution in float32 counts as unsupported. float32 needs no autocast: None.
    """
    if dtype == torch.float32:
        return None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.autocast(device_type=device.type, dtype=dtype):
                enabled = torch.is_autocast_enabled(device.type)
                x = torch.ones(1, 2, 4, 4, device=device)
                y = F.conv2d(x, torch.ones(2, 2, 3, 3, device=device))
                z = F.linear(y.flatten(1), torch.ones(3, 8, device=device))
    except (RuntimeError, NotImplementedError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if enabled and y.dtype == dtype and z.dtype == dtype:
        return None
    said = " ".join(" ".join(str(w.message) for w in caught).split())  # one line
    return said or f"autocast on {device.type} does not run convolutions in {dtype_name(dtype)}"


def forward(model: torch.nn.Module, images: torch.Tensor, dtype: torch.dtype) -> dict:
    """``model(images)``; under autocast to ``dtype`` unless it is float32 (plain forward)."""
    if dtype == torch.float32:
        return model(images)
    with torch.autocast(device_type=images.device.type, dtype=dtype):
        return model(images)


# ---------------------------------------------------------------------------- comparing

def finite_hands(stages: list[dict]) -> np.ndarray:
    """(B, 2) bool: every 3D/2D output of the hand finite in every stage, and the offset (both
    hands). ``stages`` as :func:`evaluate.stack_prediction` returns them."""
    ok = np.ones(stages[0]["offset"].shape[:1] + (2,), dtype=bool)
    for st in stages:
        ok &= np.isfinite(st["offset"]).all(axis=-1)[:, None]
        for key in ("joints", "verts", "joints2d", "verts2d"):
            ok &= np.isfinite(st[key]).all(axis=(-2, -1))
    return ok


def masked(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, 2, K, D) points with the hands outside ``mask`` (B, 2) set to 0 (the metrics refuse
    NaN even in hands that are later dropped)."""
    return np.where(mask[:, :, None, None], x, 0.0)


def hand_means(per_hand: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, 2) per-hand values -> (B,) mean over the hands in ``mask``; NaN for none."""
    n = mask.sum(axis=1)
    total = np.where(mask, per_hand, 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def hand_max(per_hand: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, 2) per-hand values -> (B,) largest over the hands in ``mask``; NaN for none."""
    top = np.where(mask, per_hand, -np.inf).max(axis=1)
    return np.where(np.isfinite(top), top, np.nan)


def joint_distances(test: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, 2, 21, 3) joints (metres) -> (B, 2, 21) mm, each hand wrist-relative."""
    return joint_errors(masked(test, mask), masked(ref, mask), root=ROOT_JOINT)


def vertex_distances(test: dict, ref: dict, mask: np.ndarray) -> np.ndarray:
    """Stacked stages ``test``/``ref`` -> (B, 2, V) vertex distances (mm) about each hand's wrist."""
    return vertex_errors(masked(test["verts"], mask), masked(ref["verts"], mask), masked(test["joints"], mask),
                         masked(ref["joints"], mask), root=ROOT_JOINT)


def offset_distance(test: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, 2, 21, 3) stacked joints (right wrist at the offset) -> (B,) mm between the two
    right-minus-left wrist vectors; NaN unless both hands are in ``mask``."""
    both = mask.all(axis=1)
    t, r = masked(test, mask), masked(ref, mask)
    err = mrrpe(t[:, 0], t[:, 1], r[:, 0], r[:, 1], root=ROOT_JOINT)
    return np.where(both, err, np.nan)


def compare(test: list[dict], ref: list[dict], mask: np.ndarray) -> dict:
    """Stacked stages of one batch in two precisions -> {key: (B,)} per-sample differences
    (module docstring; ``stage_joints_mm`` (B, stages)) over the hands in ``mask`` (B, 2)."""
    final = joint_distances(test[-1]["joints"], ref[-1]["joints"], mask)
    out = {
        "joints_mm": hand_means(final.mean(axis=-1), mask),
        "worst_joint_mm": hand_max(final.max(axis=-1), mask),
        "verts_mm": hand_means(vertex_distances(test[-1], ref[-1], mask).mean(axis=-1), mask),
        "offset_mm": offset_distance(test[-1]["joints"], ref[-1]["joints"], mask),
        "joints2d_px": hand_means(miaa(masked(test[-1]["joints2d"], mask), masked(ref[-1]["joints2d"], mask)), mask),
    }
    out["stage_joints_mm"] = np.stack([hand_means(joint_distances(t["joints"], r["joints"], mask).mean(axis=-1), mask)
                                       for t, r in zip(test, ref)], axis=1)  # (B, stages)
    return out


def lr_changes(test_logits: np.ndarray, ref_logits: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """(changed, hand pixels): ground-truth hand pixels (labels (B, h, w) > 0) whose left/right
    decision of the (B, 3, h, w) logits differs between the two precisions."""
    hand = labels > 0
    return int((lr_decision(test_logits) != lr_decision(ref_logits))[hand].sum()), int(hand.sum())


def spread(values: np.ndarray) -> dict:
    """Median, 99th percentile and max of the finite entries of a (N,) array (NaN when none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"median": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"median": float(np.median(v)), "p99": float(np.percentile(v, 99)), "max": float(v.max())}


def final_mpjpe(joints: np.ndarray, gt_joints: np.ndarray, mask: np.ndarray) -> float:
    """MPJPE (mm) of stacked final joints (N, 2, 21, 3) against the ground truth over the hands in
    ``mask``: the wrist-aligned, scaled protocol of ``interhand eval``'s headline."""
    return evaluate_protocols(joints, gt_joints, valid=mask)["wrist_scaled"]["mpjpe"]


# ---------------------------------------------------------------------------- the check

def _new_record() -> dict:
    return {"values": {}, "joints": [], "mask": [], "changed": 0, "pixels": 0, "nonfinite": 0, "seconds": 0.0,
            "verts_dtype": None, "seg_dtype": None}


def _add_batch(rec: dict, pred: dict, stages: list[dict], ok: np.ndarray, valid: np.ndarray) -> None:
    """Book one batch's final joints, hand mask, non-finite count and output dtypes into ``rec``."""
    seg_ok = np.isfinite(pred["seg"].float().cpu().numpy()).all(axis=(1, 2, 3))
    rec["joints"].append(stages[-1]["joints"])
    rec["mask"].append(valid & ok)
    rec["nonfinite"] += int((~(ok.all(axis=1) & seg_ok)).sum())
    rec["verts_dtype"] = str(pred["stages"][-1]["verts"]["left"].dtype).replace("torch.", "")
    rec["seg_dtype"] = str(pred["seg"].dtype).replace("torch.", "")


def _summary(rec: dict, ref: dict, gt_joints: np.ndarray) -> dict:
    """The result of one reduced precision from its booked batches (see :func:`precision_error`)."""
    values = {k: np.concatenate(v) for k, v in rec["values"].items()}
    mask = np.concatenate(rec["mask"]) & np.concatenate(ref["mask"])  # finite in both, present
    out = {"supported": True, "problem": None, **{k: spread(values[k]) for k in SPREAD_KEYS}}
    out["stage_joints_mm"] = [spread(column) for column in values["stage_joints_mm"].T]
    out["worst_joint_mm"] = spread(values["worst_joint_mm"])["max"]
    out["mpjpe_fp32_mm"] = final_mpjpe(np.concatenate(ref["joints"]), gt_joints, mask)
    out["mpjpe_mm"] = final_mpjpe(np.concatenate(rec["joints"]), gt_joints, mask)
    out["lr_seg_changed"] = rec["changed"] / rec["pixels"] if rec["pixels"] else float("nan")
    out["lr_seg_pixels"] = rec["pixels"]
    out.update(nonfinite_samples=rec["nonfinite"], forward_s=rec["seconds"], verts_dtype=rec["verts_dtype"],
               seg_dtype=rec["seg_dtype"])
    return out


def _timed_forward(model, images, dtype, rec: dict) -> dict:
    start = time.perf_counter()
    pred = forward(model, images, dtype)
    rec["seconds"] += time.perf_counter() - start
    return pred


@torch.inference_mode()
def precision_error(model: torch.nn.Module, dataset, dtypes=(torch.bfloat16, torch.float16), batch_size: int = 16,
                    device=None, progress: bool = True) -> dict:
    """Run ``dataset`` (raw samples, as ``interhand eval`` reads them) through a float32 DIRNet in
    float32 and under autocast to each of ``dtypes``; compare each with float32.

    Returns:
        ``{"device", "torch", "num_samples", "mpjpe_fp32_mm", "fp32_forward_s", "nonfinite_fp32",
        "dtypes": {name: result}}``, name as in :data:`PRECISIONS`. A result holds
        ``supported`` and ``problem`` (why not, for a dtype autocast cannot run here; then
        nothing else); ``joints_mm``, ``verts_mm``, ``offset_mm``, ``joints2d_px`` (each
        ``{"median", "p99", "max"}`` over samples), ``stage_joints_mm`` (list per stage),
        ``worst_joint_mm``, ``mpjpe_fp32_mm`` / ``mpjpe_mm`` (ground truth, same hands),
        ``lr_seg_changed`` (fraction) of ``lr_seg_pixels``, ``nonfinite_samples``,
        ``forward_s`` (summed forward time) and the output dtypes ``verts_dtype``/``seg_dtype``.
    """
    model.eval()
    if next(model.parameters()).dtype != torch.float32:
        raise ValueError("precision_error needs a float32 model (the reference is its float32 forward)")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    problems = {dtype_name(d): autocast_problem(device, d) for d in dtypes}
    runs = {dtype_name(d): d for d in dtypes if problems[dtype_name(d)] is None}
    ref, recs, gt_joints = _new_record(), {name: _new_record() for name in runs}, []
    for samples in sample_batches(dataset, batch_size, progress, desc="precision"):
        images = normalise_batch([s["image"] for s in samples], device)
        img_size, gt = samples[0]["image"].shape[0], ground_truth(samples)
        gt_joints.append(gt["joints"])
        ref_pred = _timed_forward(model, images, torch.float32, ref)
        ref_stages = stack_prediction(ref_pred, img_size)
        ref_ok = finite_hands(ref_stages)
        _add_batch(ref, ref_pred, ref_stages, ref_ok, gt["valid"])
        labels = seg_labels(samples, ref_pred["seg"].shape[-2:])
        for name, dtype in list(runs.items()):
            try:
                pred = _timed_forward(model, images, dtype, recs[name])
            except (RuntimeError, NotImplementedError) as exc:  # an operator without a kernel for it
                problems[name] = f"{type(exc).__name__}: {exc}"
                del runs[name]
                continue
            stages = stack_prediction(pred, img_size)
            ok = finite_hands(stages)
            _add_batch(recs[name], pred, stages, ok, gt["valid"])
            for key, v in compare(stages, ref_stages, gt["valid"] & ref_ok & ok).items():
                recs[name]["values"].setdefault(key, []).append(v)
            if labels is not None:
                changed, pixels = lr_changes(pred["seg"].float().cpu().numpy(), ref_pred["seg"].float().cpu().numpy(),
                                              labels)
                recs[name]["changed"] += changed
                recs[name]["pixels"] += pixels
    gt_all = np.concatenate(gt_joints)
    results = {name: ({"supported": False, "problem": problems[name]} if name not in runs
                      else _summary(recs[name], ref, gt_all)) for name in problems}
    return {"device": str(device), "torch": torch.__version__, "num_samples": len(dataset),
            "mpjpe_fp32_mm": final_mpjpe(np.concatenate(ref["joints"]), gt_all, np.concatenate(ref["mask"])),
            "fp32_forward_s": ref["seconds"], "nonfinite_fp32": ref["nonfinite"], "dtypes": results}


def check_checkpoint(checkpoint: str, dtypes: str = "bf16,fp16", data: str = "synthetic", root: str | None = None,
                     split: str = "test", num_samples: int = 500, device: str = "auto", mano_dir: str | None = None,
                     batch_size: int = 16) -> dict:
    """:func:`precision_error` of a checkpoint on the test set ``interhand eval`` builds;
    ``dtypes`` a comma list of :data:`PRECISIONS` names."""
    wanted = parse_dtypes(dtypes)
    start = time.perf_counter()
    rec, _, dataset = load_for_eval(checkpoint, data, root, split, num_samples, device, mano_dir)
    res = precision_error(rec.model, dataset, wanted, batch_size=batch_size, device=rec.device)
    res.update(checkpoint=str(checkpoint), data=data, split=split, wall_s=time.perf_counter() - start)
    return res


# ---------------------------------------------------------------------------- the table

def _triple(s: dict) -> str:
    return f"{s['median']:.3g} / {s['p99']:.3g} / {s['max']:.3g}"


def format_precision_table(res: dict) -> str:
    """Markdown table of :func:`precision_error`'s result, one row per reduced precision."""
    head = (f"reduced precision against fp32: {res['num_samples']} samples of {res.get('data', '?')}/"
            f"{res.get('split', '?')}, autocast on {res['device']}, torch {res['torch']}")
    lines = [head, "", "| dtype | joints mm median/p99/max | verts mm | offset mm | 2D px | MPJPE fp32 -> dtype (mm) "
             "| L/R seg pixels changed % |", "|---|---|---|---|---|---|---|"]
    notes = []
    for name, r in res["dtypes"].items():
        if not r["supported"]:
            lines.append(f"| {name} | not supported on {res['device']}: {r['problem']} | | | | | |")
            continue
        lines.append(f"| {name} | {_triple(r['joints_mm'])} | {_triple(r['verts_mm'])} | {_triple(r['offset_mm'])} "
                     f"| {_triple(r['joints2d_px'])} | {r['mpjpe_fp32_mm']:.2f} -> {r['mpjpe_mm']:.2f} "
                     f"| {100.0 * r['lr_seg_changed']:.2f} |")
        stages = ", ".join(f"{i}: {_triple(s)}" for i, s in enumerate(r["stage_joints_mm"]))
        notes.append(f"{name}: joints mm per stage (0 = initial) {stages}; worst single joint "
                     f"{r['worst_joint_mm']:.3g} mm; {r['nonfinite_samples']} sample(s) with a non-finite output; "
                     f"vertices come out {r['verts_dtype']}, seg logits {r['seg_dtype']}; forward {r['forward_s']:.1f} s "
                     f"(fp32 {res['fp32_forward_s']:.1f} s)")
    lines += ["", "Each against fp32's output of the same sample, final stage, only hands present: per sample the mean "
              "over its hands (3D: each hand wrist-relative; offset: the right-minus-left wrist vector; 2D: projected "
              "joints, crop pixels), then median / p99 / max over samples. MPJPE: against the ground truth (wrist-"
              "aligned, scaled). L/R seg: ground-truth hand pixels whose left/right decision differs from fp32's.",
              *notes]
    if res["nonfinite_fp32"]:
        lines.append(f"fp32 itself: {res['nonfinite_fp32']} sample(s) with a non-finite output")
    if res["device"].startswith("cpu"):
        lines.append("On a CPU, autocast is a stand-in for the GPU's numerics (same reduced-precision convolutions and "
                     "matrix products, other kernels): expect numbers of this size on CUDA, not the same digits.")
    return "\n".join(lines)
