"""Metrics on cases whose answers are worked out by hand (arithmetic in the comments)."""
from __future__ import annotations

import numpy as np
import pytest

from interhand_perception.evaluation.metrics import (
    PROTOCOLS,
    align_root,
    bone_length_scale,
    evaluate_protocols,
    joint_errors,
    miaa,
    mpjpe,
    mpvpe,
    mrrpe,
    pck_curve,
    vertex_errors,
)


def line_hand() -> np.ndarray:
    """(21, 3) ground-truth joints: joint j at (j cm, 0, 0), so the middle MCP is at 9 cm."""
    j = np.zeros((21, 3))
    j[:, 0] = np.arange(21) * 0.01
    return j


# ---------------------------------------------------------------------------- alignment

def test_align_root_subtracts_the_root_joint():
    x = np.array([[[1.0, 2.0, 3.0], [4.0, 6.0, 3.0]]])  # (1, 2, 3)
    # root 0: (4,6,3) - (1,2,3) = (3,4,0)
    np.testing.assert_allclose(align_root(x, 0), [[[0, 0, 0], [3, 4, 0]]])
    # root 1: (1,2,3) - (4,6,3) = (-3,-4,0)
    np.testing.assert_allclose(align_root(x, 1), [[[-3, -4, 0], [0, 0, 0]]])
    # vertices aligned with the root of *another* array (the joints)
    verts = np.array([[[10.0, 10.0, 10.0]]])
    np.testing.assert_allclose(align_root(verts, 1, joints=x), [[[6, 4, 7]]])


def test_bone_length_scale_is_gt_over_pred():
    gt = line_hand()[None]  # wrist->middle MCP = 9 cm
    pred = 3.0 * gt  # 27 cm
    # factor multiplied onto the prediction: 9 / 27 = 1/3
    np.testing.assert_allclose(bone_length_scale(pred, gt), [1.0 / 3.0])
    # other bone: joints 0 -> 1, gt 1 cm, pred 3 cm -> 1/3 as well; 2-joint hands work too
    g2 = np.array([[[0, 0, 0], [0.03, 0, 0]]])
    p2 = np.array([[[0, 0, 0], [0, 0.06, 0]]])  # 6 cm bone -> 3/6 = 0.5
    np.testing.assert_allclose(bone_length_scale(p2, g2, bone=(0, 1)), [0.5])
    with pytest.raises(ValueError, match="zero length"):
        bone_length_scale(np.zeros((1, 21, 3)), gt)


# ---------------------------------------------------------------------------- 3D errors

def test_joint_errors_offset_345_and_translation_invariance():
    gt = np.array([[[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]]])  # 2-joint hand, metres
    pred = gt.copy()
    pred[0, 1] += [0.003, 0.004, 0.0]  # tip off by (3,4,0) mm -> 5 mm
    pred += [0.1, 0.2, 0.3]  # a global translation is removed by root alignment
    np.testing.assert_allclose(joint_errors(pred, gt, root=0), [[0.0, 5.0]], atol=1e-9)
    # aligned on joint 1 instead, the wrist carries the (-3,-4,0) mm error -> 5 mm
    np.testing.assert_allclose(joint_errors(pred, gt, root=1), [[5.0, 0.0]], atol=1e-9)


def test_joint_errors_with_scaling():
    g2 = np.array([[[0, 0, 0], [0.03, 0, 0]]])  # gt bone 3 cm along x
    p2 = np.array([[[0, 0, 0], [0, 0.06, 0]]])  # pred bone 6 cm along y
    # scale 0.5 -> pred tip (0, 3, 0) cm vs (3, 0, 0) cm -> 30 * sqrt(2) mm
    e = joint_errors(p2, g2, root=0, scale=True, bone=(0, 1))
    np.testing.assert_allclose(e, [[0.0, 30.0 * np.sqrt(2.0)]], atol=1e-9)
    # unscaled: (0, 6, 0) vs (3, 0, 0) cm -> sqrt(36 + 9) cm = 67.08 mm
    np.testing.assert_allclose(joint_errors(p2, g2, bone=(0, 1))[0, 1], 10 * np.sqrt(45.0))


def test_mpjpe_mean_and_valid_mask():
    gt = np.zeros((3, 2, 3))
    gt[:, 1] = [0.01, 0.0, 0.0]
    pred = gt.copy()
    pred[0, 1] += [0.003, 0.004, 0.0]  # 5 mm
    pred[1, 1] += [0.005, 0.012, 0.0]  # sqrt(25 + 144) = 13 mm
    pred[2] = np.nan  # an absent hand
    valid = np.array([True, True, False])
    # joints: 0, 5, 0, 13 -> (0 + 5 + 0 + 13) / 4 = 4.5 mm
    assert mpjpe(pred, gt, valid=valid) == pytest.approx(4.5)
    with pytest.raises(ValueError, match="non-finite"):
        mpjpe(pred, gt)  # NaN in an evaluated hand is an error, not a silent drop
    assert np.isnan(mpjpe(pred, gt, valid=np.zeros(3, bool)))  # empty set -> nan


def test_vertex_errors_use_the_joint_root():
    gj = np.array([[[0, 0, 0], [0.01, 0, 0]]])
    gv = np.array([[[0, 0.01, 0], [0, 0.02, 0]]])
    t = np.array([0.1, 0.0, 0.5])
    pj = gj + t
    pv = gv + t
    pv[0, 0] += [0.003, 0.0, 0.004]  # first vertex off by (3,0,4) mm -> 5 mm
    np.testing.assert_allclose(vertex_errors(pv, gv, pj, gj), [[5.0, 0.0]], atol=1e-9)
    # same, averaged: (5 + 0) / 2 = 2.5 mm
    assert mpvpe(pv, gv, pj, gj) == pytest.approx(2.5)
    # a prediction twice as large about the wrist: scaling (gt 1 cm / pred 2 cm) undoes it
    pj2 = 2 * gj + t
    pv2 = 2 * gv + t
    np.testing.assert_allclose(vertex_errors(pv2, gv, pj2, gj, scale=True, bone=(0, 1)),
                               [[0.0, 0.0]], atol=1e-9)
    # unscaled: vertex (0,2,0) vs (0,1,0) cm -> 10 mm; (0,4,0) vs (0,2,0) -> 20 mm
    np.testing.assert_allclose(vertex_errors(pv2, gv, pj2, gj), [[10.0, 20.0]], atol=1e-9)


# ---------------------------------------------------------------------------- protocols

def make_two_hand_batch():
    """3 samples; left prediction = gt + T_l, right prediction = gt scaled x2 about the
    wrist + T_r; the right hand of sample 2 is absent (NaN, valid False)."""
    gt = np.stack([line_hand(), line_hand() + [0, 0.1, 0]])  # (2, 21, 3)
    gv = np.array([[0, 0.01, 0], [0, 0.02, 0]])  # (2 vertices, 3), relative to the wrist
    gtv = np.stack([gv + gt[0, 0], gv + gt[1, 0]])  # (2, 2, 3)
    t_l, t_r = np.array([0.01, 0, 0]), np.array([0.01, 0.03, 0.04])
    pred = np.stack([gt[0] + t_l, 2 * (gt[1] - gt[1, 0]) + gt[1, 0] + t_r])
    predv = np.stack([gtv[0] + t_l, 2 * (gtv[1] - gt[1, 0]) + gt[1, 0] + t_r])
    pj = np.repeat(pred[None], 3, 0)
    gj = np.repeat(gt[None], 3, 0)
    pv = np.repeat(predv[None], 3, 0)
    gvv = np.repeat(gtv[None], 3, 0)
    pj[2, 1] = np.nan
    pv[2, 1] = np.nan
    valid = np.array([[True, True], [True, True], [True, False]])
    return pj, gj, pv, gvv, valid


def test_evaluate_protocols_hand_worked():
    pj, gj, pv, gv, valid = make_two_hand_batch()
    r = evaluate_protocols(pj, gj, pv, gv, valid)
    assert set(PROTOCOLS) <= set(r)
    assert r["counts"] == {"left": 3, "right": 2, "hands": 5, "pairs": 2}
    # wrist_scaled and mcp_scaled: left is exact up to translation, right is exactly 2x
    # about the wrist (so 2x about the MCP too) and the scale 9/18 cm undoes it -> 0.
    for name in ("wrist_scaled", "mcp_scaled"):
        for k in ("mpjpe", "mpjpe_left", "mpjpe_right", "mpvpe", "mpvpe_left", "mpvpe_right"):
            assert r[name][k] == pytest.approx(0.0, abs=1e-9), (name, k)
    m = r["mcp"]
    # "mcp" without scale, right hand: pred_j - pred_mcp = 2 (gt_j - gt_mcp), error
    # |gt_j - gt_mcp| = |j - 9| cm; sum over j = (9+...+1) + (1+...+11) = 45 + 66 = 111 cm
    # -> per right hand 1110 mm / 21 joints = 52.857 mm
    assert m["mpjpe_left"] == pytest.approx(0.0, abs=1e-9)
    assert m["mpjpe_right"] == pytest.approx(1110.0 / 21)
    # all 5 valid hands: (3 left x 0 + 2 right x 1110 mm) / (5 x 21 joints)
    assert m["mpjpe"] == pytest.approx(2 * 1110.0 / 105)
    # vertices: error |v - mcp| with v = (0,1,0), (0,2,0) cm and mcp = (9,0,0) cm
    # -> sqrt(82) cm and sqrt(85) cm; mean over the 2 right hands x 2 vertices
    right_v = (np.sqrt(82.0) + np.sqrt(85.0)) / 2 * 10
    assert m["mpvpe_right"] == pytest.approx(right_v)
    assert m["mpvpe"] == pytest.approx(2 * 2 * right_v / (5 * 2))
    # MRRPE over the 2 complete pairs: |T_r - T_l| = |(0, 30, 40)| mm = 50 mm
    assert r["mrrpe"] == pytest.approx(50.0)


def test_evaluate_protocols_nan_in_valid_hand_raises():
    pj, gj, pv, gv, valid = make_two_hand_batch()
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_protocols(pj, gj, pv, gv, np.ones((3, 2), bool))


def test_evaluate_protocols_empty_side_is_nan_and_custom_protocol():
    pj, gj, _, _, _ = make_two_hand_batch()
    valid = np.array([[True, False]] * 3)
    r = evaluate_protocols(pj, gj, valid=valid, protocols={"wrist": (0, False)})
    assert set(r) == {"wrist", "mrrpe", "counts"}
    assert np.isnan(r["wrist"]["mpjpe_right"]) and np.isnan(r["mrrpe"])
    assert r["wrist"]["mpjpe_left"] == pytest.approx(0.0, abs=1e-9)
    assert "mpvpe" not in r["wrist"]


# ---------------------------------------------------------------------------- MRRPE / MIAA

def test_mrrpe_roots_and_joints():
    pl, pr = np.array([[0.0, 0, 0]]), np.array([[0.1, 0, 0]])
    gl, gr = np.array([[0.0, 0, 0]]), np.array([[0.1, 0.03, 0.04]])
    # relative vectors (100,0,0) vs (100,30,40) mm -> |(0,30,40)| = 50 mm
    np.testing.assert_allclose(mrrpe(pl, pr, gl, gr), [50.0])
    # moving both predicted hands together changes nothing
    np.testing.assert_allclose(mrrpe(pl + 1, pr + 1, gl, gr), [50.0])
    # joints given: the root joint is a parameter, and the same for pred and gt
    jl, jr = line_hand()[None], line_hand()[None] + [0.1, 0, 0]
    jr_gt = jr.copy()
    jr_gt[0, 0] += [0, 0.03, 0.04]  # only the gt right wrist moves by (0,30,40) mm
    np.testing.assert_allclose(mrrpe(jl, jr, jl, jr_gt, root=0), [50.0])
    np.testing.assert_allclose(mrrpe(jl, jr, jl, jr_gt, root=9), [0.0])
    with pytest.raises(ValueError, match="non-finite"):
        mrrpe(pl * np.nan, pr, gl, gr)


def test_miaa_in_pixels():
    gt = np.zeros((1, 2, 2, 2))  # (N, hands, V, 2)
    pred = gt.copy()
    pred[0, 0, 0] = [3, 4]  # 5 px
    pred[0, 1, :] = [6, 8]  # 10 px for both vertices
    # left: (5 + 0) / 2 = 2.5 px, right: 10 px
    np.testing.assert_allclose(miaa(pred, gt), [[2.5, 10.0]])
    np.testing.assert_allclose(miaa(pred[:, 0], gt[:, 0]), [2.5])  # (N, V, 2) -> (N,)


# ---------------------------------------------------------------------------- PCK / AUC

def test_pck_curve_hand_worked():
    t = np.array([0.0, 10, 20, 30, 40, 50])
    pck, auc = pck_curve([0.0, 10, 20, 60], t)
    # <= 0: 1 of 4; <= 10: 2; <= 20 .. 50: 3 (60 never)
    np.testing.assert_allclose(pck, [0.25, 0.5, 0.75, 0.75, 0.75, 0.75])
    # trapezoids: (0.25+0.5)/2*10 + (0.5+0.75)/2*10 + 3*0.75*10 = 3.75+6.25+22.5 = 32.5
    # normalised by 50 mm -> 0.65
    assert auc == pytest.approx(0.65)


def test_pck_curve_default_thresholds():
    pck, auc = pck_curve(np.array([[25.0]]))
    assert pck.shape == (101,)  # 0, 0.5, ..., 50 mm
    assert pck[49] == 0.0 and pck[50] == 1.0  # 24.5 mm < 25 <= 25 mm
    # area: the step at 25 costs half an interval: 0.5*0.5 (24.5..25) + 25 (25..50) = 25.25
    # -> 25.25 / 50 = 0.505
    assert auc == pytest.approx(0.505)
    assert pck_curve(np.zeros(7))[1] == pytest.approx(1.0)  # perfect -> AUC 1
    assert pck_curve(np.full(7, 80.0))[1] == pytest.approx(0.0)  # all beyond 50 mm -> 0


def test_pck_curve_rejects_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        pck_curve([1.0, np.nan])
    with pytest.raises(ValueError):
        pck_curve([])
    with pytest.raises(ValueError):
        pck_curve([1.0], thresholds=[0.0, 0.0, 1.0])


def test_evaluate_protocols_needs_both_vertex_arrays():
    pj, gj, pv, _, valid = make_two_hand_batch()
    with pytest.raises(ValueError, match="both"):
        evaluate_protocols(pj, gj, pv, None, valid)
