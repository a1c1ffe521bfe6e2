"""What a camera stream gets wrong, against the real hands_node over real rclpy and Fast DDS.

Stamps that are zero or go backwards, a camera that stops, frames lost before the node, a
camera_info of another size, with lens distortion or another frame_id, a 1x1 image, and a
compressed topic under a remapped image topic. The camera driver is the test's publisher (no
camera exists here); everything else is real. The node runs the tiny untrained DIR of
test_hands_node (min_confidence 0: its hands are always valid), except where a hand must
appear and disappear: there the default method (MediaPipe + keypoint fit) sees a real photo,
then a blank frame (skipped without ../shared/real_hands or MediaPipe).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from ros_guard import require_ros

require_ros()

import cv2  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from interhand_perception.paths import REPO_ROOT  # noqa: E402
from test_hands_node import FRAME, H, K, TOKEN, W, Rig, checkpoint, ros_context, test_image  # noqa: E402,F401

PHOTO = REPO_ROOT.parent / "shared" / "real_hands" / "intaghand_demo1_crossed_fingers.jpg"
ZERO = Time(seconds=0).to_msg()


def _count(rig, prefix: str) -> int:
    """Warnings on /rosout starting with ``prefix`` (no lock: also called inside ``rig.wait``,
    which holds it)."""
    return sum(w.startswith(prefix) for w in list(rig.warnings))


def _warned_once(rig, prefix: str) -> None:
    """The warning reached /rosout (it may come after the diagnostics), exactly once."""
    rig.wait(lambda: _count(rig, prefix) >= 1, f"the {prefix} warning on /rosout")
    assert _count(rig, prefix) == 1


def test_zero_stamps_a_hand_appears_and_disappears(ros_context):  # noqa: F811
    """Zero stamps: outputs stamped with the time of receipt, the hand times out after
    hand_timeout_s once it left the view, latency leaves these frames out, one warning."""
    pytest.importorskip("mediapipe", reason="MediaPipe is not installed (scripts/setup.sh installs it)")
    if not PHOTO.is_file():
        pytest.skip(f"{PHOTO} not present")
    photo = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB))
    h, w = photo.shape[:2]
    blank = np.full_like(photo, 120)
    timeout = 0.3
    rig = Rig("", "zstamp", method="keypoint_fit", crop_mode="detect", min_confidence=0.3, hand_timeout_s=timeout,
              warn_period_s=60.0)
    try:
        f = 0.5 * w / np.tan(np.deg2rad(30.0))
        rig.send_info(k=[f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0], width=w, height=h)
        t_end = time.monotonic() + 30.0
        while time.monotonic() < t_end:  # the photo until the hands are out, valid
            rig.send_image(img=photo, stamp=ZERO)
            time.sleep(0.2)
            with rig.lock:
                if sum(m.left.valid or m.right.valid for m in rig.hands) >= 2:
                    break
        with rig.lock:
            assert any(m.left.valid or m.right.valid for m in rig.hands), "the photo's hands were never found"
        switch = rig.cam.get_clock().now().nanoseconds * 1e-9

        def stamp_s(m) -> float:
            return m.header.stamp.sec + m.header.stamp.nanosec * 1e-9

        t_end = time.monotonic() + 60.0
        while True:  # the hands leave the view; a blank frame's full search is slow on a busy CPU
            rig.send_image(img=blank, stamp=ZERO)
            time.sleep(0.15)
            with rig.lock:
                msgs = list(rig.hands)
            late = [m for m in msgs if stamp_s(m) > switch + timeout + 0.3]
            if len(late) >= 3:
                break
            assert time.monotonic() < t_end, f"only {len(late)} answers to the blank frames"
        assert all(stamp_s(m) > 0 for m in msgs), "zero-stamped frames are answered with the time of receipt"
        assert not any(m.left.valid or m.right.valid for m in late), \
            "a hand that left the view must become invalid after hand_timeout_s, zero stamps or not"
        d = rig.wait_diag(lambda d: int(d.get("errors_stamp_zero", 0)) >= len(msgs) - 1, "zero stamps counted")
        assert int(d["latency_count"]) == 0, "latency statistics leave zero-stamped frames out"
        _warned_once(rig, "[stamp_zero]")
    finally:
        rig.close()


def test_backwards_stamps_are_counted_warned_and_answered(ros_context, checkpoint):  # noqa: F811
    rig = Rig(checkpoint, "backstamp", warn_period_s=60.0)
    try:
        rig.send_info()
        rig.send_until_answered(lambda: rig.send_image(stamp=Time(seconds=2000).to_msg()))
        back = Time(seconds=1500).to_msg()
        msg = rig.send_until_answered(lambda: rig.send_image(stamp=back))
        assert msg.header.stamp == back, "a backwards stamp is kept on the output (it is the driver's)"
        d = rig.wait_diag(lambda d: int(d.get("errors_stamp_backwards", 0)) >= 1, "backwards stamps counted")
        assert "stamp_backwards" in d["last_error"]
        _warned_once(rig, "[stamp_backwards]")
    finally:
        rig.close()


def test_a_camera_that_stops_turns_diagnostics_to_error(ros_context, checkpoint):  # noqa: F811
    rig = Rig(checkpoint, "deadcam", image_timeout_s=0.6)
    try:
        first = rig.wait_diag(lambda d: True, "diagnostics before any image")
        assert first["_level"] == b"\x01" and "no images received" in first["_message"]
        rig.send_info()
        rig.send_until_answered(rig.send_image)
        t_end = time.monotonic() + 30.0  # the camera streams at 10 Hz: level OK
        while (d := rig.latest_diag()).get("_level") != b"\x00":
            assert time.monotonic() < t_end, f"level not OK while the camera streams: {d.get('_message')}"
            rig.send_image()
            time.sleep(0.1)
        assert float(d["last_input_age_s"]) < 0.6
        d = rig.wait_diag(lambda d: d["_level"] == b"\x02", "level ERROR once the camera stopped")
        assert "no image for" in d["_message"] and rig.ns in d["_message"]
        t_end = time.monotonic() + 30.0  # the camera streams again (at 10 Hz): the ERROR clears
        while rig.latest_diag().get("_level") == b"\x02":
            assert time.monotonic() < t_end, "the ERROR did not clear when images came back"
            rig.send_image()
            time.sleep(0.1)
    finally:
        rig.close()


def test_frames_lost_before_the_node_are_counted(ros_context, checkpoint):  # noqa: F811
    """A burst faster than the subscription takes them (best effort, depth 1): DDS's sample
    numbers show how many were published and never arrived."""
    rig = Rig(checkpoint, "lost")
    try:
        rig.send_info()
        rig.send_until_answered(rig.send_image)
        base = rig.wait_diag(lambda d: d.get("lost_in_transport") not in (None, "None"), "the transport meter")
        sent = 300
        for _ in range(sent):
            rig.send_image()

        def accounted(d) -> int:
            return int(d["received"]) - int(base["received"]) + int(d["lost_in_transport"]) - int(base["lost_in_transport"])

        d = rig.wait_diag(lambda d: accounted(d) >= sent - 5, "the burst received or counted as lost")
        received = int(d["received"]) - int(base["received"])
        lost = int(d["lost_in_transport"]) - int(base["lost_in_transport"])
        print(f"burst: sent {sent}, received {received}, lost before the node {lost}")
        assert lost > 0, "a depth-1 best-effort reader cannot take a 300-frame burst whole"
        assert received + lost <= sent  # every number is accounted for (the last few only once a later one came)
        assert d["published_rate_hz"] not in (None, "None")
    finally:
        rig.close()


def test_camera_info_of_another_size_distortion_and_frame(ros_context, checkpoint):  # noqa: F811
    rig = Rig(checkpoint, "caminfo", warn_period_s=60.0, image_timeout_s=600.0)  # levels: camera_info only
    try:
        # a resized stream (same aspect ratio): scaled by one factor, said once
        rig.send_info(k=[2 * v for v in K[:6]] + [0.0, 0.0, 1.0], width=2 * W, height=2 * H)
        for _ in range(3):
            rig.send_until_answered(rig.send_image)
        rig.wait_diag(lambda d: d["intrinsics"] == "camera_info scaled by 0.5", "the scaled camera_info")
        _warned_once(rig, "[camera_info_scaled]")
        # another aspect ratio: refused, assumed intrinsics, WARN, said once
        rig.send_info(width=2 * W, height=3 * H)
        for _ in range(3):
            rig.send_until_answered(rig.send_image)
        d = rig.wait_diag(lambda d: d["intrinsics"].startswith("refused"), "the refused camera_info")
        assert d["_level"] == b"\x01" and f"{W}x{H}" in d["_message"]
        _warned_once(rig, "[camera_info_size]")
        # lens distortion: the image is undistorted first, and its cost shown
        rig.send_info(d=[-0.5, 0.0, 0.0, 0.0, 0.0], distortion_model="plumb_bob")
        rig.send_until_answered(rig.send_image)
        d = rig.wait_diag(lambda d: d["intrinsics"] == "camera_info, undistorted (plumb_bob)", "undistortion")
        assert float(d["undistort_ms"]) > 0
        # another frame_id: used, warned once
        rig.send_info(frame_id="some_other_optical_frame")
        for _ in range(3):
            msg = rig.send_until_answered(rig.send_image)
        assert msg.header.frame_id == FRAME
        rig.wait(lambda: _count(rig, "[camera_info_frame]") == 1, "the frame_id warning")
        time.sleep(0.3)
        assert _count(rig, "[camera_info_frame]") == 1
    finally:
        rig.close()


def test_tiny_image_is_bad_input_not_an_internal_error(ros_context, checkpoint):  # noqa: F811
    rig = Rig(checkpoint, "tiny")
    try:
        rig.send_info()
        for _ in range(3):
            rig.send_image(img=np.zeros((1, 1, 3), np.uint8))
            time.sleep(0.05)
        d = rig.wait_diag(lambda d: int(d.get("errors_too_small", 0)) >= 1, "errors_too_small")
        assert "errors_internal" not in d and "1x1" in d["last_error"]
        rig.send_until_answered(rig.send_image)
    finally:
        rig.close()


def test_compressed_topic_follows_the_remapped_image_topic(ros_context, checkpoint):  # noqa: F811
    """`-r image:=/cam/image -p image_transport:=compressed` listens on /cam/image/compressed."""
    cam = f"/t{TOKEN}_remapcam/color/image"
    rig = Rig(checkpoint, "remap", cli_args=["--ros-args", "-r", f"image:={cam}"], image_pub_topic=f"{cam}/compressed",
              image_transport="compressed")
    try:
        assert rig.node.image_topic == f"{cam}/compressed"
        rig.send_info()
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(test_image(), cv2.COLOR_RGB2BGR))

        def send():
            msg = CompressedImage(format="jpeg", data=jpg.tobytes())
            msg.header.stamp, msg.header.frame_id = rig.stamp(), FRAME
            rig.pub_img.publish(msg)
            return msg.header.stamp

        rig.send_until_answered(send)
        d = rig.wait_diag(lambda d: int(d["received"]) >= 1, "diagnostics")
        assert d["image_topic"] == f"{cam}/compressed"
    finally:
        rig.close()
