"""Both reconstruction methods on real photographs, and the mirrored-camera rule (ROS-free).

On the real photos of ../shared/real_hands (not in the repository; the tests skip without it or
without MediaPipe), each method must return finite meshes, and every valid hand's projected
joints must fall inside the box of a hand that is really there (tests/data/real_hands_boxes.json,
approximate manual boxes, grown by 25% for their inaccuracy). DIR runs with the shipped demo
weights on MediaPipe's crop; the keypoint fit needs no weights. A blank frame gives no hand.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from interhand_perception.paths import DEMO_WEIGHTS, REPO_ROOT
from interhand_perception.dir_net.crop import crop_to_frame
from interhand_perception.pipeline.methods import unmirror
from interhand_perception.pipeline.placement import assumed_intrinsics, project_points

PHOTOS = REPO_ROOT.parent / "shared" / "real_hands"
ANNOTATIONS = json.loads((Path(__file__).parent / "data" / "real_hands_boxes.json").read_text())["photos"]


def test_unmirror_flips_image_and_principal_point():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, 0] = 255
    intr = replace(assumed_intrinsics(6, 4), cx=1.0)
    out, i2 = unmirror(rgb, intr)
    assert (out[:, 5] == 255).all() and (out[:, 0] == 0).all()
    assert i2.cx == pytest.approx(4.0) and i2.fx == intr.fx
    # a point seen in the mirrored image at u is, un-mirrored, the point with x negated at W - 1 - u
    p = np.array([[0.03, 0.01, 0.5]])
    u_mirrored = project_points(p, intr)[0, 0]
    u_true = project_points(p * np.array([-1.0, 1.0, 1.0]), i2)[0, 0]
    assert u_true == pytest.approx(5 - u_mirrored)


def test_crop_to_frame_maps_crop_pixels_back():
    box = np.array([100.0, 50.0, 40.0])
    pts = crop_to_frame(np.array([[0.0, 0.0], [128.0, 128.0], [64.0, 64.0]]), box, 128)
    assert np.allclose(pts, [[80, 30], [120, 70], [100, 50]])


def _photos_or_skip():
    if not PHOTOS.is_dir():
        pytest.skip(f"{PHOTOS} not present (real photos are never copied into the repository)")
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def methods():
    _photos_or_skip()
    from interhand_perception.detection import MediaPipeHands
    from interhand_perception.hand_model import load_hand_model
    from interhand_perception.pipeline.methods import DIRMethod, KeypointFitMethod
    from interhand_perception.network.reconstructor import HandReconstructor

    det = MediaPipeHands()
    rec = HandReconstructor.from_checkpoint(DEMO_WEIGHTS, device="cpu")
    models = {s: load_hand_model(s) for s in ("left", "right")}
    yield {"dir": DIRMethod(rec, "detect", detector=det), "keypoint_fit": KeypointFitMethod(models, det)}
    det.close()


def _inside_some_hand(points2d: np.ndarray, boxes: list, grow: float = 0.25) -> float:
    """Fraction of the points inside the union of the boxes (each grown by ``grow`` of its size)."""
    inside = np.zeros(len(points2d), bool)
    for x0, y0, x1, y1 in boxes:
        gx, gy = grow * (x1 - x0), grow * (y1 - y0)
        inside |= ((points2d[:, 0] >= x0 - gx) & (points2d[:, 0] <= x1 + gx)
                   & (points2d[:, 1] >= y0 - gy) & (points2d[:, 1] <= y1 + gy))
    return float(inside.mean())


@pytest.mark.parametrize("name", sorted(ANNOTATIONS))
@pytest.mark.parametrize("kind", ["keypoint_fit", "dir"])
def test_method_hands_are_finite_and_on_real_hands(methods, kind, name):
    rgb = cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    intr = assumed_intrinsics(w, h, 60.0)
    method = methods[kind]
    if kind == "dir":
        method.tracker.reset()  # photos are unrelated: no crop carried between them
    frame, report = method(rgb, intr, 0.0)
    valid = frame.confidence >= 0.3
    assert report["found"] >= 1, f"{name}: the detector found no hand"
    assert valid.any(), f"{name}: {kind} returned no valid hand"
    boxes = [hd["box"] for hd in ANNOTATIONS[name]["hands"]] + [hd["box"] for hd in ANNOTATIONS[name].get("other_hands", [])]
    for i in np.flatnonzero(valid):
        assert np.isfinite(frame.placed.vertices[i]).all() and np.isfinite(frame.placed.joints[i]).all()
        assert (frame.placed.joints[i][:, 2] > 0).all(), "hands in front of the camera"
        uv = project_points(frame.placed.joints[i], intr)
        assert _inside_some_hand(uv, boxes) >= 0.9, f"{name}: {kind} hand {i} is not on a real hand"


def test_blank_frame_gives_no_hand(methods):
    rgb = np.full((240, 320, 3), 128, np.uint8)
    for kind, method in methods.items():
        if kind == "dir":
            method.tracker.reset()
        frame, report = method(rgb, assumed_intrinsics(320, 240), 0.0)
        assert report["found"] == 0 and not (frame.confidence >= 0.3).any(), kind
