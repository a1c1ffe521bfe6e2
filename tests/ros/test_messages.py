"""interhand_perception_msgs over real rclpy and Fast DDS, discovery kept on loopback.

* TwoHands (2 x 21 joints, 1490 vertices per hand) between two DDS participants of this process
  and between two processes: every field survives (stamp, frame_id, joints, pose, betas, wrist
  pose, vertices, ids).
* HandMesh on a transient-local topic reaches a subscriber that joins after it was published
  (in this process and from another process).

Waits are on matching (get_subscription_count / get_publisher_count) and on reception, each with
a timeout, never fixed sleeps. conftest.py sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a
per-run ROS_DOMAIN_ID before rclpy is imported.

The module skips itself when rclpy or the built message package cannot be used (run
scripts/setup_ros.sh, then ``source scripts/ros_env.sh && .venv/bin/python -m pytest tests/ros``);
INTERHAND_REQUIRE_ROS=1 turns that skip into a failure. Run as a script (``--child MODE``) it is
the publisher process of the two-process tests.
"""
from __future__ import annotations

import array
import os
import select
import subprocess
import sys
import time

import numpy as np
import pytest


if __name__ != "__main__":
    from ros_guard import require_ros

    require_ros()

import rclpy  # noqa: E402
from participants import Participant, serve_until_stdin_closes  # noqa: E402
from geometry_msgs.msg import Point  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from interhand_perception_msgs.msg import Hand, HandMesh, TwoHands  # noqa: E402

NUM_VERTS = 1490      # the built-in hand model's vertex count
NUM_FACES = 2976
STAMP = (1_700_000_123, 456_789_012)
FRAME_ID = "camera_color_optical_frame"
TIMEOUT = 30.0        # seconds, for each wait (discovery takes about a second)
_RUN = os.environ.get("INTERHAND_TEST_RUN_TOKEN", "0")  # set by conftest, inherited by children
TWO_HANDS_TOPIC = f"interhand_test_{_RUN}/hands"
MESH_TOPIC = f"interhand_test_{_RUN}/hand_mesh"

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
LATCHED = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,  # one mesh per side
                     durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


# ---------------------------------------------------------------- messages ----

def hand_arrays(side: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic contents of one hand (both processes rebuild the same ones)."""
    rng = np.random.default_rng(1000 * seed + side)
    centre = np.array([-0.08 if side == Hand.LEFT else 0.08, 0.02, 0.55])
    joints = centre + rng.normal(0.0, 0.04, (21, 3))                       # float64, metres
    quat = rng.normal(size=4)
    return {
        "joints": joints,
        "pose": rng.normal(0.0, 0.3, 48).astype(np.float32),
        "betas": rng.normal(0.0, 1.0, 10).astype(np.float32),
        "quat": quat / np.linalg.norm(quat),                                 # x, y, z, w
        "vertices": (centre + rng.normal(0.0, 0.05, (NUM_VERTS, 3))).astype(np.float32),
    }


def make_two_hands(seed: int = 0) -> TwoHands:
    msg = TwoHands()
    msg.header.stamp.sec, msg.header.stamp.nanosec = STAMP
    msg.header.frame_id = FRAME_ID
    for side, hand in ((Hand.LEFT, msg.left), (Hand.RIGHT, msg.right)):
        a = hand_arrays(side, seed)
        hand.side = side
        hand.side_name = "left" if side == Hand.LEFT else "right"
        hand.valid = True
        hand.confidence = 0.25 if side == Hand.LEFT else 0.75
        hand.joints = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in a["joints"]]
        hand.pose = a["pose"]
        hand.betas = a["betas"]
        p, q = hand.wrist_pose.position, hand.wrist_pose.orientation
        p.x, p.y, p.z = (float(v) for v in a["joints"][0])
        q.x, q.y, q.z, q.w = (float(v) for v in a["quat"])
        # array.array('f') is the fast path of a float32[] field (no per-element checks)
        hand.vertices = array.array("f", a["vertices"].tobytes())
    d = msg.right.joints[0]
    msg.right_minus_left.x = d.x - msg.left.joints[0].x
    msg.right_minus_left.y = d.y - msg.left.joints[0].y
    msg.right_minus_left.z = d.z - msg.left.joints[0].z
    msg.model_id = f"dir-test-{seed}"
    msg.hand_model_id = "builtin-test"
    return msg


def mesh_faces(side: int) -> np.ndarray:
    rng = np.random.default_rng(7 + side)
    return rng.integers(0, NUM_VERTS, NUM_FACES * 3, dtype=np.uint32)


def make_meshes() -> list[HandMesh]:
    out = []
    for side in (Hand.LEFT, Hand.RIGHT):
        m = HandMesh()
        m.header.stamp.sec, m.header.stamp.nanosec = STAMP
        m.header.frame_id = FRAME_ID
        m.hand_model_id = "builtin-test"
        m.side = side
        m.faces = array.array("I", mesh_faces(side).tobytes())
        m.num_vertices = NUM_VERTS
        out.append(m)
    return out


def assert_two_hands_equal(got: TwoHands, seed: int = 0) -> None:
    """Every field of ``got`` equals what make_two_hands(seed) sent."""
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == STAMP
    assert got.header.frame_id == FRAME_ID
    for side, hand in ((Hand.LEFT, got.left), (Hand.RIGHT, got.right)):
        a = hand_arrays(side, seed)
        assert hand.side == side and hand.side_name == ("left" if side == Hand.LEFT else "right")
        assert hand.valid is True
        assert hand.confidence == (0.25 if side == Hand.LEFT else 0.75)  # exact in float32
        assert (len(hand.joints), len(hand.pose), len(hand.betas)) == (21, 48, 10)
        np.testing.assert_array_equal(np.array([[p.x, p.y, p.z] for p in hand.joints]), a["joints"])
        np.testing.assert_array_equal(np.asarray(hand.pose), a["pose"])
        np.testing.assert_array_equal(np.asarray(hand.betas), a["betas"])
        w = hand.wrist_pose
        np.testing.assert_array_equal([w.position.x, w.position.y, w.position.z], a["joints"][0])
        np.testing.assert_array_equal([w.orientation.x, w.orientation.y, w.orientation.z,
                                       w.orientation.w], a["quat"])
        verts = np.frombuffer(hand.vertices, dtype=np.float32).reshape(-1, 3)
        assert verts.shape == (NUM_VERTS, 3)
        np.testing.assert_array_equal(verts, a["vertices"])
    d = got.right_minus_left
    np.testing.assert_allclose([d.x, d.y, d.z],
                               hand_arrays(Hand.RIGHT, seed)["joints"][0]
                               - hand_arrays(Hand.LEFT, seed)["joints"][0], rtol=0, atol=1e-15)
    assert got.model_id == f"dir-test-{seed}" and got.hand_model_id == "builtin-test"
    assert got == make_two_hands(seed)  # the generated __eq__ compares every field


def assert_meshes_equal(got: list[HandMesh]) -> None:
    assert sorted(m.side for m in got) == [Hand.LEFT, Hand.RIGHT]
    for m in got:
        assert m.hand_model_id == "builtin-test" and m.num_vertices == NUM_VERTS
        assert (m.header.stamp.sec, m.header.stamp.nanosec) == STAMP
        assert m.header.frame_id == FRAME_ID
        np.testing.assert_array_equal(np.frombuffer(m.faces, dtype=np.uint32), mesh_faces(m.side))


# ---------------------------------------------------------------- helpers ----

def spin_until(condition, participants, timeout: float = TIMEOUT) -> bool:
    """Spin the participants' executors until ``condition()`` or the timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        for p in participants:
            p.executor.spin_once(timeout_sec=0.02)
    return True


@pytest.fixture
def participants(ros_domain_id):
    made = []

    def make(name):
        made.append(Participant(name))
        return made[-1]

    yield make
    for p in reversed(made):
        p.close()


def start_child(mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))


def finish_child(child: subprocess.Popen) -> str:
    """Close the child's stdin (its signal to stop) and return its stderr; rc must be 0."""
    try:
        _, err = child.communicate(input="", timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"child publisher did not stop:\n{err}")
    assert child.returncode == 0, f"child publisher failed (rc {child.returncode}):\n{err}"
    return err


def read_line(child: subprocess.Popen, timeout: float = TIMEOUT) -> str:
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    if not ready:
        child.kill()
        pytest.fail(f"no word from the child publisher in {timeout} s:\n{child.stderr.read()}")
    return child.stdout.readline().strip()


# ------------------------------------------------------------------ tests ----

def test_environment_is_loopback_and_private_domain(participants, ros_domain_id):
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 1 <= ros_domain_id <= 101
    p = participants("interhand_env_check")
    assert p.context.get_domain_id() == ros_domain_id


def test_message_contract():
    names = Hand.JOINT_NAMES.split(",")
    assert len(names) == Hand.NUM_JOINTS == 21 and names[0] == "wrist" and names[9] == "middle_mcp"
    assert (Hand.NUM_POSE, Hand.NUM_BETAS) == (48, 10)
    assert (Hand.LEFT, Hand.RIGHT) == (HandMesh.LEFT, HandMesh.RIGHT) == (0, 1)
    # numpy arrays are accepted for the float32[] fields (stored as array.array('f'))
    h = Hand()
    h.pose = np.arange(48, dtype=np.float32)
    assert isinstance(h.pose, array.array) and h.pose.typecode == "f" and list(h.pose)[47] == 47.0
    joints = pytest.importorskip("interhand_perception.hand_model.joints")
    assert tuple(names) == tuple(joints.JOINT_NAMES)  # one order for the core and the messages


def test_serialization_round_trip_and_size():
    msg = make_two_hands()
    data = serialize_message(msg)
    # 2 hands x (1490 x 12 B vertices + 21 x 24 B joints + 58 x 4 B pose/betas + ...) ~ 37 kB
    assert 2 * NUM_VERTS * 12 < len(data) < 2 * NUM_VERTS * 12 + 4096
    assert_two_hands_equal(deserialize_message(data, TwoHands))


def test_two_hands_round_trip_between_participants(participants):
    pub_side = participants("interhand_test_pub")
    sub_side = participants("interhand_test_sub")
    received = []
    pub = pub_side.node.create_publisher(TwoHands, TWO_HANDS_TOPIC, RELIABLE)
    sub = sub_side.node.create_subscription(TwoHands, TWO_HANDS_TOPIC, received.append, RELIABLE)
    both = [pub_side, sub_side]
    assert spin_until(lambda: pub.get_subscription_count() >= 1 and sub.get_publisher_count() >= 1,
                      both), "publisher and subscriber did not match over DDS"
    pub.publish(make_two_hands())
    assert spin_until(lambda: len(received) >= 1, both), "TwoHands not received"
    assert len(received) == 1
    assert_two_hands_equal(received[0])


def test_two_hands_round_trip_between_processes(participants):
    sub_side = participants("interhand_test_sub")
    received = []
    sub = sub_side.node.create_subscription(TwoHands, TWO_HANDS_TOPIC, received.append, RELIABLE)
    child = start_child("two_hands")
    try:
        assert spin_until(lambda: sub.get_publisher_count() >= 1, [sub_side]), \
            "the other process's publisher was not discovered"
        assert spin_until(lambda: len(received) >= 1, [sub_side]), "TwoHands not received"
    finally:
        err = finish_child(child)
    assert len(received) == 1, err
    assert_two_hands_equal(received[0])


def test_hand_mesh_reaches_late_subscriber(participants):
    pub_side = participants("interhand_test_mesh_pub")
    pub = pub_side.node.create_publisher(HandMesh, MESH_TOPIC, LATCHED)
    for m in make_meshes():
        pub.publish(m)            # nobody listens yet
    sub_side = participants("interhand_test_mesh_sub")
    received = []
    sub = sub_side.node.create_subscription(HandMesh, MESH_TOPIC, received.append, LATCHED)
    both = [pub_side, sub_side]
    assert spin_until(lambda: sub.get_publisher_count() >= 1, both), "mesh publisher not matched"
    assert spin_until(lambda: len(received) >= 2, both), f"late subscriber got {len(received)}/2 meshes"
    assert_meshes_equal(received)


def test_hand_mesh_reaches_late_subscriber_in_another_process(participants):
    child = start_child("mesh")
    try:
        assert read_line(child) == "published"
        sub_side = participants("interhand_test_mesh_sub")   # joins after the publication
        received = []
        sub_side.node.create_subscription(HandMesh, MESH_TOPIC, received.append, LATCHED)
        assert spin_until(lambda: len(received) >= 2, [sub_side]), \
            f"late subscriber got {len(received)}/2 meshes from the other process"
    finally:
        finish_child(child)
    assert_meshes_equal(received)


# ------------------------------------------------------------ child process ----

def _child(mode: str) -> int:
    """Publisher process: `two_hands` waits for a subscriber, publishes once; `mesh` publishes
    both meshes at once (transient local) and says "published". Both then stay until stdin
    closes so that reliable delivery can finish."""
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST", "loopback env missing"
    assert os.environ.get("ROS_DOMAIN_ID"), "ROS_DOMAIN_ID missing"
    p = Participant(f"interhand_test_child_{mode}")
    try:
        if mode == "two_hands":
            pub = p.node.create_publisher(TwoHands, TWO_HANDS_TOPIC, RELIABLE)
            if not spin_until(lambda: pub.get_subscription_count() >= 1, [p]):
                print("child: no subscriber matched", file=sys.stderr)
                return 2
            pub.publish(make_two_hands())
        elif mode == "mesh":
            pub = p.node.create_publisher(HandMesh, MESH_TOPIC, LATCHED)
            for m in make_meshes():
                pub.publish(m)
            print("published", flush=True)
        else:
            print(f"child: unknown mode {mode}", file=sys.stderr)
            return 2
        return serve_until_stdin_closes(p, 2 * TIMEOUT)
    finally:
        p.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2]))
    sys.exit(f"usage: {sys.argv[0]} --child two_hands|mesh (run the tests with pytest)")
