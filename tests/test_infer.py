"""``interhand infer``: images, folders and videos in; overlays and outputs out.

Inputs are synthetic frames written by the test (an image and a 4-frame MP4 made with OpenCV),
and, when ../shared/real_hands is present, one real photo through the default keypoint-fit
method. The command runs as a user runs it (the ``interhand`` executable).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from interhand_perception.data.synthetic import SyntheticConfig, generate_sample
from interhand_perception.paths import REPO_ROOT
from interhand_perception.tools.infer import intrinsics_for, list_inputs

EXE = os.path.join(os.path.dirname(sys.executable), "interhand")
PHOTOS = REPO_ROOT.parent / "shared" / "real_hands"


@pytest.fixture(scope="module")
def frames():
    return [generate_sample(i, "test", SyntheticConfig(img_size=128)) for i in range(4)]


def run(*args, timeout=600):
    proc = subprocess.run([EXE, "infer", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_list_inputs_and_intrinsics(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.txt").write_bytes(b"")
    kind, files = list_inputs(tmp_path)
    assert kind == "images" and [f.name for f in files] == ["a.png"]
    assert list_inputs(tmp_path / "a.png")[0] == "images"
    with pytest.raises(FileNotFoundError):
        list_inputs(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="not an image"):
        list_inputs(tmp_path / "b.txt")
    i = intrinsics_for(640, 480, fx=500.0)
    assert (i.fx, i.fy, i.cx, i.cy, i.assumed) == (500.0, 500.0, 320.0, 240.0, False)
    assert intrinsics_for(640, 480, hfov_deg=90.0).fx == pytest.approx(320.0)


def test_image_with_dir_writes_overlay_and_json(tmp_path, frames):
    s = frames[0]
    img = tmp_path / "frame.png"
    cv2.imwrite(str(img), cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR))
    K = s["K"]
    run(img, "--method", "dir", "--crop-mode", "center", "--device", "cpu", "--fx", K[0, 0], "--fy", K[1, 1],
        "--cx", K[0, 2], "--cy", K[1, 2], "--out", tmp_path / "out")
    over = cv2.imread(str(tmp_path / "out" / "frame_hands.png"))
    assert over is not None and over.shape[0] == 360
    rec = json.loads((tmp_path / "out" / "hands.json").read_text())["frames"]
    assert len(rec) == 1 and rec[0]["source"] == "frame.png"
    left = rec[0]["left"]
    assert left["valid"] and len(left["joints"]) == 21 and len(left["pose"]) == 48
    # the demo weights place the wrist within a plausible distance of the true one (camera frame)
    err = np.linalg.norm(np.array(left["joints"][0]) - s["joints3d"][0, 0])
    assert err < 0.5


def test_video_with_dir_writes_mp4_and_npz(tmp_path, frames):
    video = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 128))
    assert w.isOpened()
    for s in frames:
        w.write(cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR))
    w.release()
    run(video, "--method", "dir", "--crop-mode", "center", "--device", "cpu", "--format", "npz", "--out", tmp_path / "o")
    cap = cv2.VideoCapture(str(tmp_path / "o" / "clip_hands.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    npz = np.load(tmp_path / "o" / "hands.npz")
    records = json.loads(str(npz["records"]))
    assert len(records) == 4 and records[2]["source"] == "clip.mp4#2" and records[2]["time_s"] == pytest.approx(0.2)
    assert npz["vertices"].shape[:2] == (4, 2) and np.isfinite(npz["vertices"]).all()


def test_missing_input_is_a_clear_error(tmp_path):
    proc = subprocess.run([EXE, "infer", str(tmp_path / "nope.jpg")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_real_photo_with_the_default_keypoint_fit(tmp_path):
    photo = PHOTOS / "intaghand_demo1_crossed_fingers.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not present (real photos are never copied into the repository)")
    pytest.importorskip("mediapipe")
    run(photo, "--out", tmp_path)
    rec = json.loads((tmp_path / "hands.json").read_text())["frames"][0]
    assert rec["hands_detected"] == 2 and rec["left"]["valid"] and rec["right"]["valid"]
    assert rec["right_minus_left"] is not None
