"""camera_info against the images it comes with: binning/ROI, resized streams, refused aspect
ratios, distortion (undistorted, rectified, ignored, unsupported), frame_id mismatches, and
warnings said once (pipeline.camera_info; ROS-free)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from interhand_perception.pipeline.camera_info import (CameraInfoFields, CameraInfoTracker, Undistorter,
                                                      fit_camera_info)
from interhand_perception.pipeline.decode import InputError

K720 = (1000.0, 0.0, 640.0, 0.0, 990.0, 360.0, 0.0, 0.0, 1.0)


def info(**kw) -> CameraInfoFields:
    return CameraInfoFields(**{"k": K720, "width": 1280, "height": 720, "frame_id": "cam", **kw})


def test_matching_size_is_used_as_is():
    fit = fit_camera_info(info(), 1280, 720, "cam")
    assert (fit.intrinsics.fx, fit.intrinsics.fy, fit.intrinsics.cx, fit.intrinsics.cy) == (1000, 990, 640, 360)
    assert fit.notes == () and fit.level == 0 and fit.distortion is None and fit.summary == "camera_info"


def test_resized_stream_scales_both_axes_by_one_factor_and_says_so():
    fit = fit_camera_info(info(), 640, 360, "cam")
    i = fit.intrinsics
    assert (i.fx, i.fy, i.cx, i.cy) == pytest.approx((500, 495, 320, 180))
    assert [k for k, _ in fit.notes] == ["camera_info_scaled"] and fit.level == 0


def test_another_aspect_ratio_is_refused():
    """640x480 frames with a 1280x720 camera_info: no single scale is right (the node used to
    scale x by 0.5 and y by 0.667 without a word)."""
    fit = fit_camera_info(info(), 640, 480, "cam")
    assert fit.intrinsics is None and fit.level == 1
    (kind, msg), = fit.notes
    assert kind == "camera_info_size" and "1280x720" in msg and "640x480" in msg


def test_binning_and_roi_follow_rep_104():
    # a 640x360 region at (100, 50) of the sensor, binned 2x2 -> 320x180 images
    fit = fit_camera_info(info(binning_x=2, binning_y=2, roi=(100, 50, 640, 360)), 320, 180, "cam")
    i = fit.intrinsics
    assert (i.fx, i.fy, i.cx, i.cy) == pytest.approx((500, 495, (640 - 100) / 2, (360 - 50) / 2))
    assert fit.notes == ()


def test_unset_size_uses_k_as_it_is():
    fit = fit_camera_info(info(width=0, height=0), 640, 480, "cam")
    assert fit.intrinsics.fx == 1000 and fit.notes == ()


def test_frame_id_mismatch_is_noted():
    fit = fit_camera_info(info(frame_id="other_optical_frame"), 1280, 720, "cam")
    assert [k for k, _ in fit.notes] == ["camera_info_frame"] and fit.level == 1
    assert fit.intrinsics is not None


@pytest.mark.parametrize("mode,expect", [("undistort", "undistorted (plumb_bob)"), ("ignore", "distortion ignored"),
                                         ("rectified", "camera_info")])
def test_distortion_modes(mode, expect):
    p = (800.0, 0.0, 600.0, 0.0, 0.0, 800.0, 350.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    fit = fit_camera_info(info(d=(-0.5, 0.1, 0.0, 0.0, 0.0), distortion_model="plumb_bob", p=p), 1280, 720, "cam",
                          distortion_mode=mode)
    assert fit.summary.endswith(expect)
    if mode == "undistort":
        assert fit.distortion is not None and fit.level == 0
    elif mode == "ignore":
        assert fit.distortion is None and [k for k, _ in fit.notes] == ["distortion_ignored"] and fit.level == 1
    else:  # the image is already rectified: intrinsics from P, nothing applied
        assert fit.distortion is None and fit.intrinsics.fx == 800 and fit.intrinsics.cx == 600


def test_unsupported_distortion_model_is_not_applied_and_noted():
    fit = fit_camera_info(info(d=(0.1, 0.2, 0.3), distortion_model="weird"), 1280, 720, "cam")
    assert fit.distortion is None and [k for k, _ in fit.notes] == ["distortion_unsupported"]


def test_bad_k_or_d_is_an_input_error():
    with pytest.raises(InputError):
        fit_camera_info(info(k=(0.0,) * 9), 1280, 720)
    with pytest.raises(InputError):
        fit_camera_info(info(d=(float("nan"), 0, 0, 0, 0), distortion_model="plumb_bob"), 1280, 720)


@pytest.mark.parametrize("model,d", [("plumb_bob", (-0.4, 0.15, 0.001, -0.002, 0.0)),
                                     ("equidistant", (0.1, -0.05, 0.01, 0.0))])
def test_undistorted_image_puts_points_where_the_pinhole_camera_would(model, d):
    """A dot drawn where the distorted camera sees a 3D point lands, after undistortion, where
    the ideal pinhole camera of the same K projects it."""
    w, h = 640, 480
    K = np.array([[420.0, 0, 320], [0, 420.0, 240], [0, 0, 1]])
    fields = CameraInfoFields(k=tuple(K.reshape(-1)), d=d, distortion_model=model, width=w, height=h)
    fit = fit_camera_info(fields, w, h)
    assert fit.distortion is not None
    point = np.array([[[0.35, -0.22, 1.0]]])  # off-centre, where distortion moves pixels most
    if model == "equidistant":
        seen, _ = cv2.fisheye.projectPoints(point, np.zeros(3), np.zeros(3), K, np.array(d))
    else:
        seen, _ = cv2.projectPoints(point, np.zeros(3), np.zeros(3), K, np.array(d))
    u, v = seen.reshape(2)
    img = np.zeros((h, w, 3), np.uint8)
    cv2.circle(img, (int(round(u)), int(round(v))), 3, (255, 255, 255), -1)
    out = Undistorter().image(img, fit)
    ys, xs = np.nonzero(out[..., 0] > 64)
    ideal = K @ point.reshape(3)
    ideal = ideal[:2] / ideal[2]
    moved = np.hypot(u - ideal[0], v - ideal[1])
    assert moved > 5, "the test point must be visibly distorted"
    assert np.hypot(xs.mean() - ideal[0], ys.mean() - ideal[1]) < 1.5


def test_depth_is_undistorted_without_inventing_values():
    w, h = 160, 120
    fields = CameraInfoFields(k=(100.0, 0, 80, 0, 100.0, 60, 0, 0, 1), d=(-0.3, 0, 0, 0, 0), distortion_model="plumb_bob",
                              width=w, height=h)
    fit = fit_camera_info(fields, w, h)
    depth = np.where(np.arange(w)[None, :] < w // 2, 0.5, 1.5).astype(np.float32).repeat(h, 0)
    out = Undistorter().depth(depth, fit)
    finite = out[np.isfinite(out)]
    assert set(np.unique(finite).tolist()) <= {0.5, 1.5}


def test_tracker_says_each_note_once_and_falls_back_when_refused():
    tr = CameraInfoTracker(assumed_hfov_deg=60.0, timeout_s=0.5, topic="/cam/camera_info")
    intr, notes = tr.for_image(640, 480, "cam", now=0.0)
    assert intr.assumed and notes == []
    intr, notes = tr.for_image(640, 480, "cam", now=0.6)
    assert [k for k, _ in notes] == ["no_camera_info"] and "/cam/camera_info" in notes[0][1]
    assert tr.for_image(640, 480, "cam", now=0.7)[1] == []
    tr.update(info())
    said = [tr.for_image(640, 480, "cam", now=1.0 + i)[1] for i in range(3)]
    assert [k for k, _ in said[0]] == ["camera_info_size"] and said[1] == said[2] == []
    assert tr.for_image(640, 480, "cam", now=5.0)[0].assumed
    summary, level, problems = tr.summary()
    assert summary.startswith("refused") and level == 1 and "640x480" in problems[0]
    tr.update(info(width=640, height=480, k=(500.0, 0, 320, 0, 500.0, 240, 0, 0, 1)))
    intr, notes = tr.for_image(640, 480, "cam", now=6.0)
    assert not intr.assumed and intr.fx == 500 and notes == []
    assert tr.summary() == ("camera_info", 0, [])
    with pytest.raises(InputError):
        tr.update(info(k=(float("nan"),) * 9))
    assert tr.info.k[0] == 500.0  # the previous one is kept
