"""The evaluation protocol of the DIR release's own evaluation script (for ``variant: release``).

Its conventions, read from the release for facts (no code of it is used):

* Joints are *regressed from the posed vertices* for prediction and ground truth alike: the
  16 rows of MANO's joint regressor plus the fingertip vertices 745, 317, 444, 556, 673 (444 on
  both hands in the evaluation, although the network reads the left middle tip at 445), in the
  21-joint output order.
* Root joint 0 (wrist) or 9 (middle MCP); the prediction is scaled by the ground-truth bone
  length over the predicted one, bone 0 -> 9 of the regressed joints (its default, which its
  command line cannot switch off).
* MRRPE with root 0: the network's offset (times 0.15 m) against the ground-truth vector
  between the regressed wrists; with root 9: between the regressed middle MCPs, the right hand
  placed by the network's offset.

The numbers come out next to the project's protocol (``evaluation/metrics.py``), under
``release_*`` keys.
"""
from __future__ import annotations

import numpy as np

from ..hand_model.joints import MIDDLE_MCP, SIDES, SKIN_TO_OUTPUT
from .metrics import evaluate_protocols, mrrpe

#: Fingertip vertices of the release's evaluation (thumb, index, middle, ring, little), both hands.
EVAL_TIP_VERTS: tuple[int, ...] = (745, 317, 444, 556, 673)


def regress_joints(verts: np.ndarray, j_regressor: np.ndarray, tips=EVAL_TIP_VERTS) -> np.ndarray:
    """21 joints from posed vertices.

    Args:
        verts: (N, V, 3) vertices; j_regressor: (16, V) joint regressor; tips: 5 vertex ids.
    Returns:
        (N, 21, 3) ``[J @ verts, verts[tips]]`` reordered to the 21-joint output order.
    """
    j16 = np.einsum("jv,nvc->njc", np.asarray(j_regressor, dtype=np.float64), verts)
    both = np.concatenate([j16, verts[:, list(tips)]], axis=1)
    return both[:, SKIN_TO_OUTPUT]


def release_protocol_summary(pred_verts: np.ndarray, pred_offset: np.ndarray, gt_verts: np.ndarray,
                             valid: np.ndarray, regressors: dict) -> dict:
    """Headline numbers of the release's protocol.

    Args:
        pred_verts: (N, 2, V, 3) predicted vertices, left wrist at the origin, right hand
            shifted by the predicted offset (``evaluate.stack_prediction``'s frame).
        pred_offset: (N, 3) predicted right-minus-left wrist vector, metres.
        gt_verts: (N, 2, V, 3) ground-truth vertices (camera frame).
        valid: (N, 2) bool; regressors: {side: (16, V)} joint regressors.
    Returns:
        ``release_mpjpe``/``release_mpvpe`` (wrist, scaled), ``release_mpjpe_ms``/``_mpvpe_ms``
        (middle MCP, scaled), ``release_mpjpe_m`` (middle MCP, unscaled), ``release_mrrpe``
        (root 0) and ``release_mrrpe_mcp`` (root 9), in mm.
    """
    pv = np.asarray(pred_verts, dtype=np.float64)
    gv = np.asarray(gt_verts, dtype=np.float64)
    pj = np.stack([regress_joints(pv[:, i], regressors[s]) for i, s in enumerate(SIDES)], axis=1)
    gj = np.stack([regress_joints(gv[:, i], regressors[s]) for i, s in enumerate(SIDES)], axis=1)
    rep = evaluate_protocols(pj, gj, pv, gv, valid, mrrpe_root=MIDDLE_MCP)
    both = np.asarray(valid, dtype=bool).all(axis=1)
    off = np.asarray(pred_offset, dtype=np.float64)[both]
    wrist_err = mrrpe(np.zeros_like(off), off, gj[both, 0, 0], gj[both, 1, 0])
    return {
        "release_mpjpe": rep["wrist_scaled"]["mpjpe"], "release_mpvpe": rep["wrist_scaled"]["mpvpe"],
        "release_mpjpe_ms": rep["mcp_scaled"]["mpjpe"], "release_mpvpe_ms": rep["mcp_scaled"]["mpvpe"],
        "release_mpjpe_m": rep["mcp"]["mpjpe"],
        "release_mrrpe": float(wrist_err.mean()) if len(wrist_err) else float("nan"),
        "release_mrrpe_mcp": rep["mrrpe"],
    }


__all__ = ["EVAL_TIP_VERTS", "regress_joints", "release_protocol_summary"]
