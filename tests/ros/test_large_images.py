"""Camera-sized images between two processes over real Fast DDS, best effort, depth 1.

Issue 10, item 1: with the node's default image QoS (``image_qos: sensor_data``: best effort,
KEEP_LAST 1, volatile) Fast DDS delivered almost no image over 512 KiB from another process
(640x480 and 1280x720 rgb8: 0-10 of 60 at 30 Hz, docs/ros_node.md has the table). The cause is
the 512 KiB shared-memory segment of the PUBLISHING participant; config/fastdds_large_images.xml
adds one of 16 MiB. This test does what docs/ros_node.md tells users to do for their camera
driver: the publisher process gets FASTDDS_DEFAULT_PROFILES_FILE (FASTRTPS_... before Fast DDS
3) pointing at the profile, then sends 60 frames of each size at 30 Hz after discovery, and a
subscriber with the node's QoS counts what arrives. Depth 1 and a busy machine may lose a few,
so the bound is 80 %.

The test does NOT assert that the same run fails without the profile (such a test would be
flaky: sometimes a frame or ten do arrive); the measured numbers are in docs/ros_node.md.

Waits are on matching and on the child's words, never fixed sleeps. conftest.py sets
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a per-run ROS_DOMAIN_ID, inherited by the child.
Run as a script (``--child``) this module is the publisher process.
"""
from __future__ import annotations

import array
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

if __name__ != "__main__":
    from ros_guard import require_ros

    require_ros()

import rclpy  # noqa: E402
from participants import Participant, serve_until_stdin_closes  # noqa: E402
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile,  # noqa: E402
                       ReliabilityPolicy, qos_profile_sensor_data)
from sensor_msgs.msg import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "config" / "fastdds_large_images.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
SIZES = ((640, 480), (1280, 720))     # rgb8: 921,600 B and 2,764,800 B, both over 512 KiB
FRAMES = 60                           # per size, at RATE_HZ
RATE_HZ = 30.0
MIN_DELIVERED = 0.8
TIMEOUT = 30.0                        # seconds, for each wait
_RUN = os.environ.get("INTERHAND_TEST_RUN_TOKEN", "0")
TOPIC = f"interhand_test_{_RUN}/large_image"

# The node's default input QoS (image_qos: sensor_data; ros/hands_node.py) with depth 1, the
# strictest case (the node itself now reads with depth 5).
NODE_QOS = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                      history=HistoryPolicy.KEEP_LAST, durability=qos_profile_sensor_data.durability)
# What a camera driver on sensor-data QoS publishes with.
CAMERA_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                        history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)


def profile_var(distro: str | None) -> str:
    """The variable Fast DDS reads: FASTRTPS_... for Fast DDS 2 (Humble, Jazzy), else FASTDDS_...
    (the same choice as scripts/ros_env.sh)."""
    return PROFILE_VARS[1] if distro in ("humble", "iron", "jazzy") else PROFILE_VARS[0]


def publisher_env() -> dict[str, str]:
    """This process's environment with only the large-image profile as the Fast DDS profile."""
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS}
    env[profile_var(os.environ.get("ROS_DISTRO"))] = str(PROFILE)
    return env


def run_publisher(topic: str, matched, spin_until, spin_once, all_arrived) -> tuple[dict, str]:
    """Start the publisher process (with the profile) on ``topic``, wait until ``matched()``,
    let it send, spinning with ``spin_once`` meanwhile; returns ({size: frames sent}, its stderr)."""
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", topic],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=publisher_env())
    sent: dict = {}
    err = ""
    try:
        # Both ends must have matched before the first frame: the publisher waits for our
        # subscription (in the child), we wait for its publisher, then say "go".
        assert spin_until(matched), "the publisher process was not discovered"
        child.stdin.write("go\n")
        child.stdin.flush()
        line = ""
        deadline = time.monotonic() + TIMEOUT + len(SIZES) * FRAMES / RATE_HZ
        while not line and time.monotonic() < deadline:  # spin while the child publishes
            spin_once()
            if select.select([child.stdout], [], [], 0)[0]:
                line = child.stdout.readline().strip()
                if not line:
                    break  # the child closed stdout: it failed
        assert line.startswith("sent "), f"publisher said {line!r}"
        sent = json.loads(line[5:])
        spin_until(all_arrived, timeout=1.0)  # drain what is in flight, briefly
    finally:
        try:
            _, err = child.communicate(input="", timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
    assert child.returncode == 0, f"publisher failed (rc {child.returncode}):\n{err}"
    return sent, err


# ------------------------------------------------------------------ tests ----

def test_ros_env_exports_the_profile_and_keeps_the_users(ros_domain_id):
    """`source scripts/ros_env.sh` points Fast DDS at the profile, silently, unless set."""
    stamp = ROOT / "ros2_ws" / "install" / "interhand_ros_env"
    if not stamp.is_file():
        pytest.skip("ros2_ws is not built by scripts/setup_ros.sh here")
    clean = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS}
    script = ('source scripts/ros_env.sh && printf "%s|%s" '
              '"${FASTDDS_DEFAULT_PROFILES_FILE:-}" "${FASTRTPS_DEFAULT_PROFILES_FILE:-}"')
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, env=clean, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out
    distro = dict(line.split("=", 1) for line in stamp.read_text().splitlines()
                  if "=" in line).get("IH_ROS_DISTRO") or os.environ.get("ROS_DISTRO")
    new, old = out.stdout.split("|")
    got = {PROFILE_VARS[0]: new, PROFILE_VARS[1]: old}
    assert got[profile_var(distro)] == str(PROFILE)
    assert [v for v in got.values() if v] == [str(PROFILE)], got  # one variable only
    for var in PROFILE_VARS:  # a profile of the user's own is kept, and nothing is added
        out = subprocess.run(["bash", "-c", script], cwd=ROOT, env={**clean, var: "/my/profile.xml"},
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stderr == "", out
        assert out.stdout == ("/my/profile.xml|" if var == PROFILE_VARS[0] else "|/my/profile.xml")


def test_large_best_effort_images_reach_the_node_qos_from_another_process(ros_domain_id):
    sub_side = Participant("interhand_test_large_sub")
    got: dict[str, set[int]] = {f"{w}x{h}": set() for w, h in SIZES}
    bad: list[str] = []

    def on_image(msg: Image) -> None:
        key, _, index = msg.header.frame_id.partition("/")
        size_ok = (f"{msg.width}x{msg.height}" == key and msg.encoding == "rgb8"
                   and len(msg.data) == msg.height * msg.step == msg.height * msg.width * 3)
        if not size_ok or key not in got:
            bad.append(f"{msg.header.frame_id} {msg.width}x{msg.height} {len(msg.data)} B")
            return
        i = int(index)
        if msg.data[0] != i % 256 or msg.data[-1] != (i + len(msg.data) - 1) % 256:
            bad.append(f"{msg.header.frame_id}: wrong pixels")
            return
        got[key].add(i)

    sub = sub_side.node.create_subscription(Image, TOPIC, on_image, NODE_QOS)
    last = f"{SIZES[-1][0]}x{SIZES[-1][1]}"
    try:
        sent, err = run_publisher(TOPIC, lambda: sub.get_publisher_count() >= 1, sub_side.spin_until,
                                  lambda: sub_side.executor.spin_once(timeout_sec=0.005),
                                  lambda: FRAMES - 1 in got[last])
    finally:
        sub_side.close()
    counts = {k: f"{len(v)}/{sent.get(k)}" for k, v in got.items()}
    print(f"large images, best effort depth 1, profile on the publisher: delivered/sent {counts}")
    assert not bad, bad[:5]
    for key, received in got.items():
        assert sent[key] == FRAMES
        assert len(received) >= MIN_DELIVERED * FRAMES, \
            f"{key}: {len(received)}/{FRAMES} frames arrived ({counts}); publisher stderr:\n{err}"


# ------------------------------------------------------------ child process ----

def _child(topic: str) -> int:
    """Publisher: waits for a subscriber and the parent's "go", sends FRAMES frames of each size
    at RATE_HZ with camera-driver QoS, prints "sent {...}", stays until stdin closes."""
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST", "loopback env missing"
    assert os.environ.get("ROS_DOMAIN_ID"), "ROS_DOMAIN_ID missing"
    p = Participant("interhand_test_large_pub")
    try:
        pub = p.node.create_publisher(Image, topic, CAMERA_QOS)
        if not p.spin_until(lambda: pub.get_subscription_count() >= 1):
            print("child: no subscriber matched", file=sys.stderr)
            return 2
        if sys.stdin.readline().strip() != "go":
            print("child: no go", file=sys.stderr)
            return 2
        sent = {}
        for w, h in SIZES:
            n = w * h * 3
            msg = Image(width=w, height=h, encoding="rgb8", step=3 * w)
            pattern = bytes(range(256)) * (n // 256 + 2)
            t0 = time.monotonic()
            for i in range(FRAMES):
                while time.monotonic() < t0 + i / RATE_HZ:
                    time.sleep(0.001)
                # bytes i, i + 1, ... (mod 256): the receiver checks the first and the last
                start = i % 256
                msg.data = array.array("B", pattern[start:start + n])
                msg.header.frame_id = f"{w}x{h}/{i}"
                pub.publish(msg)
            sent[f"{w}x{h}"] = FRAMES
        print("sent " + json.dumps(sent), flush=True)
        return serve_until_stdin_closes(p, 2 * TIMEOUT)
    finally:
        p.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2]))
    sys.exit(f"usage: {sys.argv[0]} --child TOPIC (run the tests with pytest)")


def test_large_images_reach_hands_node_and_every_frame_is_accounted_for(ros_domain_id, tmp_path):
    """The same stream into the real hands_node (tiny untrained DIR, in this process): its
    /diagnostics counts what arrived, and DDS's sample numbers account for the rest
    (``received + lost_in_transport`` = frames sent)."""
    from test_hands_node import Rig, make_checkpoint

    rclpy.init()
    rig = None
    try:
        # Markers off: building them holds this process's GIL 20-40 ms a frame, and under CI load
        # the executor (same process) then took only 90 of 120; the transport is what is tested.
        rig = Rig(make_checkpoint(tmp_path / "tiny.safetensors"), "large", publish_markers=False)
        rig.send_info(width=0, height=0)  # K as it is for both sizes
        topic = rig.node.resolve_topic_name("image")
        before = rig.wait_diag(lambda d: True, "diagnostics")

        def spin_until(cond, timeout=TIMEOUT):
            deadline = time.monotonic() + timeout
            while not cond() and time.monotonic() < deadline:
                time.sleep(0.01)
            return cond()

        sent, err = run_publisher(topic, lambda: rig.node.count_publishers(topic) >= 2, spin_until,
                                  lambda: time.sleep(0.005), lambda: False)
        total = sum(sent.values())
        # Gaps in the sample numbers show a lost frame once a later one arrives: all but the
        # last frames of the stream are accounted for.
        d = rig.wait_diag(lambda d: d.get("lost_in_transport") not in (None, "None") and int(d["received"])
                          - int(before["received"]) + int(d["lost_in_transport"]) >= total - 3,
                          "every frame received or counted as lost")
        received = int(d["received"]) - int(before["received"])
        lost = int(d["lost_in_transport"])
        print(f"hands_node: {received}/{total} large frames received, {lost} lost in transport")
        assert received + lost <= total
        # No delivery bound here: in this process the node's executor shares the GIL with its worker
        # and with pytest, and under CI load it took only 76-90 of 120 (transport delivery itself
        # is bounded by the plain-subscriber test above); what this test holds is the accounting.
    finally:
        if rig is not None:
            rig.close()
        rclpy.shutdown()
