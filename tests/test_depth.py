"""Depth fusion: decoding, stamp matching, robust hand distance on rendered depth, moving along rays."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from interhand_perception.data.render import concat_meshes, rasterize
from interhand_perception.data.synthetic import SyntheticConfig, generate_sample, load_models
from interhand_perception.pipeline.depth import (
    DepthBuffer, apply_depth, depth_shifts, depth_to_metres, hand_distance, predicted_surface,
    robust_mean, scale_pixels, window_surface, window_samples)
from interhand_perception.pipeline.decode import InputError
from interhand_perception.pipeline.placement import Intrinsics, PlacedHands, project_points

H, W = 4, 6
METRES = np.random.default_rng(5).uniform(0.3, 2.0, size=(H, W)).astype(np.float32)
MM = np.round(METRES * 1000).astype(np.uint16)


def padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """(H, row_bytes) uint8 rows + ``pad`` junk bytes each -> (data, step)."""
    rows = rows.reshape(rows.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xCD, np.uint8)
    return np.concatenate([rows, junk], axis=1).tobytes(), rows.shape[1] + pad


def as_bytes(values: np.ndarray, dtype: str) -> np.ndarray:
    """(H, W) values -> (H, W * itemsize) uint8 rows in ``dtype``'s byte order."""
    return np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(values.shape[0], -1)


# ----------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("bigendian", [False, True])
def test_16uc1_millimetres_padding_and_byte_order(pad, bigendian):
    mm = MM.copy()
    mm[1, 2] = 0  # no measurement
    data, step = padded(as_bytes(mm, ">u2" if bigendian else "<u2"), pad)
    out = depth_to_metres(data, W, H, "16UC1", step, bigendian)
    assert out.dtype == np.float32 and out.shape == (H, W)
    expected = mm.astype(np.float32) / 1000
    expected[1, 2] = np.nan
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("bigendian", [False, True])
def test_32fc1_metres_with_invalid_values(pad, bigendian):
    m = METRES.copy()
    m[0, 0], m[0, 1], m[0, 2], m[0, 3], m[0, 4] = np.nan, np.inf, -np.inf, 0.0, -1.0
    data, step = padded(as_bytes(m, ">f4" if bigendian else "<f4"), pad)
    out = depth_to_metres(bytearray(data), W, H, "32fc1", step, bigendian)
    assert np.isnan(out[0, :5]).all()
    np.testing.assert_array_equal(out[0, 5:], METRES[0, 5:])
    np.testing.assert_array_equal(out[1:], METRES[1:])


def test_result_does_not_alias_the_message():
    buf = bytearray(as_bytes(MM, "<u2").tobytes())
    out = depth_to_metres(buf, W, H, "16UC1", 2 * W)
    buf[:] = bytes(len(buf))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("args, kind", [
    ((b"", 0, H, "16UC1", 0), "empty"),
    ((b"\x00" * 8, 100000, 1, "16UC1", 200000), "too_large"),   # refused before any allocation
    ((b"\x00" * (2 * W * H), W, H, "mono16", 2 * W), "encoding"),
    ((b"\x00" * (2 * W * H), W, H, "rgb8", 2 * W), "encoding"),
    ((b"\x00" * (2 * W * H), W, H, "16UC1", 2 * W - 1), "size_mismatch"),
    ((b"\x00" * (2 * W * H - 2), W, H, "16UC1", 2 * W), "size_mismatch"),
    ((b"\x00" * (2 * W * H), W, H, "32FC1", 2 * W), "size_mismatch"),
])
def test_bad_depth_messages_are_refused(args, kind):
    with pytest.raises(InputError) as info:
        depth_to_metres(*args)
    assert info.value.kind == kind
    assert str(info.value)


# ----------------------------------------------------------------------------- stamp matching

def test_depth_buffer_matches_the_nearest_stamp_within_the_age_limit():
    buf = DepthBuffer(max_age_s=0.05, size=3)
    assert buf.match(1.0) is None
    for stamp in (1.00, 1.033, 1.066):
        buf.add(stamp, f"d{stamp}")
    assert buf.match(1.03) == "d1.033"
    assert buf.match(1.05) == "d1.066"          # nearest, 16 ms after
    assert buf.match(1.10) == "d1.066"          # 34 ms: within 50 ms
    assert buf.match(1.20) is None              # 134 ms: too old
    assert buf.match(0.96) == "d1.0"            # depth may also be newer than colour
    buf.add(1.1, "d1.1")                        # size 3: 1.0 is dropped
    assert len(buf) == 3 and buf.match(0.99) == "d1.033"
    buf.clear()
    assert buf.match(1.1) is None
    with pytest.raises(ValueError):
        buf.add(float("nan"), "x")


def test_depth_buffer_is_thread_safe():
    buf = DepthBuffer(max_age_s=1.0, size=10)
    threads = [threading.Thread(target=lambda k=k: [buf.add(k + i * 1e-3, k) for i in range(200)])
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(buf) == 10 and buf.match(3.1) is not None


# ----------------------------------------------------------------------------- small parts

def test_window_samples_edges_mask_and_invalid():
    depth = np.arange(1, 26, dtype=np.float32).reshape(5, 5)
    depth[2, 2] = np.nan
    s = window_samples(depth, np.array([[2.5, 2.5], [0.2, 0.9], [np.nan, 1.0], [99.0, 99.0]]), 3)
    assert s.shape == (4, 9)
    assert np.isnan(s[0, 4]) and np.nanmedian(s[0]) == 13.0     # centre hole skipped
    assert np.isfinite(s[1]).sum() == 4                          # corner: 2 x 2 inside
    assert np.isnan(s[2]).all() and np.isnan(s[3]).all()
    mask = np.zeros((5, 5), bool)
    mask[:, :2] = True
    masked = window_samples(depth, np.array([[2.5, 2.5]]), 3, mask)
    assert np.isfinite(masked).sum() == 3
    rows = np.array([[1.0, 1.01, 1.02, np.nan], [1.0, 1.0, np.nan, np.nan], [0.5, 0.51, 0.52, 2.0]])
    np.testing.assert_allclose(window_surface(rows, min_samples=3), [1.01, np.nan, 0.51])


def test_robust_mean_rejects_outliers_and_keeps_equal_values():
    mean, inlier = robust_mean(np.array([0.010, 0.011, 0.009, 0.010, 0.012, 0.30, -0.2]), 3.0, 0.0)
    assert mean == pytest.approx(0.0104) and inlier.tolist() == [True] * 5 + [False] * 2
    assert robust_mean(np.full(4, 0.02), 3.0, 0.005) == (pytest.approx(0.02), pytest.approx([True] * 4))


def test_scale_pixels_between_resolutions():
    np.testing.assert_allclose(scale_pixels(np.array([[640.0, 480.0], [0.5, 0.5]]), (640, 480), (320, 240)),
                               [[320.0, 240.0], [0.25, 0.25]])


def test_predicted_surface_nearest_vertex_and_occlusion_by_the_other_hand():
    joints2d = np.array([[10.0, 10.0], [50.0, 50.0], [90.0, 90.0]])
    verts2d = np.array([[10.0, 11.0], [10.0, 10.0], [50.0, 52.0], [200.0, 200.0]])
    verts_z = np.array([0.50, 0.52, 0.60, 0.10])
    other2d, other_z = np.array([[51.0, 50.0]]), np.array([0.40])
    np.testing.assert_allclose(predicted_surface(joints2d, verts2d, verts_z, 3.0), [0.50, 0.60, np.nan])
    np.testing.assert_allclose(predicted_surface(joints2d, verts2d, verts_z, 3.0, other2d, other_z),
                               [0.50, np.nan, np.nan])


# ----------------------------------------------------------------------------- hand_distance on a toy hand

INTR = Intrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)


def toy_hand(z: float = 0.6) -> np.ndarray:
    """(21, 3) joints spread over 12 x 12 cm at depths z +- 3 cm, in view."""
    rng = np.random.default_rng(2)
    return np.column_stack([rng.uniform(-0.06, 0.06, 21), rng.uniform(-0.06, 0.06, 21),
                            z + rng.uniform(-0.03, 0.03, 21)])


def toy_depth(joints: np.ndarray, c: float = 0.010, background: float = np.nan) -> np.ndarray:
    """(480, 640) depth with a 7 x 7 patch of surface depth ``z - c`` at each joint."""
    depth = np.full((480, 640), background, np.float32)
    for (u, v), z in zip(project_points(joints, INTR), joints[:, 2]):
        depth[int(v) - 3:int(v) + 4, int(u) - 3:int(u) + 4] = z - c
    return depth


def test_toy_hand_placed_ten_percent_too_far_is_corrected():
    truth = toy_hand()
    estimate = truth * 1.1                      # same image, 10% too far
    px = project_points(estimate, INTR)
    shift = hand_distance(toy_depth(truth), px, estimate)
    assert shift == pytest.approx(truth[0, 2] - estimate[0, 2], abs=1e-5)
    assert hand_distance(toy_depth(truth), project_points(truth, INTR), truth) == pytest.approx(0.0, abs=1e-5)


def test_surface_to_joint_correction_is_applied():
    truth = toy_hand()
    px = project_points(truth, INTR)
    depth = toy_depth(truth, c=0.008)
    assert hand_distance(depth, px, truth, surface_to_joint_m=0.008) == pytest.approx(0.0, abs=1e-5)
    # without the correction the hand would be pulled ~8 mm towards the sensor
    assert hand_distance(depth, px, truth, surface_to_joint_m=0.0) == pytest.approx(-0.008, abs=5e-4)


def test_holes_give_none_so_the_caller_falls_back():
    truth = toy_hand()
    px = project_points(truth, INTR)
    assert hand_distance(np.full((480, 640), np.nan, np.float32), px, truth) is None
    assert hand_distance(np.zeros((480, 640), np.float32), px, truth) is None   # zeros = no data
    depth = toy_depth(truth[:4])                 # only 4 joints measured: fewer than min_valid = 5
    assert hand_distance(depth, px, truth) is None
    assert hand_distance(depth, px, truth, min_valid=4) == pytest.approx(0.0, abs=1e-5)
    outside = px + 2000.0                        # all joints outside the image
    assert hand_distance(toy_depth(truth), outside, truth) is None


def test_background_behind_fingers_is_rejected():
    truth = toy_hand()
    px = project_points(truth, INTR)
    depth = toy_depth(truth)
    for u, v in px[:5].astype(int):             # 5 windows see the wall 20% behind instead
        depth[v - 3:v + 4, u - 3:u + 4] = truth[0, 2] * 1.2
    assert hand_distance(depth, px, truth) == pytest.approx(0.0, abs=1e-5)
    far = toy_depth(truth, background=3.0)       # a far wall around every patch
    assert hand_distance(far, px, truth, window=15) == pytest.approx(0.0, abs=1e-5)


def test_mask_restricts_samples_and_is_the_fallback():
    truth = toy_hand()
    px = project_points(truth, INTR)
    depth = np.full((480, 640), truth[0, 2] * 0.85, np.float32)   # an occluder in front...
    mask = np.zeros((480, 640), bool)
    for (u, v), z in zip(px.astype(int), truth[:, 2]):            # ...except where the hand is seen
        depth[v - 1:v + 2, u - 1:u + 2], mask[v - 1:v + 2, u - 1:u + 2] = z - 0.01, True
    assert abs(hand_distance(depth, px, truth)) > 0.02               # the near surface is the occluder
    assert hand_distance(depth, px, truth, mask=mask) == pytest.approx(0.0, abs=1e-5)
    flat = np.full((480, 640), truth[:, 2].mean() + 0.04, np.float32)
    blob = np.zeros((480, 640), bool)
    blob[:100, :100] = True                                          # no joint inside the mask
    shift = hand_distance(flat, px + 1000.0, truth, mask=blob)
    k = (flat[0, 0] + 0.01) / np.median(truth[:, 2])                 # coarse: medians of mask and joints
    assert shift == pytest.approx((k - 1) * truth[0, 2], abs=1e-5)


# ----------------------------------------------------------------------------- rendered hands

def placed_from(joints: np.ndarray, verts: np.ndarray) -> PlacedHands:
    """PlacedHands of (2, 21, 3) joints and (2, V, 3) vertices, identity orientations."""
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (2, 1))
    return PlacedHands(joints=joints.copy(), vertices=verts.astype(np.float32), wrist=joints[:, 0].copy(),
                       wrist_rotation=np.tile(np.eye(3), (2, 1, 1)), wrist_quaternion=quat,
                       right_minus_left=joints[1, 0] - joints[0, 0], depth_from="camera_info")


@pytest.fixture(scope="module")
def rendered():
    """Eight synthetic two-hand scenes rendered to 640 x 480 depth in front of a wall at 1.5 m.

    Returns:
        list of (joints (2, 21, 3), verts (2, V, 3), depth (480, 640) float32, masks (2, 480, 640)).
    """
    models = load_models()
    faces = [m.faces for m in models]
    out = []
    for i in range(8):
        s = generate_sample(i, "test", SyntheticConfig(img_size=64), models=models)
        centre = np.r_[s["joints3d"][:, 0, :2].astype(np.float64).mean(axis=0), 0.0]
        joints, verts = s["joints3d"] - centre, s["verts3d"] - centre
        mesh_v, mesh_f, label = concat_meshes([(verts[0], faces[0]), (verts[1], faces[1])])
        r = rasterize(mesh_v, mesh_f, INTR.matrix(), (480, 640))
        depth = np.where(r.mask, r.depth, 1.5).astype(np.float32)
        hand = np.where(r.mask, label[np.maximum(r.face_id, 0)], -1)
        out.append((joints, verts, depth, np.stack([hand == 0, hand == 1])))
    return out


def wrist_depth_errors(rendered, masks: bool, use_mesh: bool = True) -> np.ndarray:
    """|corrected - true| wrist depth (metres) of every hand placed 10% too far; NaN = no answer."""
    errors = []
    for joints, verts, depth, hand_masks in rendered:
        placed = placed_from(joints * 1.1, verts * 1.1)
        shifts = depth_shifts(placed, INTR, depth, masks=hand_masks if masks else (None, None),
                              use_mesh=use_mesh)
        fixed = apply_depth(placed, shifts)
        errors += [abs(fixed.wrist[i, 2] - joints[i, 0, 2]) if s is not None else np.nan
                   for i, s in enumerate(shifts)]
    return np.array(errors)


def test_rendered_hands_ten_percent_too_far_are_corrected_to_a_few_mm(rendered):
    """Mesh mode (predicted surface from the vertices, predicted occlusion by the other hand):
    measured median ~2 mm, max ~5 mm of 60-110 mm errors; with masks the same or better."""
    for masks in (False, True):
        err = wrist_depth_errors(rendered, masks=masks)
        assert np.isfinite(err).mean() >= 0.8, err
        assert np.nanmedian(err) < 0.004 and np.nanmax(err) < 0.010, err


def test_rendered_hands_without_the_mesh_use_the_joint_correction(rendered):
    """Joints only (z - 10 mm): self-occlusion and the per-joint thickness make it coarser;
    measured median ~4 mm; masks remove the other hand's occlusion."""
    err = wrist_depth_errors(rendered, masks=True, use_mesh=False)
    assert np.nanmedian(err) < 0.008 and np.nanmax(err) < 0.05, err


def test_measured_surface_to_joint_offset_of_the_synthetic_hand(rendered):
    """The seen surface lies in front of the joints by about half a finger: median 10-14 mm."""
    medians = []
    for joints, _, depth, masks in rendered:
        for i in range(2):
            seen = window_surface(window_samples(depth, project_points(joints[i], INTR), 5, masks[i]))
            medians.append(np.nanmedian(joints[i, :, 2] - seen))
    assert 0.006 < np.median(medians) < 0.018, medians


def test_half_resolution_16uc1_depth_still_corrects(rendered):
    """Depth at 320 x 240 through a 16UC1 round trip (1 mm steps): pixels are scaled."""
    joints, verts, depth, _ = rendered[0]
    small = depth[::2, ::2]  # pixel (i, j) of the half image covers full pixels 2i..2i+1 (sampled at 2i)
    data = as_bytes(np.round(small * 1000), "<u2").tobytes()
    metres = depth_to_metres(data, 320, 240, "16UC1", 640)
    placed = placed_from(joints * 1.1, verts * 1.1)
    fixed = apply_depth(placed, depth_shifts(placed, INTR, metres))
    np.testing.assert_allclose(fixed.wrist[:, 2], joints[:, 0, 2], atol=0.008)


# ----------------------------------------------------------------------------- apply_depth

def test_apply_depth_moves_along_rays_and_keeps_the_image():
    rng = np.random.default_rng(0)
    joints = np.stack([toy_hand(0.6), toy_hand(0.7) + [0.1, 0, 0]])
    verts = joints[:, rng.integers(0, 21, 50)] + rng.normal(0, 0.005, (2, 50, 3))
    placed = placed_from(joints, verts)
    fixed = apply_depth(placed, [-0.06, None])
    k = (joints[0, 0, 2] - 0.06) / joints[0, 0, 2]
    assert fixed.wrist[0, 2] == pytest.approx(joints[0, 0, 2] - 0.06)
    np.testing.assert_allclose(fixed.joints[0], joints[0] * k)
    np.testing.assert_allclose(project_points(fixed.joints[0], INTR), project_points(joints[0], INTR))
    np.testing.assert_allclose(project_points(fixed.vertices[0], INTR), project_points(verts[0], INTR), atol=1e-3)
    np.testing.assert_array_equal(fixed.joints[1], joints[1])
    assert fixed.vertices.dtype == np.float32
    np.testing.assert_allclose(fixed.right_minus_left, fixed.wrist[1] - fixed.wrist[0])
    assert fixed.depth_from == "left:depth,right:camera_info"
    assert apply_depth(placed, [0.01, 0.0]).depth_from == "depth"
    unchanged = apply_depth(placed, [None, float("nan")])
    assert unchanged.depth_from == "camera_info"
    np.testing.assert_array_equal(unchanged.joints, joints)
    assert apply_depth(placed, [-5.0, None]).depth_from == "camera_info"   # would be behind the camera
    np.testing.assert_array_equal(placed.joints, joints)                     # input untouched
