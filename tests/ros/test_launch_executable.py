"""The installed ``hands_node`` started the way ``ros2 launch`` starts it, then stopped with Ctrl-C.

``launch`` and ``launch_ros`` are not on the package registry (docs/ros_setup.md), so
launch/hands.launch.py cannot run here. This test does what launch_ros does with that file's
``Node`` action: it finds the executable through the ament index
(``<prefix of interhand_perception>/lib/interhand_perception/hands_node``), executes it directly
(its first line picks the interpreter), in a clean environment holding only what the README's
``source scripts/ros_env.sh`` gives (no venv on PATH: the first ``python3`` there is the
system's, which lacks the package; the node used to die there), with the arguments launch_ros
builds: the launch file's ``--ros-args --log-level info``, then ``--ros-args -r __node:=hands_node
-r __ns:=<ns> --params-file <installed config/hands.yaml> -r image:=... -r camera_info:=...``.

A camera in this process then streams frames at 30 Hz and the node must answer (the shipped
defaults: MediaPipe + keypoint fit; a blank frame gives two invalid hands). SIGINT, what launch
sends on Ctrl-C, arrives while frames stream: the node must exit with status 0 and print no
error ("Failed to publish: publisher's context is invalid" came out of 2 of 8 stops before).
Three starts and stops. Only the camera driver is replaced by the test's publisher.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ros_guard import require_ros

require_ros()

import rclpy  # noqa: E402
from ament_index_python.packages import get_package_prefix, get_package_share_directory  # noqa: E402
from interhand_perception_msgs.msg import TwoHands  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOKEN = os.environ.get("INTERHAND_TEST_RUN_TOKEN", str(os.getpid()))
NS = f"/t{TOKEN}_launched"
W, H = 320, 240
TIMEOUT = 60.0
ALARMING = ("Failed to publish", "Traceback", "context is invalid", "[internal]", "Error")


def launch_command() -> list[str]:
    """The command line launch_ros builds from hands.launch.py's Node action (default arguments)."""
    exe = Path(get_package_prefix("interhand_perception")) / "lib" / "interhand_perception" / "hands_node"
    params = Path(get_package_share_directory("interhand_perception")) / "config" / "hands.yaml"
    assert exe.is_file() and os.access(exe, os.X_OK), exe
    return [str(exe), "--ros-args", "--log-level", "info",
            "--ros-args", "-r", "__node:=hands_node", "-r", f"__ns:={NS}", "--params-file", str(params),
            "-r", f"image:={NS}/camera/image_raw", "-r", f"camera_info:={NS}/camera/camera_info"]


def clean_env() -> dict:
    """Only what a fresh login shell has, plus this run's DDS domain (conftest)."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin",
           "LANG": os.environ.get("LANG", "C.UTF-8"), "ROS_DOMAIN_ID": os.environ["ROS_DOMAIN_ID"],
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    return env


def start_node() -> subprocess.Popen:
    """``bash -c 'source scripts/ros_env.sh && exec <launch_ros command>'`` in a clean environment."""
    script = f'source "{ROOT}/scripts/ros_env.sh" && exec "$@"'
    return subprocess.Popen(["bash", "-c", script, "launched", *launch_command()], env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def camera():
    pytest.importorskip("mediapipe", reason="the shipped default method needs MediaPipe (scripts/setup.sh)")
    rclpy.init()
    node = rclpy.create_node("launch_test_camera", namespace=NS)
    got: list = []
    node.create_subscription(TwoHands, f"{NS}/hands", got.append, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    pub_img = node.create_publisher(Image, f"{NS}/camera/image_raw", qos_profile_sensor_data)
    pub_info = node.create_publisher(CameraInfo, f"{NS}/camera/camera_info", qos_profile_sensor_data)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    thread = threading.Thread(target=ex.spin, daemon=True)
    thread.start()
    yield node, pub_img, pub_info, got
    ex.shutdown()
    thread.join(timeout=5)
    node.destroy_node()
    rclpy.shutdown()


def test_clean_environment_has_no_python_with_the_package():
    """The scenario: after `source scripts/ros_env.sh` alone, `python3` on PATH lacks the package."""
    out = subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/ros_env.sh" && command -v python3 || true'],
                         env=clean_env(), capture_output=True, text=True, timeout=60)
    first = out.stdout.strip()
    assert not first.startswith(str(ROOT)), f"the venv is on PATH ({first}): the test would prove nothing"


def _stream(node, pub_img, pub_info, stop: threading.Event):
    img = np.full((H, W, 3), 120, np.uint8).tobytes()
    f = 0.5 * W / np.tan(np.deg2rad(30.0))
    while not stop.is_set():
        now = node.get_clock().now().to_msg()
        info = CameraInfo(width=W, height=H, k=[f, 0.0, W / 2, 0.0, f, H / 2, 0.0, 0.0, 1.0])
        info.header.stamp, info.header.frame_id = now, "cam_optical_frame"
        pub_info.publish(info)
        msg = Image(width=W, height=H, encoding="rgb8", step=3 * W, data=img)
        msg.header.stamp, msg.header.frame_id = now, "cam_optical_frame"
        pub_img.publish(msg)
        time.sleep(1 / 30)


@pytest.mark.parametrize("run", range(3))
def test_launched_node_answers_and_stops_quietly_on_ctrl_c(camera, run):
    node, pub_img, pub_info, got = camera
    assert shutil.which("bash")
    proc = start_node()
    stop = threading.Event()
    streamer = threading.Thread(target=_stream, args=(node, pub_img, pub_info, stop), daemon=True)
    try:
        n0 = len(got)
        streamer.start()
        t_end = time.monotonic() + TIMEOUT
        while len(got) < n0 + 3 and time.monotonic() < t_end and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"hands_node exited with {proc.returncode}:\n{proc.stdout.read()}")
        assert len(got) >= n0 + 3, "the launched node did not answer"
        msg = got[-1]
        assert msg.header.frame_id == "cam_optical_frame" and not msg.left.valid and not msg.right.valid
        time.sleep(0.2 * run)  # stop at different points of the frame loop
        proc.send_signal(signal.SIGINT)  # frames still streaming
        out, _ = proc.communicate(timeout=30)
    finally:
        stop.set()
        streamer.join(timeout=5)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "ready: keypoint_fit" in out
    bad = [line for line in out.splitlines() if any(a in line for a in ALARMING)]
    assert not bad, "\n".join(bad)
