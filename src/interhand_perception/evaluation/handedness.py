"""Handedness diagnostics: does the network know which hand is which? (pure numpy)

DIR predicts the left and the right hand with separate branches. A known failure mode is a
network that never learns to tell them apart: both hands end up at the same place with a mean
pose, the right-minus-left offset barely varies, and the pixel head cannot separate left from
right pixels. These functions measure exactly that, each next to its ground-truth value or a
"knows nothing" baseline, so the failure shows early in the training log:

* :func:`seg_accuracies` - left/right accuracy of the segmentation head on ground-truth hand
  pixels (chance 0.5) and the plain 3-class pixel accuracy;
* :func:`centre_distance` - distance between the two hands' 2D centres (crop pixels);
* :func:`offset_spread` - spread of the right-minus-left root vector over a set;
* :func:`palm_normals` / :func:`angle_deg` / :func:`constant_normal_errors` - orientation of
  each palm against the ground truth and against the best constant guess.

Conventions: sides are ordered ``("left", "right")`` (index 0 = left); joints follow
``hand_model.joints.JOINT_NAMES`` (0 wrist, 5 index MCP, 17 little MCP); segmentation labels are
0 background, 1 left, 2 right.
"""
from __future__ import annotations

import numpy as np

from ..hand_model.joints import JOINT_NAMES, ROOT_JOINT

INDEX_MCP = JOINT_NAMES.index("index_mcp")  # 5
LITTLE_MCP = JOINT_NAMES.index("little_mcp")  # 17

#: Below this length a palm normal (or a mean of normals) is treated as undefined.
_EPS = 1e-12


# ---------------------------------------------------------------------------- segmentation

def downsample_seg(seg, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour downsampling of label maps, sampled at the centres of the output cells.

    Output cell ``(i, j)`` takes the input pixel that contains its centre: row
    ``floor((i + 0.5) * H / h)``, column ``floor((j + 0.5) * W / w)`` (pixel k covers [k, k+1)),
    the same sampling as the training targets of the segmentation head.

    Args:
        seg: (..., H, W) integer labels.
        size: (h, w) output size, h <= H and w <= W.
    Returns:
        (..., h, w) labels, same dtype.
    """
    a = np.asarray(seg)
    h_in, w_in = a.shape[-2:]
    h, w = int(size[0]), int(size[1])
    rows = np.floor((np.arange(h) + 0.5) * h_in / h).astype(np.int64)
    cols = np.floor((np.arange(w) + 0.5) * w_in / w).astype(np.int64)
    return a[..., rows, :][..., cols]


def lr_decision(logits) -> np.ndarray:
    """Left/right decision of a 3-class segmentation, background ignored: (N, 3, h, w) scores ->
    (N, h, w) labels, 2 (right) where the right logit is the larger, else 1 (left; ties too)."""
    p = np.asarray(logits)
    return np.where(p[:, 2] > p[:, 1], 2, 1)


def seg_accuracies(logits, gt_seg) -> dict:
    """Pixel accuracies of a 3-class (background, left, right) segmentation.

    Args:
        logits: (N, 3, h, w) scores (any monotonic transform of them works: only argmax is used).
        gt_seg: (N, h, w) integer labels at the same resolution (see :func:`downsample_seg`).
    Returns:
        dict with
        ``lr_seg_acc``: among pixels whose ground truth is 1 or 2, the fraction where
        ``argmax(logits[1], logits[2])`` (background ignored; a tie counts as left) is the
        ground-truth side; chance is 0.5, a side-swapped prediction gives 0; ``nan`` without
        hand pixels.
        ``seg_acc``: fraction of all pixels where the 3-class argmax equals the ground truth.
        ``lr_pixels``, ``pixels``: the counts of the two denominators.
    """
    p = np.asarray(logits, dtype=np.float64)
    g = np.asarray(gt_seg).astype(np.int64)
    if p.ndim != 4 or p.shape[1] != 3 or g.shape != (p.shape[0],) + p.shape[2:]:
        raise ValueError(f"expected logits (N, 3, h, w) and labels (N, h, w), got {p.shape} and {g.shape}")
    hand = g > 0
    side = lr_decision(p)
    lr_total = int(hand.sum())
    lr_correct = int((side[hand] == g[hand]).sum())
    full = np.argmax(p, axis=1)
    return {
        "lr_seg_acc": lr_correct / lr_total if lr_total else float("nan"),
        "seg_acc": float((full == g).mean()) if g.size else float("nan"),
        "lr_pixels": lr_total,
        "pixels": int(g.size),
    }


# ---------------------------------------------------------------------------- placement

def hand_centres(joints2d) -> np.ndarray:
    """2D centre of each hand: the mean of its joints.

    Args:
        joints2d: (..., 2, J, 2) two-hand 2D joints (crop pixels), sides (left, right).
    Returns:
        (..., 2, 2) centres, [..., 0] the left hand's, [..., 1] the right hand's.
    """
    return np.asarray(joints2d, dtype=np.float64).mean(axis=-2)


def centre_distance(joints2d) -> np.ndarray:
    """Distance between the left and the right hand centres (:func:`hand_centres`).

    Args:
        joints2d: (N, 2, J, 2) two-hand 2D joints, crop pixels.
    Returns:
        (N,) distances in the same unit (crop pixels). 0 when both hands sit at one place.
    """
    c = hand_centres(joints2d)
    return np.linalg.norm(c[..., 1, :] - c[..., 0, :], axis=-1)


def offset_spread(offsets) -> float:
    """Spread of a set of vectors: RMS distance to their mean.

    ``sqrt(mean_n |o_n - mean(o)|^2)`` (the square root of the trace of the covariance, with
    the 1/N normalisation). A network that predicts the same right-minus-left offset for every
    image has spread 0.

    Args:
        offsets: (N, D) vectors, e.g. right root minus left root in units of 0.15 m.
    Returns:
        The spread in the unit of ``offsets``; ``nan`` for N = 0.
    """
    o = np.asarray(offsets, dtype=np.float64)
    if o.ndim != 2:
        raise ValueError(f"expected offsets (N, D), got {o.shape}")
    if len(o) == 0:
        return float("nan")
    return float(np.sqrt(np.mean(np.sum((o - o.mean(axis=0)) ** 2, axis=-1))))


# ---------------------------------------------------------------------------- palm orientation

def palm_normals(joints, side) -> np.ndarray:
    """Unit normal of the palm plane through wrist (0), index MCP (5) and little MCP (17).

    Convention: the normal points **out of the palm (palmar side)** for both hands. With
    ``a = index_mcp - wrist`` and ``b = little_mcp - wrist``, a right hand's palmar normal is
    ``a x b`` (right hand held up, palm towards you: the index MCP is on your right, the little
    MCP on your left, so ``a x b`` points at you) and a left hand, its mirror image, uses
    ``b x a``. Mirroring a right hand through a plane (``x -> -x``) therefore mirrors its normal
    as a direction: the normals of the two sides are directly comparable.

    Args:
        joints: (..., 21, 3) joints (any common translation; only differences are used).
        side: ``"left"``/``"right"``, or an integer array broadcastable to the leading shape
            ``...`` with 0 = left, 1 = right.
    Returns:
        (..., 3) unit normals; rows whose three joints are (nearly) collinear are all-NaN.
    """
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim < 2 or j.shape[-1] != 3 or j.shape[-2] <= max(INDEX_MCP, LITTLE_MCP):
        raise ValueError(f"expected joints (..., 21, 3), got {j.shape}")
    a = j[..., INDEX_MCP, :] - j[..., ROOT_JOINT, :]
    b = j[..., LITTLE_MCP, :] - j[..., ROOT_JOINT, :]
    n = np.cross(a, b)
    if isinstance(side, str):
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        sign = -1.0 if side == "left" else 1.0
    else:
        sign = np.where(np.asarray(side) == 0, -1.0, 1.0)[..., None]
    n = n * sign
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(length > _EPS, n / np.where(length > _EPS, length, 1.0), np.nan)


def angle_deg(u, v) -> np.ndarray:
    """Angle in degrees between unit vectors (broadcast over leading axes).

    Args:
        u, v: (..., 3) unit vectors.
    Returns:
        (...) angles in [0, 180]. A NaN vector (undefined normal) gives 90 degrees, the mean
        angle of a random direction, so that a degenerate prediction neither crashes nor scores.
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    cos = np.clip(np.sum(u * v, axis=-1), -1.0, 1.0)
    return np.where(np.isfinite(cos), np.degrees(np.arccos(np.nan_to_num(cos))), 90.0)


def mean_direction(normals) -> np.ndarray:
    """Normalised mean of unit vectors (the best constant guess of a direction).

    Args:
        normals: (N, 3) unit vectors (NaN rows are ignored).
    Returns:
        (3,) unit vector; all-NaN when the set is empty or the vectors cancel out.
    """
    n = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    n = n[np.isfinite(n).all(axis=1)]
    if len(n) == 0:
        return np.full(3, np.nan)
    m = n.mean(axis=0)
    length = np.linalg.norm(m)
    return m / length if length > _EPS else np.full(3, np.nan)


def constant_normal_errors(gt_normals) -> np.ndarray:
    """Angles between each ground-truth normal and the set's mean direction (:func:`mean_direction`).

    The error of a "knows nothing" predictor that outputs the same palm orientation for every
    image: compare a network's :func:`angle_deg` against this.

    Args:
        gt_normals: (N, 3) unit ground-truth normals of one side.
    Returns:
        (N,) angles in degrees (90 for every sample when the mean direction is undefined).
    """
    n = np.asarray(gt_normals, dtype=np.float64).reshape(-1, 3)
    return angle_deg(n, mean_direction(n)[None, :])


def _mean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()) if x.size else float("nan")


def palm_normal_report(pred_joints, gt_joints, valid=None) -> dict:
    """Palm-normal errors of a two-hand set, per side and pooled, with the constant baseline.

    Args:
        pred_joints: (N, 2, 21, 3) predicted joints (root-relative is fine), sides (left, right).
        gt_joints: (N, 2, 21, 3) ground-truth joints, same frame orientation (camera).
        valid: (N, 2) bool, which hands are present; None = all. Invalid hands are skipped.
    Returns:
        dict (degrees; ``nan`` for an empty side):
        ``palm_normal_err_deg_left`` / ``_right``: mean angle between predicted and GT normals;
        ``palm_normal_err_deg``: the same over all valid hands of both sides;
        ``palm_normal_err_const_deg_left`` / ``_right`` / ``palm_normal_err_const_deg``: the
        same for the constant guess, the normalised mean GT normal of that side over the set.
    """
    p = np.asarray(pred_joints, dtype=np.float64)
    g = np.asarray(gt_joints, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 4 or p.shape[1] != 2:
        raise ValueError(f"expected two (N, 2, 21, 3) arrays, got {p.shape} and {g.shape}")
    v = np.ones(p.shape[:2], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    out: dict = {}
    err_all, const_all = [], []
    for k, side in enumerate(("left", "right")):
        m = v[:, k]
        gn = palm_normals(g[m, k], side)
        err = angle_deg(palm_normals(p[m, k], side), gn)
        const = constant_normal_errors(gn)
        out[f"palm_normal_err_deg_{side}"] = _mean(err)
        out[f"palm_normal_err_const_deg_{side}"] = _mean(const)
        err_all.append(err)
        const_all.append(const)
    out["palm_normal_err_deg"] = _mean(np.concatenate(err_all))
    out["palm_normal_err_const_deg"] = _mean(np.concatenate(const_all))
    return out


def handedness_summary(seg_logits, gt_seg, pred_joints2d, gt_joints2d, pred_offset, gt_offset,
                       pred_joints, gt_joints, valid) -> dict:
    """Every handedness diagnostic of a set, as flat summary entries.

    Args:
        seg_logits: (N, 3, h, w) segmentation logits, or None (no ``seg_acc``/``lr_seg_acc``).
        gt_seg: (N, H, W) ground-truth labels (0/1/2), downsampled to (h, w) by
            :func:`downsample_seg` (nearest, at cell centres); ignored when ``seg_logits`` is None.
        pred_joints2d, gt_joints2d: (N, 2, 21, 2) crop pixels.
        pred_offset, gt_offset: (N, 3) right root minus left root, units of 0.15 m.
        pred_joints, gt_joints: (N, 2, 21, 3) joints (orientation in the camera frame).
        valid: (N, 2) bool hand presence. Centre distances and offset spreads use the samples
            with both hands; palm normals every valid hand.
    Returns:
        ``{lr_seg_acc, seg_acc, lr_centre_dist_px, lr_centre_dist_gt_px, offset_spread,
        offset_spread_gt, palm_normal_err_deg[_left|_right], palm_normal_err_const_deg[...]}``.
    """
    v = np.asarray(valid, dtype=bool)
    out: dict = {}
    if seg_logits is not None:
        logits = np.asarray(seg_logits)
        acc = seg_accuracies(logits, downsample_seg(gt_seg, logits.shape[-2:]))
        out["lr_seg_acc"] = acc["lr_seg_acc"]
        out["seg_acc"] = acc["seg_acc"]
    both = v.all(axis=1)
    out["lr_centre_dist_px"] = _mean(centre_distance(np.asarray(pred_joints2d)[both]))
    out["lr_centre_dist_gt_px"] = _mean(centre_distance(np.asarray(gt_joints2d)[both]))
    out["offset_spread"] = offset_spread(np.asarray(pred_offset)[both])
    out["offset_spread_gt"] = offset_spread(np.asarray(gt_offset)[both])
    out.update(palm_normal_report(pred_joints, gt_joints, v))
    return out
