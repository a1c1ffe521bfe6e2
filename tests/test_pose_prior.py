"""Tests of the hand pose prior: conventions, limits, styles, mirror and PCA."""
from __future__ import annotations

import numpy as np
import pytest

from interhand_perception.hand_model import pose_prior as P
from interhand_perception.hand_model.builtin import load_builtin_data

N = 4000


@pytest.fixture(scope="module")
def poses():
    return P.sample_hand_pose(np.random.default_rng(0), N, "right", "any")


def test_shape_dtype_and_determinism(poses):
    assert poses.shape == (N, 45) and poses.dtype == np.float32
    again = P.sample_hand_pose(np.random.default_rng(0), N, "right", "any")
    np.testing.assert_array_equal(poses, again)
    assert np.isfinite(poses).all()
    assert np.linalg.norm(poses.reshape(N, 15, 3), axis=-1).max() < np.pi


@pytest.mark.parametrize("style", list(P.STYLES) + ["any"])
def test_samples_respect_limits(style):
    rng = np.random.default_rng(1)
    ang = P.sample_hand_angles(rng, 2000, style)
    lim = P.anatomical_limits()
    assert ((ang >= lim[..., 0] - 1e-12) & (ang <= lim[..., 1] + 1e-12)).all()
    for side in ("right", "left"):
        pose = P.sample_hand_pose(np.random.default_rng(2), 2000, side, style).reshape(-1, 15, 3)
        lo, hi = P.pose_limits(side)
        assert lo.shape == hi.shape == (15, 3) and (lo < hi).all()
        assert ((pose >= lo) & (pose <= hi)).all()


def test_limits_are_anatomical():
    lim = np.degrees(P.anatomical_limits())
    mcp, pip, dip = lim[0:12:3], lim[1:12:3], lim[2:12:3]
    assert (mcp[:, 0] == [-20, 90]).all() and (pip[:, 0] == [0, 110]).all()
    assert (dip[:, 0] == [0, 80]).all()
    assert (np.abs(mcp[:, 1]) <= 25).all() and (np.abs(mcp[:, 1]).max(axis=1) >= 12).all()
    lo_r, hi_r = P.pose_limits("right")
    lo_l, hi_l = P.pose_limits("left")
    flip = np.array([1.0, -1.0, -1.0])
    np.testing.assert_allclose(np.minimum(lo_r * flip, hi_r * flip), lo_l)
    np.testing.assert_allclose(np.maximum(lo_r * flip, hi_r * flip), hi_l)


def test_flexion_is_about_plus_z_and_curls_to_palm():
    fist = P.sample_hand_pose(np.random.default_rng(3), 500, "right", "fist").reshape(-1, 15, 3)
    fingers = fist[:, :12]                                   # index, middle, little, ring
    assert (fingers[..., 2].mean(axis=0) > 0.9).all()
    assert (np.abs(fingers[..., :2]).mean(axis=0) < 0.3 * fingers[..., 2].mean(axis=0)[:, None]).all()
    axes = P.joint_axes()
    assert (axes[:12, 0, 2] > 0.95).all()                    # finger flexion axes ~ +z
    rot = P.axis_angle_to_matrix(np.array([0.0, 0.0, 0.5]))
    assert (rot @ np.array([-1.0, 0.0, 0.0]))[1] < 0         # +z rotation moves -x towards -y


def test_dip_coupled_to_pip_and_styles_differ():
    rng = np.random.default_rng(4)
    ang = np.degrees(P.sample_hand_angles(rng, 3000, "any"))
    pip, dip = ang[:, 1:12:3, 0].ravel(), ang[:, 2:12:3, 0].ravel()
    assert np.corrcoef(pip, dip)[0, 1] > 0.85
    mean_flex = {s: np.degrees(P.sample_hand_angles(np.random.default_rng(5), 500, s))[:, :12, 0].mean()
                 for s in P.STYLES}
    assert mean_flex["open"] < 15 < mean_flex["grasp"] < mean_flex["fist"]
    assert mean_flex["point"] < mean_flex["fist"]
    total = ang[:, :12, 0].mean(axis=1)
    assert (total < 15).mean() > 0.1 and (total > 60).mean() > 0.1     # open and closed hands


def test_left_is_mirrored_right():
    right = P.sample_hand_pose(np.random.default_rng(6), 100, "right", "pinch")
    left = P.sample_hand_pose(np.random.default_rng(6), 100, "left", "pinch")
    np.testing.assert_array_equal(left, P.mirror_pose(right))
    np.testing.assert_array_equal(P.mirror_pose(left), right)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="style"):
        P.sample_hand_pose(rng, 2, style="wave")
    with pytest.raises(ValueError, match="side"):
        P.sample_hand_pose(rng, 2, side="both")
    with pytest.raises(ValueError):
        P.typical_pose("random")


def test_axis_angle_roundtrip_and_angles():
    aa = np.random.default_rng(7).normal(size=(200, 3))
    aa *= (np.random.default_rng(8).uniform(0.01, 3.0, 200) / np.linalg.norm(aa, axis=1))[:, None]
    np.testing.assert_allclose(P.matrix_to_axis_angle(P.axis_angle_to_matrix(aa)), aa, atol=1e-9)
    ang = np.zeros((1, 15, 3))
    np.testing.assert_allclose(P.angles_to_pose(ang), 0.0)
    ang[0, 4, 0] = 0.7                                        # middle PIP flexion only
    pose = P.angles_to_pose(ang).reshape(15, 3)
    np.testing.assert_allclose(pose[4], 0.7 * P.joint_axes()[4, 0], atol=1e-12)


def test_typical_poses_within_limits():
    lo, hi = P.pose_limits()
    for style in ("open", "fist", "pinch", "point", "grasp", "spread"):
        pose = P.typical_pose(style).reshape(15, 3)
        assert ((pose >= lo) & (pose <= hi)).all(), style


def test_pca_reconstructs_exactly(poses):
    mean, comps, std = P.pose_pca(poses)
    assert mean.shape == (45,) and comps.shape == (45, 45) and std.shape == (45,)
    np.testing.assert_allclose(comps @ comps.T, np.eye(45), atol=1e-9)
    assert (np.diff(std) <= 1e-12).all() and std[-1] > 0           # sorted, full rank
    coeffs = (poses - mean) @ comps.T                                # not whitened
    np.testing.assert_allclose(mean + coeffs @ comps, poses, atol=1e-5)
    np.testing.assert_allclose(coeffs.std(axis=0, ddof=1), std, rtol=1e-6)


def test_model_pca_matches_prior():
    data = load_builtin_data("right")
    comps, mean = data.hands_components.astype(np.float64), data.hands_mean.astype(np.float64)
    std = data.extras["pca_std"]
    np.testing.assert_allclose(comps @ comps.T, np.eye(45), atol=1e-5)
    assert (np.diff(std) <= 1e-7).all() and std[-1] > 0
    fresh = P.sample_hand_pose(np.random.default_rng(9), 2000, "right", "any").astype(np.float64)
    coeffs = (fresh - mean) @ comps.T
    np.testing.assert_allclose(mean + coeffs @ comps, fresh, atol=1e-5)
    ratio = coeffs.std(axis=0)[:10] / std[:10]                      # same distribution
    assert (ratio > 0.85).all() and (ratio < 1.15).all()
    left = load_builtin_data("left")
    np.testing.assert_allclose(left.hands_components, P.mirror_pose(data.hands_components))
