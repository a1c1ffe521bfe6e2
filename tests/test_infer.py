"""``interhand infer``: images, folders and videos in; overlays and per-input records out.

Inputs are synthetic frames written by the test (an image and a 4-frame MP4 made with OpenCV),
and, when ../shared/real_hands is present, real photos through the default keypoint-fit method
and DIR. The command runs as a user runs it (the ``interhand`` executable), and the tests read
what a user reads: the files next to each other, the terminal's lines, the exit status.
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
from interhand_perception.tools.infer import (OutputExists, check_out_dir, intrinsics_for, list_inputs, missed_line,
                                              prepare_out_dir)
from interhand_perception.visualization.overlay import SIDE_COLOURS

EXE = os.path.join(os.path.dirname(sys.executable), "interhand")
PHOTOS = REPO_ROOT.parent / "shared" / "real_hands"
#: What MediaPipe, TFLite, absl and protobuf print when nobody stops them.
NOISE = ("W0000", "I0000", "INFO: Created TensorFlow", "absl::InitializeLog", "GetPrototype", "inference_feedback")


@pytest.fixture(scope="module")
def frames():
    return [generate_sample(i, "test", SyntheticConfig(img_size=128)) for i in range(4)]


def run(*args, timeout=600, rc=0):
    proc = subprocess.run([EXE, "infer", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == rc, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def write_frame(tmp_path, s, name="frame.png"):
    img = tmp_path / name
    cv2.imwrite(str(img), cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR))
    return img


def has_colour(img_bgr: np.ndarray, rgb) -> bool:
    """Whether any pixel of a BGR image is exactly the RGB colour."""
    return bool((img_bgr == np.array(rgb[::-1], np.uint8)).all(axis=-1).any())


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


def test_missed_lines_say_what_is_known():
    assert missed_line("a.jpg", None, []) is None          # no detector ran
    assert missed_line("a.jpg", 2, []) is None
    assert missed_line("a.jpg", 0, []) == "a.jpg: detector found no hand (nothing reconstructed)"
    line = missed_line("a.jpg", 1, [{"side": "right", "score": 0.9, "box": [0, 0, 1, 1]}])
    assert line == "a.jpg: detector found 1 of 2 hands (right seen, left missing)"


@pytest.mark.parametrize("shape", [(480, 640), (640, 200)])
def test_the_overlay_is_as_high_as_asked_legend_included(shape):
    from interhand_perception.tools.infer import RunInfo, legend_rows
    from interhand_perception.visualization.camera_overlay import panel

    faces = {s: np.array([[0, 1, 2]]) for s in ("left", "right")}
    rows = legend_rows(RunInfo("dir", "m", "cpu", trained_on="synthetic"), found=1, camera_assumed=True)
    img = panel(np.zeros((*shape, 3), np.uint8), np.zeros((2, 3, 3)), np.zeros((2, 21, 3)), [False, False], faces,
                np.eye(3), height=300, caption="x", legend=rows)
    assert img.shape[0] == 300
    bgr = img[..., ::-1]   # no hand is drawn: the side colours are the legend's swatches
    assert has_colour(bgr, SIDE_COLOURS["left"]) and has_colour(bgr, SIDE_COLOURS["right"])


def test_out_dir_keeps_a_previous_run_unless_forced(tmp_path):
    assert check_out_dir(tmp_path / "new", force=False) == []
    (tmp_path / "x_hands.png").write_bytes(b"")
    (tmp_path / "mine.txt").write_text("not ours")
    with pytest.raises(OutputExists, match="--force"):
        check_out_dir(tmp_path, force=False)
    assert [p.name for p in check_out_dir(tmp_path, force=True)] == ["x_hands.png"]
    assert [p.name for p in prepare_out_dir(tmp_path)] == ["x_hands.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]     # only our files go


def test_image_with_dir_writes_overlay_and_record_side_by_side(tmp_path, frames):
    s = frames[0]
    img = write_frame(tmp_path, s)
    K = s["K"]
    out = tmp_path / "out"
    proc = run(img, "--method", "dir", "--crop-mode", "center", "--device", "cpu", "--fx", K[0, 0], "--fy", K[1, 1],
               "--cx", K[0, 2], "--cy", K[1, 2], "--out", out, "--overlay-height", 300)
    over = cv2.imread(str(out / "frame_hands.png"))
    assert over is not None and over.shape[0] == 300
    assert has_colour(over[-60:], SIDE_COLOURS["left"]) and has_colour(over[-60:], SIDE_COLOURS["right"])  # legend
    rec = json.loads((out / "frame_hands.json").read_text())
    assert rec["source"] == "frame.png" and rec["method"] == "dir" and rec["model"].startswith("demo_r18_128-")
    assert rec["trained_on"] == "synthetic"
    cam = rec["camera"]
    assert cam["assumed"] is False and (cam["width"], cam["height"]) == (128, 128)
    assert cam["fx"] == pytest.approx(K[0, 0], abs=1e-3) and cam["cx"] == pytest.approx(K[0, 2], abs=1e-3)
    assert rec["hands_detected"] is None and len(rec["crop_box"]) == 3      # center crop: no detector
    assert 0.0 <= rec["stacking"]["factor"] <= 1.0
    left, right = rec["hands"]
    assert (left["side"], right["side"]) == ("left", "right")
    assert left["valid"] and len(left["joints_3d"]) == 21 and len(left["pose"]) == 48 and len(left["betas"]) == 10
    assert len(left["wrist"]) == 3 and len(left["wrist_quaternion_xyzw"]) == 4
    # joints_2d are the 3D joints projected with the camera written next to them
    j3, j2 = np.array(left["joints_3d"]), np.array(left["joints_2d"])
    proj = j3[:, :2] / j3[:, 2:] * [cam["fx"], cam["fy"]] + [cam["cx"], cam["cy"]]
    np.testing.assert_allclose(j2, proj, atol=0.02)
    # the demo weights place the wrist within a plausible distance of the true one (camera frame)
    assert np.linalg.norm(j3[0] - s["joints3d"][0, 0]) < 0.5
    # the terminal: the synthetic-weights warning once, no native noise, the output folder
    assert proc.stderr.count("trained on synthetic renders only") == 1 and "not meant for real images" in proc.stderr
    assert not any(n in proc.stderr + proc.stdout for n in NOISE)
    assert f"outputs in {out.resolve()}/" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"][0]["record"] == "frame_hands.json" and summary["trained_on"] == "synthetic"


def test_a_previous_run_is_not_overwritten_without_force(tmp_path, frames):
    img = write_frame(tmp_path, frames[1])
    args = (img, "--method", "dir", "--crop-mode", "center", "--device", "cpu", "--out", tmp_path / "o")
    run(*args)
    proc = run(*args, rc=2)
    assert "already holds the outputs of a previous run" in proc.stderr and "--force" in proc.stderr
    run(*args, "--force")
    assert (tmp_path / "o" / "frame_hands.json").is_file()


def test_keypoint_fit_says_which_images_lack_hands(tmp_path, frames):
    """A 128-pixel render, where the detector finds fewer than two hands: a line says so, the
    record too, and the camera is the assumed one."""
    pytest.importorskip("mediapipe")
    img = write_frame(tmp_path, frames[2], "tiny.png")
    proc = run(img, "--out", tmp_path / "o", "--hfov", 50)
    rec = json.loads((tmp_path / "o" / "tiny_hands.json").read_text())
    assert rec["camera"]["assumed"] is True and rec["camera"]["assumed_hfov_deg"] == 50.0
    assert rec["method"] == "keypoint_fit" and rec["trained_on"] is None
    found = rec["hands_detected"]
    assert isinstance(found, int) and sum(h["valid"] for h in rec["hands"]) <= found
    assert ("tiny.png: detector found " in proc.stdout) == (found < 2)
    assert "trained on synthetic" not in proc.stderr
    assert not any(n in proc.stderr + proc.stdout for n in NOISE)
    assert "outputs in " in proc.stdout


def test_video_with_dir_writes_mp4_and_one_npz(tmp_path, frames):
    video = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 128))
    assert w.isOpened()
    for s in frames:
        w.write(cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR))
    w.release()
    run(video, "--method", "dir", "--crop-mode", "center", "--device", "cpu", "--format", "npz", "--out", tmp_path / "o")
    cap = cv2.VideoCapture(str(tmp_path / "o" / "clip_hands.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 400
    npz = np.load(tmp_path / "o" / "clip_hands.npz")
    video_rec = json.loads(str(npz["record"]))
    records = video_rec["frames"]
    assert video_rec["method"] == "dir" and video_rec["trained_on"] == "synthetic"
    assert len(records) == 4 and records[2]["source"] == "clip.mp4#2" and records[2]["time_s"] == pytest.approx(0.2)
    assert npz["vertices"].shape[:2] == (4, 2) and np.isfinite(npz["vertices"]).all()
    assert npz["joints_2d"].shape == (4, 2, 21, 2) and npz["valid"].shape == (4, 2)


def test_missing_input_is_a_clear_error(tmp_path):
    proc = subprocess.run([EXE, "infer", str(tmp_path / "nope.jpg")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_help_explains_outputs_legend_and_options():
    text = subprocess.run([EXE, "infer", "--help"], capture_output=True, text=True, timeout=120).stdout
    for needle in ("<name>_hands.json", "assumed", "joints_2d", "trained_on", "detector N", "blue = left",
                   "--overlay-height", "--force", "--verbose", "--format", "synthetic", "summary.json"):
        assert needle in text, needle


def _photo(name):
    photo = PHOTOS / name
    if not photo.is_file():
        pytest.skip(f"{photo} not present (real photos are never copied into the repository)")
    pytest.importorskip("mediapipe")
    return photo


def test_real_photo_with_the_default_keypoint_fit(tmp_path):
    photo = _photo("intaghand_demo1_crossed_fingers.jpg")
    proc = run(photo, "--out", tmp_path)
    rec = json.loads((tmp_path / "intaghand_demo1_crossed_fingers_hands.json").read_text())
    assert rec["hands_detected"] == 2 and all(h["valid"] for h in rec["hands"])
    assert rec["right_minus_left"] is not None and rec["camera"]["assumed"] is True
    assert sorted(d["side"] for d in rec["detector_hands"]) == ["left", "right"]
    assert all(len(d["box"]) == 4 for d in rec["detector_hands"])
    assert not any(n in proc.stderr + proc.stdout for n in NOISE), proc.stderr
    assert "detector found" not in proc.stdout and f"outputs in {tmp_path.resolve()}/" in proc.stdout


def test_real_photo_with_one_hand_gets_a_line(tmp_path):
    photo = _photo("acr_demo_magic_single_hand.jpg")
    proc = run(photo, "--out", tmp_path)
    assert "acr_demo_magic_single_hand.jpg: detector found 1 of 2 hands (" in proc.stdout
    assert "missing)" in proc.stdout


def test_real_photo_with_dir_stacked_hands_lose_confidence(tmp_path):
    """The demo weights put both hands of the hot-dog photo on one spot: the confidence says so."""
    photo = _photo("interwild_demo_hotdog_two_hands.jpg")
    proc = run(photo, "--method", "dir", "--device", "cpu", "--out", tmp_path)
    assert proc.stderr.count("not meant for real images") == 1
    assert not any(n in proc.stderr + proc.stdout for n in NOISE), proc.stderr
    rec = json.loads((tmp_path / "interwild_demo_hotdog_two_hands_hands.json").read_text())
    assert rec["stacking"]["iou"] > 0.5 and rec["stacking"]["factor"] < 1.0
    assert max(h["confidence"] for h in rec["hands"]) < 0.6
