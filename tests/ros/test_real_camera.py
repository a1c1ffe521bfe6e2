"""hands_node with its shipped defaults (MediaPipe detection + keypoint fit) on real photographs,
over real rclpy/DDS: a real two-hand photo gives two valid hands whose joints project onto the
photo's hands; a blank frame gives none (no hand is invented, no TF is sent); a mirrored camera
swaps nothing but the geometry it must. The photos live in ../shared/real_hands (never in the
repository); the photo cases skip without them or without MediaPipe.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ros_guard import require_ros

require_ros()

import cv2  # noqa: E402

from interhand_perception.paths import REPO_ROOT  # noqa: E402
from test_hands_node import FRAME, Rig, ros_context  # noqa: E402,F401  (shared rig and context fixture)

PHOTOS = REPO_ROOT.parent / "shared" / "real_hands"
PHOTO = "intaghand_demo1_crossed_fingers.jpg"
BOXES = json.loads((Path(__file__).resolve().parents[1] / "data" / "real_hands_boxes.json").read_text())["photos"]


@pytest.fixture(scope="module")
def rig(ros_context):  # noqa: F811
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (scripts/setup.sh installs it)")
    r = Rig("", "real", method="keypoint_fit", crop_mode="detect", min_confidence=0.3)
    yield r
    r.close()


def _send(rig, rgb, k=None):
    h, w = rgb.shape[:2]
    f = 0.5 * w / np.tan(np.deg2rad(30.0))
    k = k or [f, 0.0, w / 2.0, 0.0, f, h / 2.0, 0.0, 0.0, 1.0]
    rig.send_info(k=k, width=w, height=h)
    return rig.send_until_answered(lambda: rig.send_image(img=np.ascontiguousarray(rgb))), k


def test_default_method_finds_both_hands_in_a_real_photo(rig):
    if not (PHOTOS / PHOTO).is_file():
        pytest.skip(f"{PHOTOS / PHOTO} not present")
    rgb = cv2.cvtColor(cv2.imread(str(PHOTOS / PHOTO)), cv2.COLOR_BGR2RGB)
    msg, k = _send(rig, rgb)
    assert msg.header.frame_id == FRAME and msg.model_id.startswith("mediapipe-0.10.14")
    assert msg.left.valid and msg.right.valid
    K = np.array(k).reshape(3, 3)
    for hand, ann in ((msg.left, "left"), (msg.right, "right")):
        j = np.array([[p.x, p.y, p.z] for p in hand.joints])
        uv = (j @ K.T)[:, :2] / (j @ K.T)[:, 2:]
        x0, y0, x1, y1 = next(h["box"] for h in BOXES[PHOTO]["hands"] if h["side"] == ann)
        m = 0.25 * max(x1 - x0, y1 - y0)
        inside = (uv[:, 0] > x0 - m) & (uv[:, 0] < x1 + m) & (uv[:, 1] > y0 - m) & (uv[:, 1] < y1 + m)
        assert inside.mean() >= 0.9, f"the {ann} hand is not on the photo's {ann} hand"
    d = rig.wait_diag(lambda d: d.get("hands_detected") == "2", "diagnostics reporting two detected hands")
    assert d["method"] == "keypoint_fit"


def test_blank_frame_publishes_no_hand_and_no_tf(rig):
    n_tf = len(rig.tf)
    msg, _ = _send(rig, np.full((240, 320, 3), 120, np.uint8))
    assert not msg.left.valid and not msg.right.valid
    assert len(msg.left.joints) == 21 and len(msg.left.pose) == 48  # fixed lengths, zeros
    with rig.lock:
        new = [t for m in rig.tf[n_tf:] for t in m.transforms if t.header.stamp == msg.header.stamp]
    assert new == []


def test_mirrored_camera_gives_the_true_frame_and_sides(ros_context):  # noqa: F811
    """A selfie camera's mirrored image, with mirrored: true, gives the hands of the unmirrored
    photo: the same sides, projecting onto the original photo's hands."""
    pytest.importorskip("mediapipe")
    if not (PHOTOS / PHOTO).is_file():
        pytest.skip(f"{PHOTOS / PHOTO} not present")
    rig = Rig("", "mirror", method="keypoint_fit", crop_mode="detect", min_confidence=0.3, mirrored=True)
    try:
        rgb = cv2.cvtColor(cv2.imread(str(PHOTOS / PHOTO)), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        f = 0.5 * w / np.tan(np.deg2rad(30.0))
        k_mirrored = [f, 0.0, (w - 1) / 2.0, 0.0, f, h / 2.0, 0.0, 0.0, 1.0]  # symmetric: the same after un-mirroring
        msg, _ = _send(rig, rgb[:, ::-1], k=k_mirrored)
        assert msg.left.valid and msg.right.valid
        K = np.array(k_mirrored).reshape(3, 3)
        for hand, side in ((msg.left, "left"), (msg.right, "right")):
            j = np.array([[p.x, p.y, p.z] for p in hand.joints])
            u = ((j @ K.T)[:, 0] / (j @ K.T)[:, 2]).mean()
            x0, _, x1, _ = next(hd["box"] for hd in BOXES[PHOTO]["hands"] if hd["side"] == side)
            assert x0 - 20 < u < x1 + 20, f"{side}: u = {u:.0f} not in the unmirrored photo's {side} hand"
    finally:
        rig.close()
