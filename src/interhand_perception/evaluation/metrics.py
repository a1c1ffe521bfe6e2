"""Accuracy metrics of two-hand reconstruction (pure numpy).

Conventions (see ``docs/architecture.md``):

* Inputs are in **metres**; every 3D error is returned in **millimetres**. 2D errors (MIAA)
  are in **pixels of the crop** the 2D points are expressed in.
* Per-hand arrays are ``(..., J, 3)`` (usually ``(N, 21, 3)``); two-hand arrays are
  ``(N, 2, J, 3)`` with side order ``("left", "right")`` (index 0 = left).
* Joints follow ``hand_model.joints.JOINT_NAMES``: index 0 = wrist, 9 = middle MCP.

Alignment protocols (paper, Sec. 4 and Table 3):

* ``"wrist_scaled"`` - main table: subtract the wrist (joint 0) from prediction and ground
  truth, then scale the prediction by the bone-length ratio (see :func:`bone_length_scale`).
* ``"mcp_scaled"`` - "MS" of Table 3 (IntagHand protocol): middle-MCP root (joint 9) + scaling.
* ``"mcp"`` - "M" of Table 3: middle-MCP root, no scaling.

Missing data / NaN policy:

* Hands that are absent are excluded with a boolean ``valid`` mask *before* any check, so
  invalid hands may hold anything (NaN included).
* Any non-finite value (NaN / inf) in the data that is actually evaluated raises
  ``ValueError`` naming the array: a NaN prediction is a bug to surface, never a silently
  dropped sample. Likewise a zero-length predicted bone when scaling raises ``ValueError``.
* A mean over an empty set (e.g. no valid left hand) is ``nan``; the counts are reported
  alongside so the caller can tell.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..hand_model.joints import MIDDLE_MCP, ROOT_JOINT

M_TO_MM = 1000.0

#: Default bone used for scale normalisation: wrist -> middle MCP.
SCALE_BONE: tuple[int, int] = (ROOT_JOINT, MIDDLE_MCP)

#: Evaluation protocols: name -> (root joint, scale by bone-length ratio).
PROTOCOLS: dict[str, tuple[int, bool]] = {
    "wrist_scaled": (ROOT_JOINT, True),
    "mcp_scaled": (MIDDLE_MCP, True),
    "mcp": (MIDDLE_MCP, False),
}

#: Default PCK thresholds in millimetres (0 to 50 mm every 0.5 mm).
DEFAULT_PCK_THRESHOLDS_MM = np.linspace(0.0, 50.0, 101)


# ---------------------------------------------------------------------------- helpers

def _as_array(x, name: str, last: int) -> np.ndarray:
    """Float64 view of ``x`` with last dimension ``last`` (3 for 3D, 2 for 2D points)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 1 or a.shape[-1] != last:
        raise ValueError(f"{name}: expected shape (..., {last}), got {a.shape}")
    return a


def _check_finite(a: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` if ``a`` holds NaN or inf (policy of this module)."""
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN/inf); exclude absent hands with "
            f"the `valid` mask instead of filling them with NaN"
        )


def _same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{na} {a.shape} and {nb} {b.shape} must have the same shape")


def _select(valid, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Keep the entries whose leading-index is valid.

    Args:
        valid: bool array of the leading shape ``L`` of every array (e.g. ``(N,)`` for
            ``(N, J, 3)`` or ``(N, 2)`` for ``(N, 2, J, 3)``), or None (keep all).
        arrays: arrays of shape ``L + (K, D)``.

    Returns:
        Arrays of shape ``(M, K, D)`` with ``M = valid.sum()`` (or unchanged when None).
    """
    if valid is None:
        return arrays
    v = np.asarray(valid, dtype=bool)
    out = []
    for a in arrays:
        if a.shape[: v.ndim] != v.shape or a.ndim != v.ndim + 2:
            raise ValueError(f"valid mask {v.shape} does not match the leading shape of {a.shape}")
        out.append(a[v])
    return tuple(out)


# ---------------------------------------------------------------------------- alignment

def align_root(x, root: int = ROOT_JOINT, joints=None) -> np.ndarray:
    """Subtract the root joint of each sample.

    Args:
        x: (..., K, 3) points (joints or vertices).
        root: index of the root joint (0 = wrist, 9 = middle MCP).
        joints: (..., J, 3) joints that hold the root; None means ``x`` itself (K = J).
            Vertices must be aligned with the *joint* root, so pass the hand's joints here.

    Returns:
        (..., K, 3) ``x - joints[..., root, :]``.
    """
    x = _as_array(x, "x", 3)
    j = x if joints is None else _as_array(joints, "joints", 3)
    return x - j[..., root : root + 1, :]


def bone_length_scale(pred_joints, gt_joints, bone: tuple[int, int] = SCALE_BONE) -> np.ndarray:
    """Per-sample factor that brings the predicted hand to the ground-truth size.

    The paper scales the prediction "by the ratio of the predicted bone length to the
    ground-truth bone length"; as in the IntagHand evaluation code it follows, the factor
    *multiplied onto the prediction* is ``|gt bone| / |pred bone|`` so that the scaled
    predicted bone has the ground-truth length. The bone is wrist -> middle MCP
    (joints 0 -> 9) by default.

    Args:
        pred_joints: (..., J, 3) predicted joints.
        gt_joints: (..., J, 3) ground-truth joints.
        bone: (parent, child) joint indices of the reference bone.

    Returns:
        (...) float64 scale factors.

    Raises:
        ValueError: when a predicted bone has zero length.
    """
    p = _as_array(pred_joints, "pred_joints", 3)
    g = _as_array(gt_joints, "gt_joints", 3)
    i, k = bone
    lp = np.linalg.norm(p[..., k, :] - p[..., i, :], axis=-1)
    lg = np.linalg.norm(g[..., k, :] - g[..., i, :], axis=-1)
    if np.any(lp <= 1e-12):
        raise ValueError(f"predicted bone {bone} has zero length: cannot scale")
    return lg / lp


def _aligned_errors(pred, gt, pred_j, gt_j, root: int, scale: bool, bone) -> np.ndarray:
    """Root-aligned (and optionally scaled) Euclidean errors in mm, shape (..., K)."""
    _check_finite(pred, "pred")
    _check_finite(gt, "gt")
    _check_finite(pred_j, "pred joints")
    _check_finite(gt_j, "gt joints")
    p = align_root(pred, root, pred_j)
    g = align_root(gt, root, gt_j)
    if scale:
        p = p * bone_length_scale(pred_j, gt_j, bone)[..., None, None]
    return np.linalg.norm(p - g, axis=-1) * M_TO_MM


# ---------------------------------------------------------------------------- 3D errors

def joint_errors(pred_joints, gt_joints, root: int = ROOT_JOINT, scale: bool = False,
                 bone: tuple[int, int] = SCALE_BONE) -> np.ndarray:
    """Per-joint position errors after root alignment (and optional scaling).

    Args:
        pred_joints: (..., J, 3) predicted joints, metres (e.g. (N, 21, 3) or (N, 2, 21, 3)).
        gt_joints: (..., J, 3) ground-truth joints, metres.
        root: root joint subtracted from both (0 = wrist, 9 = middle MCP).
        scale: multiply the aligned prediction by :func:`bone_length_scale`.
        bone: reference bone of the scaling.

    Returns:
        (..., J) errors in millimetres.
    """
    p = _as_array(pred_joints, "pred_joints", 3)
    g = _as_array(gt_joints, "gt_joints", 3)
    _same_shape(p, g, "pred_joints", "gt_joints")
    return _aligned_errors(p, g, p, g, root, scale, bone)


def vertex_errors(pred_verts, gt_verts, pred_joints, gt_joints, root: int = ROOT_JOINT,
                  scale: bool = False, bone: tuple[int, int] = SCALE_BONE) -> np.ndarray:
    """Per-vertex position errors, aligned with the *joint* root of each hand.

    Args:
        pred_verts: (..., V, 3) predicted vertices, metres.
        gt_verts: (..., V, 3) ground-truth vertices, metres.
        pred_joints: (..., J, 3) predicted joints (give the root and the scale bone).
        gt_joints: (..., J, 3) ground-truth joints.
        root, scale, bone: as in :func:`joint_errors`.

    Returns:
        (..., V) errors in millimetres.
    """
    pv = _as_array(pred_verts, "pred_verts", 3)
    gv = _as_array(gt_verts, "gt_verts", 3)
    pj = _as_array(pred_joints, "pred_joints", 3)
    gj = _as_array(gt_joints, "gt_joints", 3)
    _same_shape(pv, gv, "pred_verts", "gt_verts")
    _same_shape(pj, gj, "pred_joints", "gt_joints")
    return _aligned_errors(pv, gv, pj, gj, root, scale, bone)


def _mean_or_nan(e: np.ndarray) -> float:
    return float(e.mean()) if e.size else float("nan")


def mpjpe(pred_joints, gt_joints, root: int = ROOT_JOINT, scale: bool = False, valid=None,
          bone: tuple[int, int] = SCALE_BONE) -> float:
    """Mean per-joint position error (mm) over the valid hands.

    Args:
        pred_joints, gt_joints: (..., J, 3) metres, leading shape ``L`` (e.g. (N,) or (N, 2)).
        root, scale, bone: as in :func:`joint_errors`.
        valid: bool array of shape ``L`` or None (all valid). Invalid hands are dropped before
            the NaN check.

    Returns:
        Mean error in mm over all joints of the valid hands (``nan`` if none is valid).
    """
    p = _as_array(pred_joints, "pred_joints", 3)
    g = _as_array(gt_joints, "gt_joints", 3)
    _same_shape(p, g, "pred_joints", "gt_joints")
    p, g = _select(valid, p, g)
    return _mean_or_nan(joint_errors(p, g, root, scale, bone))


def mpvpe(pred_verts, gt_verts, pred_joints, gt_joints, root: int = ROOT_JOINT,
          scale: bool = False, valid=None, bone: tuple[int, int] = SCALE_BONE) -> float:
    """Mean per-vertex position error (mm) over the valid hands.

    Args:
        pred_verts, gt_verts: (..., V, 3) metres, leading shape ``L``.
        pred_joints, gt_joints: (..., J, 3) metres, same leading shape (root + scale bone).
        root, scale, bone: as in :func:`joint_errors`.
        valid: bool array of shape ``L`` or None.

    Returns:
        Mean error in mm over all vertices of the valid hands (``nan`` if none is valid).
    """
    pv = _as_array(pred_verts, "pred_verts", 3)
    gv = _as_array(gt_verts, "gt_verts", 3)
    pj = _as_array(pred_joints, "pred_joints", 3)
    gj = _as_array(gt_joints, "gt_joints", 3)
    pv, gv, pj, gj = _select(valid, pv, gv, pj, gj)
    return _mean_or_nan(vertex_errors(pv, gv, pj, gj, root, scale, bone))


# ---------------------------------------------------------------------------- protocols

def evaluate_protocols(pred_joints, gt_joints, pred_verts=None, gt_verts=None, valid=None,
                       protocols: Mapping[str, tuple[int, bool]] | None = None,
                       bone: tuple[int, int] = SCALE_BONE, mrrpe_root: int = ROOT_JOINT) -> dict:
    """MPJPE / MPVPE under several alignment protocols, plus MRRPE, for two-hand batches.

    Args:
        pred_joints: (N, 2, J, 3) predicted joints, metres, camera frame, sides (left, right).
        gt_joints: (N, 2, J, 3) ground-truth joints.
        pred_verts: (N, 2, V, 3) predicted vertices or None (no MPVPE).
        gt_verts: (N, 2, V, 3) ground-truth vertices or None.
        valid: (N, 2) bool, which hands are present; None = all.
        protocols: name -> (root joint, scale); default :data:`PROTOCOLS`
            (``wrist_scaled``, ``mcp_scaled``, ``mcp``).
        bone: reference bone of the scaling.
        mrrpe_root: root joint of MRRPE (same joint for prediction and ground truth).

    Returns:
        ``{protocol: {"mpjpe", "mpjpe_left", "mpjpe_right"[, "mpvpe", "mpvpe_left",
        "mpvpe_right"]}, "mrrpe": float, "counts": {"left", "right", "hands", "pairs"}}``;
        values in mm, averaged over valid hands (over samples with both hands valid for
        MRRPE); ``nan`` where the set is empty.
    """
    pj = _as_array(pred_joints, "pred_joints", 3)
    gj = _as_array(gt_joints, "gt_joints", 3)
    _same_shape(pj, gj, "pred_joints", "gt_joints")
    if pj.ndim != 4 or pj.shape[1] != 2:
        raise ValueError(f"expected joints of shape (N, 2, J, 3), got {pj.shape}")
    n = pj.shape[0]
    v = np.ones((n, 2), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if v.shape != (n, 2):
        raise ValueError(f"valid must have shape ({n}, 2), got {v.shape}")
    if (pred_verts is None) != (gt_verts is None):
        raise ValueError("give both pred_verts and gt_verts, or neither")
    has_verts = pred_verts is not None
    if has_verts:
        pv = _as_array(pred_verts, "pred_verts", 3)
        gv = _as_array(gt_verts, "gt_verts", 3)
        _same_shape(pv, gv, "pred_verts", "gt_verts")
        if pv.shape[:2] != (n, 2):
            raise ValueError(f"expected verts of shape ({n}, 2, V, 3), got {pv.shape}")

    out: dict = {}
    for name, (root, scale) in (PROTOCOLS if protocols is None else protocols).items():
        res: dict[str, float] = {}
        # errors of the valid hands only, with their side index
        je = joint_errors(pj[v], gj[v], root, scale, bone)  # (M, J)
        side = np.nonzero(v)[1]  # (M,) 0 = left, 1 = right
        res["mpjpe"] = _mean_or_nan(je)
        res["mpjpe_left"] = _mean_or_nan(je[side == 0])
        res["mpjpe_right"] = _mean_or_nan(je[side == 1])
        if has_verts:
            ve = vertex_errors(pv[v], gv[v], pj[v], gj[v], root, scale, bone)  # (M, V)
            res["mpvpe"] = _mean_or_nan(ve)
            res["mpvpe_left"] = _mean_or_nan(ve[side == 0])
            res["mpvpe_right"] = _mean_or_nan(ve[side == 1])
        out[name] = res

    both = v.all(axis=1)
    out["mrrpe"] = _mean_or_nan(
        mrrpe(pj[both, 0], pj[both, 1], gj[both, 0], gj[both, 1], root=mrrpe_root))
    out["counts"] = {"left": int(v[:, 0].sum()), "right": int(v[:, 1].sum()),
                     "hands": int(v.sum()), "pairs": int(both.sum())}
    return out


# ---------------------------------------------------------------------------- MRRPE / MIAA

def _root_of(x: np.ndarray, root: int) -> np.ndarray:
    """(N, 3) roots from (N, 3) roots or (N, J, 3) joints."""
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        return x[:, root, :]
    raise ValueError(f"expected (N, 3) roots or (N, J, 3) joints, got {x.shape}")


def mrrpe(pred_left, pred_right, gt_left, gt_right, root: int = ROOT_JOINT) -> np.ndarray:
    """Mean relative-root position error: error of the right-minus-left root vector.

    ``|| (pred_right_root - pred_left_root) - (gt_right_root - gt_left_root) ||``.
    The *same* root joint is used for prediction and ground truth (the reference release
    centred the ground truth on joint 9 and the prediction on joint 0; not repeated here).

    Args:
        pred_left, pred_right, gt_left, gt_right: (N, 3) root positions, or (N, J, 3) joints
            from which joint ``root`` is taken; metres, one common frame (camera).
        root: root joint used when joints are given (0 = wrist by default).

    Returns:
        (N,) errors in millimetres.
    """
    arrs = [_root_of(_as_array(a, nm, 3), root) for a, nm in (
        (pred_left, "pred_left"), (pred_right, "pred_right"),
        (gt_left, "gt_left"), (gt_right, "gt_right"))]
    for a, nm in zip(arrs, ("pred_left", "pred_right", "gt_left", "gt_right")):
        _check_finite(a, nm)
        _same_shape(a, arrs[0], nm, "pred_left")
    pl, pr, gl, gr = arrs
    return np.linalg.norm((pr - pl) - (gr - gl), axis=-1) * M_TO_MM


def miaa(pred_verts2d, gt_verts2d) -> np.ndarray:
    """Mesh-image alignment accuracy: mean 2D distance of projected vertices, in PIXELS.

    The unit is the pixel of the image the points are expressed in (the network input
    crop for the paper's numbers), not millimetres.

    Args:
        pred_verts2d: (..., V, 2) projected predicted vertices, pixel coordinates
            (e.g. (N, V, 2) -> (N,), or (N, 2, V, 2) -> (N, 2)).
        gt_verts2d: (..., V, 2) projected ground-truth vertices, same image.

    Returns:
        (...) mean per-vertex distance in pixels.
    """
    p = _as_array(pred_verts2d, "pred_verts2d", 2)
    g = _as_array(gt_verts2d, "gt_verts2d", 2)
    _same_shape(p, g, "pred_verts2d", "gt_verts2d")
    _check_finite(p, "pred_verts2d")
    _check_finite(g, "gt_verts2d")
    return np.linalg.norm(p - g, axis=-1).mean(axis=-1)


# ---------------------------------------------------------------------------- PCK / AUC

def pck_curve(errors_mm, thresholds=None) -> tuple[np.ndarray, float]:
    """Percentage of correct keypoints and its normalised area under the curve.

    Args:
        errors_mm: array of any shape of per-joint errors in mm (only valid joints; they are
            flattened), e.g. ``joint_errors(...)[valid]``.
        thresholds: (T,) increasing thresholds in mm, T >= 2; default 0..50 mm every 0.5 mm.

    Returns:
        ``(pck, auc)``: pck (T,) = fraction of errors ``<= t`` for each threshold;
        auc = trapezoidal area under the PCK curve divided by ``thresholds[-1] -
        thresholds[0]`` (so in [0, 1]).
    """
    e = np.asarray(errors_mm, dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("pck_curve needs at least one error")
    _check_finite(e, "errors_mm")
    t = DEFAULT_PCK_THRESHOLDS_MM if thresholds is None else np.asarray(thresholds, np.float64)
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("thresholds must be a 1D strictly increasing array of >= 2 values")
    # fraction of errors <= t, via a sorted search (O((E + T) log E))
    pck = np.searchsorted(np.sort(e), t, side="right") / e.size
    area = float(np.sum((pck[1:] + pck[:-1]) * 0.5 * np.diff(t)))
    return pck, area / float(t[-1] - t[0])
