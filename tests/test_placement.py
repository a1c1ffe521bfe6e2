"""Metric placement: hand-worked maths, camera_info handling, crop boxes, synthetic ground truth."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from interhand_perception.data.synthetic import SyntheticConfig, generate_sample, load_models
from interhand_perception.dir_net.crop import box_to_affine, crop_box
from interhand_perception.pipeline.decode import InputError
from interhand_perception.pipeline.placement import (
    Intrinsics, assumed_intrinsics, depth_from_scale, intrinsics_from_camera_info,
    place_hands, project_points, wrist_from_weak_perspective)

INTR = Intrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)
BOX = np.array([300.0, 200.0, 200.0])


def fake_result(joints: np.ndarray, cams: np.ndarray, offset, orient=np.zeros((2, 3)), crop_size: int = 64):
    """TwoHandResult-like object from (2, N, 3) wrist-relative joints and (2, 3) cameras."""
    hands = [SimpleNamespace(joints=joints[h], vertices=joints[h].astype(np.float32), camera=cams[h],
                             global_orient=orient[h]) for h in range(2)]
    return SimpleNamespace(left=hands[0], right=hands[1], offset=np.asarray(offset, float), crop_size=crop_size)


# ----------------------------------------------------------------------------- intrinsics

def test_camera_info_k_used_as_it_is():
    # another resolution, binning, ROI: tests/test_camera_info.py (pipeline.camera_info)
    k = [500, 0, 320, 0, 510, 240, 0, 0, 1]
    intr = intrinsics_from_camera_info(k, 640, 480)
    np.testing.assert_allclose(intr.matrix(), np.reshape(k, (3, 3)))
    assert not intr.assumed and (intr.width, intr.height) == (640, 480)


@pytest.mark.parametrize("k", [
    [math.nan, 0, 320, 0, 500, 240, 0, 0, 1],
    [500, 0, 320, 0, math.inf, 240, 0, 0, 1],
    [0.0] * 9,                                  # uncalibrated camera
    [500, 0, 320, 0, -500, 240, 0, 0, 1],
    [500, 0, 320, 0, 500, 240, 0, 0, 0],        # K[2][2] != 1
    [500, 0, 320, 0, 500, 240, 0, 0],           # 8 values
])
def test_bad_camera_info_is_refused(k):
    with pytest.raises(InputError) as info:
        intrinsics_from_camera_info(k, 640, 480)
    assert info.value.kind == "intrinsics"


def test_assumed_intrinsics_from_field_of_view():
    intr = assumed_intrinsics(640, 480, 90.0)  # tan(45 deg) = 1: f = W / 2
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.assumed) == pytest.approx((320, 320, 320, 240, True))
    assert assumed_intrinsics(640, 480).fx == pytest.approx(320 / math.tan(math.radians(30)))  # 554.26


# ----------------------------------------------------------------------------- crop boxes

def test_crop_boxes_for_640x480():
    np.testing.assert_array_equal(crop_box("center", 640, 480), [320, 240, 480])
    np.testing.assert_array_equal(crop_box("full", 640, 480), [320, 240, 640])
    np.testing.assert_array_equal(crop_box("roi", 640, 480, (100, 50, 64)), [100, 50, 64])
    for roi in (None, (1, 2), (1, 2, 0), (1, math.nan, 5)):
        with pytest.raises(ValueError):
            crop_box("roi", 640, 480, roi)
    with pytest.raises(ValueError, match="center, full, roi"):
        crop_box("middle", 640, 480)


# ----------------------------------------------------------------------------- exact maths

def test_depth_from_scale_hand_worked():
    assert depth_from_scale(2.0, 200.0, 500.0, 500.0) == pytest.approx(2.5)   # 500 / (2 * 100)
    assert depth_from_scale(2.0, 200.0, 500.0, 600.0) == pytest.approx(2.75)  # 550 / 200


def test_wrist_from_weak_perspective_hand_worked():
    # Z = 2.5; wrist pixel u = 300 + 0.5 * 100 = 350, v = 200 - 0.25 * 100 = 175
    cam = np.array([2.0, 0.5, -0.25])
    wrist = wrist_from_weak_perspective(cam, BOX, INTR)
    np.testing.assert_allclose(wrist, [30 * 2.5 / 500, -65 * 2.5 / 500, 2.5])  # (0.15, -0.325, 2.5)
    np.testing.assert_allclose(wrist_from_weak_perspective(cam, BOX, INTR, depth=1.0), [0.06, -0.13, 1.0])
    np.testing.assert_allclose(project_points(wrist[None], INTR), [[350.0, 175.0]])


def test_project_points_behind_camera_is_nan():
    px = project_points(np.array([[0.1, 0.0, 1.0], [0.0, 0.0, -1.0]]), INTR)
    np.testing.assert_allclose(px[0], [370.0, 240.0])
    assert np.isnan(px[1]).all()


@pytest.mark.parametrize("cam", [[0.0, 0, 0], [-1.0, 0, 0], [math.nan, 0, 0], [2.0, math.inf, 0]])
def test_bad_cameras_are_refused(cam):
    with pytest.raises(InputError) as info:
        wrist_from_weak_perspective(np.array(cam), BOX, INTR)
    assert info.value.kind == "non_finite"


PLANAR = np.array([[0.0, 0, 0], [0.05, 0, 0], [0, 0.08, 0], [-0.02, 0.04, 0]])  # fronto-parallel hand


@pytest.mark.parametrize("solver", ["perspective", "closed_form"])
def test_pair_placement_hand_worked(solver):
    # Closed form: Z_pair = 500 / (2 * 100) = 2.5 (s = 2 for both), offset_z = 0.2 -> Z_left 2.4,
    # Z_right 2.6; left wrist pixel (300 + 50, 200 - 25) = (350, 175), right (300 - 50, 200) = (250, 200).
    # A planar fronto-parallel hand is exactly weak-perspective, so the perspective solve gives the
    # same wrists when each scale matches its hand's depth, s_h * 100 = 500 / Z_h.
    cams = np.array([[2.0, 0.5, -0.25], [2.0, -0.5, 0.0]])
    if solver == "perspective":
        cams[:, 0] = [500 / 2.4 / 100, 500 / 2.6 / 100]
    orient = np.array([[0, 0, math.pi / 2], [0, 0, 0]])
    placed = place_hands(fake_result(np.stack([PLANAR, PLANAR]), cams, [0.0, 0.0, 0.2], orient), BOX, INTR,
                         "pair", solver)
    wl = [30 * 2.4 / 500, -65 * 2.4 / 500, 2.4]   # (0.144, -0.312, 2.4)
    wr = [-70 * 2.6 / 500, -40 * 2.6 / 500, 2.6]  # (-0.364, -0.208, 2.6)
    np.testing.assert_allclose(placed.wrist, [wl, wr], atol=1e-9)
    np.testing.assert_allclose(placed.joints, placed.wrist[:, None] + PLANAR, atol=1e-9)
    assert placed.vertices.dtype == np.float32 and placed.joints.shape == (2, 4, 3)
    np.testing.assert_allclose(placed.right_minus_left, np.subtract(wr, wl), atol=1e-9)
    # rotation of pi/2 about z: quaternion (x, y, z, w) = (0, 0, sin 45, cos 45)
    np.testing.assert_allclose(placed.wrist_quaternion, [[0, 0, 0.5 ** 0.5, 0.5 ** 0.5], [0, 0, 0, 1]], atol=1e-9)
    np.testing.assert_allclose(placed.wrist_rotation[0], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-9)
    assert placed.depth_from == "camera_info"


def test_per_hand_placement_and_assumed_flag():
    cams = np.array([[2.0, 0.5, -0.25], [1.0, 0.0, 0.0]])  # right: Z = 500 / (1 * 100) = 5, pixel (300, 200)
    intr = Intrinsics(500.0, 500.0, 320.0, 240.0, 640, 480, assumed=True)
    for solver in ("perspective", "closed_form"):
        placed = place_hands(fake_result(np.stack([PLANAR, PLANAR]), cams, [9, 9, 9]), BOX, intr, "per_hand", solver)
        np.testing.assert_allclose(placed.wrist, [[0.15, -0.325, 2.5], [-0.2, -0.4, 5.0]], atol=1e-9)
        assert placed.depth_from == "assumed"


def test_place_hands_refuses_non_finite_and_unknown_modes():
    joints = np.stack([PLANAR, PLANAR])
    cams = np.array([[2.0, 0.5, -0.25], [2.0, -0.5, 0.0]])
    bad = fake_result(joints, cams, [0, 0, 0.2])
    bad.right.vertices = PLANAR.copy()
    bad.right.vertices[2, 1] = math.nan
    for result in (bad, fake_result(joints, cams, [0, math.nan, 0]),
                   fake_result(joints, np.array([[2.0, 0, 0], [0.0, 0, 0]]), [0, 0, 0])):
        with pytest.raises(InputError) as info:
            place_hands(result, BOX, INTR)
        assert info.value.kind == "non_finite"
    with pytest.raises(InputError):  # offset pushes the left hand behind the camera
        place_hands(fake_result(joints, cams, [0, 0, 6.0]), BOX, INTR, "pair", "closed_form")
    with pytest.raises(ValueError, match="pair, per_hand"):
        place_hands(fake_result(joints, cams, [0, 0, 0]), BOX, INTR, "both")


# ----------------------------------------------------------------------------- ground truth

@pytest.fixture(scope="module")
def synthetic_samples():
    models = load_models()
    return [generate_sample(i, "test", SyntheticConfig(img_size=64), models=models) for i in range(6)]


def ideal_result(sample: dict, crop_size: int = 64):
    """The result a perfect network would return: GT wrist-relative joints and the camera
    that the training loss targets (least squares of the GT 2D joints, normalised)."""
    j3 = sample["joints3d"].astype(np.float64)
    uv = sample["joints2d"].astype(np.float64) * (2.0 / crop_size) - 1.0
    rel = j3 - j3[:, :1]
    cams = []
    for h in range(2):
        a = np.zeros((42, 3))
        a[0::2, 0], a[0::2, 1] = rel[h, :, 0], 1.0
        a[1::2, 0], a[1::2, 2] = rel[h, :, 1], 1.0
        cams.append(np.linalg.lstsq(a, uv[h].reshape(-1), rcond=None)[0])
    return fake_result(rel, np.array(cams), j3[1, 0] - j3[0, 0], sample["pose"][:, :3], crop_size)


@pytest.mark.parametrize("placement", ["pair", "per_hand"])
def test_recovers_ground_truth_wrists(synthetic_samples, placement):
    """Perspective solve: within 3% of depth (measured max ~1.5% per hand, ~0.7% pair; the rest is
    the weak-perspective camera's approximation of the true perspective 2D joints).
    Closed form: it puts the whole hand at the wrist's depth while the joints spread 0.1-0.2 m in
    depth, so it is only within 25% (measured max ~23% per hand, ~16% pair)."""
    S = 64
    for sample in synthetic_samples:
        gt = sample["joints3d"].astype(np.float64)
        K = sample["K"].astype(np.float64)
        result = ideal_result(sample, S)
        intr = intrinsics_from_camera_info(K.reshape(-1), S, S)
        box = np.array([S / 2, S / 2, S])
        for solver, tol in (("perspective", 0.03), ("closed_form", 0.25)):
            placed = place_hands(result, box, intr, placement, solver)
            rel_err = np.linalg.norm(placed.wrist - gt[:, 0], axis=1) / gt[:, 0, 2]
            assert rel_err.max() < tol, (solver, rel_err)
        placed = place_hands(result, box, intr, placement)
        np.testing.assert_allclose(placed.joints, gt, atol=0.03 * gt[:, :1, 2:].max())
        # the crop size is not part of the maths: the same box and cameras give the same answer
        result.crop_size = 256
        np.testing.assert_allclose(place_hands(result, box, intr, placement).wrist, placed.wrist)


def test_ground_truth_through_a_larger_image_box(synthetic_samples):
    """The crop came out of a bigger image: box (100, 80, 128) resized to 64. Image intrinsics
    K_img with crop_intrinsics(K_img, box) == K_crop must give the same placement."""
    S, box = 64, np.array([100.0, 80.0, 128.0])
    m = np.eye(3)
    m[:2] = box_to_affine(box, S)
    for sample in synthetic_samples[:3]:
        K_img = np.linalg.solve(m, sample["K"].astype(np.float64))
        result = ideal_result(sample, S)
        in_crop = place_hands(result, np.array([S / 2, S / 2, S]),
                              intrinsics_from_camera_info(sample["K"].reshape(-1), S, S))
        in_image = place_hands(result, box, intrinsics_from_camera_info(K_img.reshape(-1), 400, 300))
        np.testing.assert_allclose(in_image.wrist, in_crop.wrist, rtol=1e-9, atol=1e-12)
        gt_wrist = sample["joints3d"][:, 0].astype(np.float64)
        assert (np.linalg.norm(in_image.wrist - gt_wrist, axis=1) / gt_wrist[:, 2]).max() < 0.03
