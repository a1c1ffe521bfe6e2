"""Handedness diagnostics (evaluation.handedness): hand-worked numbers, then evaluate_model on a tiny DIRNet."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interhand_perception.evaluation.evaluate import evaluate_model, format_report
from interhand_perception.evaluation.handedness import (angle_deg, centre_distance, constant_normal_errors,
                                                        downsample_seg, handedness_summary, mean_direction,
                                                        offset_spread, palm_normal_report, palm_normals,
                                                        seg_accuracies)
from interhand_perception.training.curves import plot_curves
from tiny_config import TINY_MODEL

HANDEDNESS_KEYS = {"lr_seg_acc", "seg_acc", "lr_centre_dist_px", "lr_centre_dist_gt_px", "offset_spread",
                   "offset_spread_gt", "palm_normal_err_deg", "palm_normal_err_deg_left",
                   "palm_normal_err_deg_right", "palm_normal_err_const_deg", "palm_normal_err_const_deg_left",
                   "palm_normal_err_const_deg_right"}


def one_hot_logits(labels: np.ndarray) -> np.ndarray:
    """(N, h, w) labels -> (N, 3, h, w) logits whose argmax is the label."""
    return np.moveaxis(np.eye(3)[labels], -1, 1) * 5.0


def flat_right_hand() -> np.ndarray:
    """(21, 3) joints of a right hand held up, palm towards the viewer (+z), in the x-y plane:
    wrist at the origin, index MCP at (+1, 3, 0), little MCP at (-1, 3, 0); other joints at 0."""
    j = np.zeros((21, 3))
    j[5] = (1.0, 3.0, 0.0)
    j[17] = (-1.0, 3.0, 0.0)
    return j


def rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


# ---- segmentation ------------------------------------------------------------------------------
def test_downsample_seg_samples_cell_centres():
    seg = np.arange(16).reshape(1, 4, 4)
    # 4 -> 2: cell centres at 1.0 and 3.0 -> pixels 1 and 3
    assert downsample_seg(seg, (2, 2)).tolist() == [[[5, 7], [13, 15]]]
    assert (downsample_seg(seg, (4, 4)) == seg).all()  # same size: identity


def test_seg_accuracies_perfect_swapped_and_counted_by_hand():
    gt = np.array([[[0, 1], [2, 2]]])  # 1 background, 1 left, 2 right pixels
    perfect = seg_accuracies(one_hot_logits(gt), gt)
    assert perfect["lr_seg_acc"] == 1.0 and perfect["seg_acc"] == 1.0
    assert perfect["lr_pixels"] == 3 and perfect["pixels"] == 4
    swapped = seg_accuracies(one_hot_logits(np.array([[[0, 2], [1, 1]]])), gt)
    assert swapped["lr_seg_acc"] == 0.0 and swapped["seg_acc"] == 0.25  # only the background right
    # background predicted everywhere, but right > left on every pixel: the side is still read
    # from the left/right logits only -> 2 of 3 hand pixels right; 3-class accuracy 1/4
    logits = np.zeros((1, 3, 2, 2))
    logits[:, 0] = 9.0
    logits[:, 2] = 1.0
    acc = seg_accuracies(logits, gt)
    assert acc["lr_seg_acc"] == pytest.approx(2 / 3) and acc["seg_acc"] == 0.25
    assert math.isnan(seg_accuracies(logits, np.zeros((1, 2, 2), int))["lr_seg_acc"])  # no hand pixel


# ---- placement ---------------------------------------------------------------------------------
def test_centre_distance():
    j = np.zeros((2, 2, 21, 2))
    j[0, 1] += (3.0, 4.0)  # right hand 5 px from the left one
    j[1] += 7.0            # both hands at one point
    assert centre_distance(j).tolist() == [5.0, 0.0]
    j[0, 0, 0] = (21.0, 0.0)  # one left joint moved by 21 px: the left centre moves by 1 px in x
    assert centre_distance(j)[0] == pytest.approx(math.hypot(2.0, 4.0))


def test_offset_spread_by_hand():
    assert offset_spread(np.array([[1.0, 0, 0], [-1.0, 0, 0]])) == pytest.approx(1.0)
    # mean (1, 1, 0); squared distances: (1+1), (1+1), (4+1), (0+9) -> 2, 2, 5, 9 -> sqrt(18/4)
    assert offset_spread(np.array([[0.0, 0, 0], [0, 0, 0], [3, 0, 0], [1, 4, 0]])) == pytest.approx(math.sqrt(4.5))
    assert offset_spread(np.tile([[0.3, -0.2, 1.0]], (5, 1))) == 0.0  # a constant offset has no spread
    assert math.isnan(offset_spread(np.zeros((0, 3))))


# ---- palm normals ------------------------------------------------------------------------------
def test_palm_normal_convention_right_left_mirror():
    right = flat_right_hand()
    assert np.allclose(palm_normals(right, "right"), (0, 0, 1))  # out of the palm, at the viewer
    left = right * (-1.0, 1.0, 1.0)  # its mirror image is a left hand, palm still at the viewer
    assert np.allclose(palm_normals(left, "left"), (0, 0, 1))
    # integer sides (0 left, 1 right) broadcast over a batch
    both = np.stack([left, right])
    assert np.allclose(palm_normals(both, np.array([0, 1])), [(0, 0, 1), (0, 0, 1)])
    # translation does not matter; a degenerate palm is NaN and counts as 90 degrees
    assert np.allclose(palm_normals(right + 5.0, "right"), (0, 0, 1))
    assert np.isnan(palm_normals(np.zeros((21, 3)), "right")).all()
    assert angle_deg(palm_normals(np.zeros((21, 3)), "right"), (0, 0, 1)) == 90.0


def test_palm_normal_points_to_the_palm_of_the_built_in_hands():
    """At zero pose the built-in hands are curled: the fingertips lie on the palmar side of the palm plane."""
    from interhand_perception.hand_model import load_hand_model

    for side in ("left", "right"):
        j = load_hand_model(side)(torch.zeros(1, 3), torch.zeros(1, 45), torch.zeros(1, 10)).joints[0].numpy()
        tips = j[[8, 12, 16, 20]] - j[0]
        assert (tips @ palm_normals(j, side) > 0.02).all(), side


def test_known_rotation_gives_known_angle():
    gt = flat_right_hand()
    for deg in (0.0, 30.0, 90.0, 180.0):
        pred = gt @ rot_x(deg).T
        assert float(angle_deg(palm_normals(pred, "right"), palm_normals(gt, "right"))) == pytest.approx(deg, abs=1e-6)
    # a rotation about the normal itself leaves the palm plane where it is
    rz = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert float(angle_deg(palm_normals(gt @ rz.T, "right"), (0, 0, 1))) == pytest.approx(0.0, abs=1e-6)


def test_constant_baseline_on_a_tiny_set():
    # normals +z and +x: mean (0.5, 0, 0.5) -> (1, 0, 1)/sqrt(2), 45 degrees from each
    n = np.array([[0.0, 0, 1], [1, 0, 0]])
    assert np.allclose(mean_direction(n), np.array([1, 0, 1]) / math.sqrt(2))
    assert np.allclose(constant_normal_errors(n), [45.0, 45.0])
    # three normals +z, +z, +x: mean (1, 0, 2)/3 -> angle to +z atan(1/2), to +x atan(2)
    n3 = np.array([[0.0, 0, 1], [0, 0, 1], [1, 0, 0]])
    exp = [math.degrees(math.atan(0.5))] * 2 + [math.degrees(math.atan(2.0))]
    assert np.allclose(constant_normal_errors(n3), exp)
    # opposite normals cancel: no constant direction, every error counts as 90 degrees
    assert np.allclose(constant_normal_errors(np.array([[0.0, 0, 1], [0, 0, -1]])), [90.0, 90.0])


def test_palm_normal_report_per_side_pooled_and_valid_mask():
    right = flat_right_hand()
    left = right * (-1.0, 1.0, 1.0)
    gt = np.stack([np.stack([left, right]), np.stack([left @ rot_x(90).T, right @ rot_x(90).T])])  # (2, 2, 21, 3)
    rep = palm_normal_report(gt, gt)
    assert rep["palm_normal_err_deg"] == 0.0
    assert rep["palm_normal_err_deg_left"] == 0.0 and rep["palm_normal_err_deg_right"] == 0.0
    assert rep["palm_normal_err_const_deg"] == pytest.approx(45.0)  # +z and -y normals per side
    pred = gt.copy()
    pred[:, 1] = pred[:, 1] @ rot_x(30).T  # right hands tilted by 30 degrees
    rep = palm_normal_report(pred, gt)
    assert rep["palm_normal_err_deg_right"] == pytest.approx(30.0)
    assert rep["palm_normal_err_deg_left"] == pytest.approx(0.0)
    assert rep["palm_normal_err_deg"] == pytest.approx(15.0)
    # the second right hand missing: it is skipped (NaN joints there are fine) and the right
    # constant baseline is then 0 (one normal is its own mean)
    pred[1, 1] = np.nan
    rep = palm_normal_report(pred, gt, valid=np.array([[True, True], [True, False]]))
    assert rep["palm_normal_err_deg_right"] == pytest.approx(30.0)
    assert rep["palm_normal_err_const_deg_right"] == pytest.approx(0.0)
    assert rep["palm_normal_err_const_deg_left"] == pytest.approx(45.0)
    assert rep["palm_normal_err_const_deg"] == pytest.approx(30.0)  # (45 + 45 + 0) / 3
    assert rep["palm_normal_err_deg"] == pytest.approx(10.0)  # (0 + 0 + 30) / 3


def test_handedness_summary_of_a_perfect_and_of_a_collapsed_prediction():
    rng = np.random.default_rng(0)
    n = 4
    gt_j = rng.normal(size=(n, 2, 21, 3))
    gt_2d = rng.uniform(0, 64, size=(n, 2, 21, 2))
    gt_off = rng.normal(size=(n, 3))
    seg = np.zeros((n, 16, 16), np.uint8)
    seg[:, :, :8], seg[:, :, 8:12] = 1, 2  # left half left, then a band of right pixels
    seg_small = downsample_seg(seg, (2, 2))
    valid = np.ones((n, 2), bool)
    s = handedness_summary(one_hot_logits(seg_small.astype(int)), seg, gt_2d, gt_2d, gt_off, gt_off, gt_j, gt_j, valid)
    assert set(s) == HANDEDNESS_KEYS
    assert s["lr_seg_acc"] == 1.0 and s["seg_acc"] == 1.0
    assert s["lr_centre_dist_px"] == s["lr_centre_dist_gt_px"] > 0
    assert s["offset_spread"] == s["offset_spread_gt"] > 0
    assert s["palm_normal_err_deg"] == pytest.approx(0.0, abs=1e-6)
    assert s["palm_normal_err_const_deg"] > 0
    # collapsed: both hands at the image centre, one constant offset, left/right swapped pixels
    swapped = np.where(seg_small == 1, 2, np.where(seg_small == 2, 1, 0))
    pred_2d = np.full((n, 2, 21, 2), 32.0)
    pred_off = np.tile([[0.1, 0.0, 0.0]], (n, 1))
    c = handedness_summary(one_hot_logits(swapped), seg, pred_2d, gt_2d, pred_off, gt_off, gt_j, gt_j, valid)
    assert c["lr_seg_acc"] == 0.0
    assert c["lr_centre_dist_px"] == 0.0 and c["lr_centre_dist_gt_px"] == s["lr_centre_dist_gt_px"]
    assert c["offset_spread"] == 0.0 and c["offset_spread_gt"] == s["offset_spread_gt"]
    # without a seg head: no seg keys; samples missing a hand leave the pair statistics
    valid[0, 1] = False
    d = handedness_summary(None, None, gt_2d, gt_2d, gt_off, gt_off, gt_j, gt_j, valid)
    assert set(d) == HANDEDNESS_KEYS - {"lr_seg_acc", "seg_acc"}
    assert d["offset_spread_gt"] == pytest.approx(offset_spread(gt_off[1:]))
    assert d["lr_centre_dist_gt_px"] == pytest.approx(centre_distance(gt_2d[1:]).mean())


# ---- evaluate_model on a tiny network ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_eval():
    from interhand_perception.training.config import load_run_config
    from interhand_perception.dir_net.build import build_model
    from interhand_perception.data.splits import build_test_set

    cfg = load_run_config(None, {"model": dict(TINY_MODEL),
                                 "data": {"train_samples": 4, "test_samples": 4, "num_workers": 0},
                                 "train": {"device": "cpu"}})
    torch.manual_seed(0)
    model, _ = build_model(cfg, torch.device("cpu"))
    ds = build_test_set(cfg, limit=3)
    return evaluate_model(model, ds, batch_size=2, with_iv=False, progress=False), ds


def test_evaluate_model_reports_handedness(tiny_eval):
    res, ds = tiny_eval
    s = res["summary"]
    assert HANDEDNESS_KEYS <= set(s)
    for k in HANDEDNESS_KEYS:
        assert math.isfinite(s[k]), k
    assert 0.0 <= s["lr_seg_acc"] <= 1.0 and 0.0 <= s["seg_acc"] <= 1.0
    for k in ("palm_normal_err_deg", "palm_normal_err_const_deg", "palm_normal_err_deg_left"):
        assert 0.0 <= s[k] <= 180.0, k
    # the ground-truth side needs no network: recompute it from the samples
    both = [x for x in (ds[i] for i in range(len(ds))) if np.asarray(x["hand_valid"]).all()]
    gt_2d = np.stack([x["joints2d"] for x in both])
    assert s["lr_centre_dist_gt_px"] == pytest.approx(centre_distance(gt_2d).mean(), rel=1e-5)
    gt_off = np.stack([(x["joints3d"][1, 0] - x["joints3d"][0, 0]) / 0.15 for x in both])
    assert s["offset_spread_gt"] == pytest.approx(offset_spread(gt_off), rel=1e-5)
    assert {f"mpjpe_stage{i}" for i in range(len(res["stages"]))} <= set(s)
    text = format_report(res)
    assert "left/right seg accuracy" in text and "palm normal error" in text


def test_curves_have_a_handedness_panel(tiny_eval, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    res, _ = tiny_eval
    history = [{"step": 2, "total": 1.0, "joints3d": 0.5}, {"step": 2, "eval": res["summary"]},
               {"step": 4, "total": 0.8, "joints3d": 0.4}, {"step": 4, "eval": res["summary"]}]
    panels, subplots = [], plt.subplots

    def counting_subplots(*args, **kwargs):
        fig, axes = subplots(*args, **kwargs)
        panels.append(len(np.atleast_1d(axes)))
        return fig, axes

    monkeypatch.setattr(plt, "subplots", counting_subplots)
    assert plot_curves(history, tmp_path / "with.png").stat().st_size > 5000
    old = [h if "eval" not in h else {"step": h["step"], "eval": {"mpjpe_stage0": 90.0}} for h in history]
    assert plot_curves(old, tmp_path / "without.png").stat().st_size > 5000  # older logs still draw
    assert panels == [3, 2]
