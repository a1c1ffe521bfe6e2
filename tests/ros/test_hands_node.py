"""hands_node end to end over real rclpy and Fast DDS (discovery on loopback, own domain).

The node under test is the real ``HandsNode`` with a real (untrained, tiny) DIR checkpoint
written by the trainer's own ``save_checkpoint``; a second node plays the camera (publishes
``Image``/``CompressedImage`` + ``CameraInfo``) and listens to every output. Nothing is
mocked: messages cross DDS between two participants. Only the camera driver is replaced by
the test's publisher (no camera exists here). ``min_confidence`` is 0 so that the untrained
network's hands count as valid and every output (TF, poses, markers) is exercised.

Bad input, one case each: unsupported encoding, data size not matching step x height, a
zero-size image, absurd dimensions (refused before allocating), NaN and zero intrinsics, no
camera_info at all, an undecodable compressed image. In every case the node stays alive, counts
the error in /diagnostics, warns at a limited rate (checked on /rosout) and answers the next
good frame. Start-up with a missing checkpoint or MANO directory or an invalid parameter fails
with a message saying what to fix (in-process and as the ``hands_node`` executable).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ros_guard import require_ros

require_ros()

import cv2  # noqa: E402
import rclpy  # noqa: E402
import torch  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from interhand_perception_msgs.msg import Hand, HandMesh, TwoHands  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.time import Time  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from interhand_perception.hand_model.joints import JOINT_NAMES  # noqa: E402
from interhand_perception.ros.hands_node import HandsNode, StartupError, markers_due  # noqa: E402
from interhand_perception.dir_net.checkpoint import save_checkpoint  # noqa: E402
from interhand_perception.training.config import load_run_config  # noqa: E402
from interhand_perception.dir_net.build import build_model  # noqa: E402
from tiny_config import TINY_MODEL  # noqa: E402

TOKEN = os.environ.get("INTERHAND_TEST_RUN_TOKEN", str(os.getpid()))
W, H = 160, 120  # camera frames; the node crops the centred 120 x 120 square
K = [150.0, 0.0, 80.0, 0.0, 150.0, 60.0, 0.0, 0.0, 1.0]
FRAME = "test_camera_optical_frame"
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("node") / "tiny.safetensors")


def make_checkpoint(path) -> str:
    """A real (untrained, tiny) DIR checkpoint written by the trainer's own save_checkpoint."""
    cfg = load_run_config(None, {"model": dict(TINY_MODEL), "data": {"num_workers": 0}, "train": {"device": "cpu"}})
    torch.manual_seed(0)
    model, hand_models = build_model(cfg, torch.device("cpu"))
    save_checkpoint(path, model, cfg, step=1, hand_models=hand_models)
    return str(path)


@pytest.fixture(scope="module")
def ros_context():
    rclpy.init()
    yield
    rclpy.shutdown()


def test_image(rng: np.random.Generator | None = None) -> np.ndarray:
    rng = rng or np.random.default_rng(0)
    img = np.full((H, W, 3), 90, np.uint8)
    img[20:100, 40:120] = rng.integers(120, 230, size=(80, 80, 3), dtype=np.uint8)  # something hand-sized
    return img


test_image.__test__ = False  # a helper, not a test


class Rig:
    """The node under test + a camera/listener node, spun by one executor thread."""

    def __init__(self, checkpoint: str, name: str, cli_args: list[str] | None = None, image_pub_topic: str | None = None,
                 **params):
        self.ns = f"/t{TOKEN}_{name}"
        self.prefix = f"{name}_"
        values = {"method": "dir", "crop_mode": "center", "checkpoint": checkpoint, "device": "cpu", "min_confidence": 0.0, "frame_prefix": self.prefix,
                  "diagnostics_period_s": 0.2, "camera_info_timeout_s": 0.5, **params}
        self.node = HandsNode(namespace=self.ns, cli_args=cli_args,
                              parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        self.cam = rclpy.create_node(f"camera_{name}", namespace=self.ns)
        compressed = params.get("image_transport") == "compressed"
        image = params.get("image_topic", "image")
        out = params.get("output_topic", "hands")
        self.pub_img = self.cam.create_publisher(CompressedImage if compressed else Image,
                                                 image_pub_topic or (f"{image}/compressed" if compressed else image),
                                                 qos_profile_sensor_data)
        self.pub_info = self.cam.create_publisher(CameraInfo, params.get("camera_info_topic", "camera_info"),
                                                  qos_profile_sensor_data)
        self.lock = threading.Lock()
        self.hands: list = []
        self.tf: list = []
        self.poses: dict = {"left": [], "right": []}
        self.markers: list = []
        self.diag: list = []
        self.warnings: list = []
        rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.cam.create_subscription(TwoHands, out, self._store(self.hands), rel)
        self.cam.create_subscription(TFMessage, "/tf", self._store(self.tf), rel)
        self.cam.create_subscription(MarkerArray, f"{out}/markers", self._store(self.markers), rel)
        for s in ("left", "right"):
            self.cam.create_subscription(PoseStamped, f"{out}/{s}_wrist_pose", self._store(self.poses[s]), rel)
        self.cam.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, rel)
        self.cam.create_subscription(Log, "/rosout", self._on_log, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                                                              durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.ex = MultiThreadedExecutor(num_threads=2)
        self.ex.add_node(self.node)
        self.ex.add_node(self.cam)
        self.thread = threading.Thread(target=self.ex.spin, daemon=True)
        self.thread.start()
        self.wait(lambda: self.pub_img.get_subscription_count() > 0 and self.cam.count_publishers(self.cam.resolve_topic_name(out)) > 0,
                  "discovery between the camera and hands_node")
        self.n = 0

    def _store(self, bucket):
        def cb(msg):
            with self.lock:
                bucket.append(msg)
        return cb

    def _on_diag(self, msg):
        for st in msg.status:
            if st.name.startswith(self.node.get_fully_qualified_name() + ":"):
                with self.lock:
                    self.diag.append({kv.key: kv.value for kv in st.values} | {"_level": st.level, "_message": st.message})

    def _on_log(self, msg):
        if msg.name.endswith(self.node.get_name()) and msg.level == Log.WARN and self.ns.lstrip("/") in msg.name:
            with self.lock:
                self.warnings.append(msg.msg)

    def wait(self, cond, what: str, timeout: float = TIMEOUT):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            with self.lock:
                if cond():
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")

    def stamp(self):
        self.n += 1
        return Time(seconds=1000 + self.n, nanoseconds=12345).to_msg()

    def send_info(self, k=K, width=W, height=H, stamp=None, frame_id=FRAME, **fields):
        info = CameraInfo(width=width, height=height, k=list(map(float, k)), **fields)
        info.header.stamp = stamp or self.stamp()
        info.header.frame_id = frame_id
        self.pub_info.publish(info)

    def send_image(self, img=None, encoding="rgb8", stamp=None, **override):
        img = test_image() if img is None else img
        stamp = stamp or self.stamp()
        msg = Image(height=img.shape[0], width=img.shape[1], encoding=encoding, step=img.shape[1] * 3,
                    data=img.tobytes())
        msg.header.stamp, msg.header.frame_id = stamp, FRAME
        for k, v in override.items():
            setattr(msg, k, v)
        self.pub_img.publish(msg)
        return stamp

    def answered(self, stamp) -> TwoHands | None:
        for m in self.hands:
            if m.header.stamp == stamp:
                return m
        return None

    def send_until_answered(self, send, what="an answer to a good frame", tries=20):
        """Publish (best effort) until the node answers one of the stamps; returns that message."""
        stamps = []
        t_end = time.monotonic() + TIMEOUT
        while time.monotonic() < t_end:
            stamps.append(send())
            t_retry = time.monotonic() + 2.0
            while time.monotonic() < t_retry:
                with self.lock:
                    for s in stamps:
                        m = self.answered(s)
                        if m is not None:
                            return m
                time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def latest_diag(self) -> dict:
        with self.lock:
            return dict(self.diag[-1]) if self.diag else {}

    def wait_diag(self, cond, what):
        self.wait(lambda: bool(self.diag) and cond(self.diag[-1]), what)
        return self.latest_diag()

    def close(self):
        self.ex.shutdown()
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        self.cam.destroy_node()


@pytest.fixture(scope="module")
def rig(ros_context, checkpoint):
    r = Rig(checkpoint, "main", publish_joint_tf=True)
    r.send_info()
    yield r
    r.close()


def test_end_to_end_outputs_keep_stamp_and_frame(rig):
    rig.send_info()
    msg = rig.send_until_answered(rig.send_image)
    stamp = msg.header.stamp
    assert msg.header.frame_id == FRAME
    assert msg.model_id == rig.node.model_id and msg.model_id.startswith("tiny-")
    assert msg.left.side == Hand.LEFT and msg.right.side == Hand.RIGHT
    for h in (msg.left, msg.right):
        assert h.valid
        assert len(h.joints) == 21 and len(h.pose) == 48 and len(h.betas) == 10
        j = np.array([[p.x, p.y, p.z] for p in h.joints])
        assert np.isfinite(j).all() and (j[:, 2] > 0.05).all(), "hands must be in front of the camera"
        assert h.wrist_pose.position.z == pytest.approx(j[0, 2])
        n_verts = rig.node.hand_models[h.side_name].v_template.shape[0]
        assert len(h.vertices) == 3 * n_verts
    d = np.array([msg.right_minus_left.x, msg.right_minus_left.y, msg.right_minus_left.z])
    lw = np.array([msg.left.wrist_pose.position.x, msg.left.wrist_pose.position.y, msg.left.wrist_pose.position.z])
    rw = np.array([msg.right.wrist_pose.position.x, msg.right.wrist_pose.position.y, msg.right.wrist_pose.position.z])
    assert np.allclose(d, rw - lw, atol=1e-6)

    # TF: image frame -> <prefix>left_wrist / right_wrist, plus 20 joint frames per hand
    rig.wait(lambda: any(t.header.stamp == stamp for m in rig.tf for t in m.transforms), "TF of the frame")
    with rig.lock:
        tfs = [t for m in rig.tf for t in m.transforms if t.header.stamp == stamp]
    by_child = {t.child_frame_id: t for t in tfs}
    for side, hand in (("left", msg.left), ("right", msg.right)):
        wrist = by_child[f"{rig.prefix}{side}_wrist"]
        assert wrist.header.frame_id == FRAME
        assert wrist.transform.translation.x == pytest.approx(hand.wrist_pose.position.x)
        assert wrist.transform.rotation.w == pytest.approx(hand.wrist_pose.orientation.w)
        tip = by_child[f"{rig.prefix}{side}_index_tip"]
        assert tip.header.frame_id == f"{rig.prefix}{side}_wrist"
        # the joint frame, composed with the wrist transform, lands on the published joint
        q = wrist.transform.rotation
        x, y, z, w = q.x, q.y, q.z, q.w
        R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        t = tip.transform.translation
        p = R @ np.array([t.x, t.y, t.z]) + np.array([hand.wrist_pose.position.x, hand.wrist_pose.position.y,
                                                         hand.wrist_pose.position.z])
        jt = hand.joints[JOINT_NAMES.index("index_tip")]
        assert np.allclose(p, [jt.x, jt.y, jt.z], atol=1e-5)
    assert len(tfs) == 2 * 21

    # wrist poses and markers, same stamp and frame
    for side in ("left", "right"):
        rig.wait(lambda s=side: any(p.header.stamp == stamp for p in rig.poses[s]), f"{side} wrist pose")
    rig.wait(lambda: any(m.markers and m.markers[0].header.stamp == stamp for m in rig.markers), "markers")
    with rig.lock:
        arr = next(m for m in rig.markers if m.markers and m.markers[0].header.stamp == stamp)
    kinds = {(m.ns, m.type) for m in arr.markers}
    assert ("left_mesh", Marker.TRIANGLE_LIST) in kinds and ("right_skeleton", Marker.LINE_LIST) in kinds
    mesh = next(m for m in arr.markers if m.ns == "left_mesh")
    assert mesh.header.frame_id == FRAME and len(mesh.points) == 3 * len(rig.node.faces["left"])
    assert len(next(m for m in arr.markers if m.ns == "left_skeleton").points) == 2 * 20

    # diagnostics
    d = rig.wait_diag(lambda d: int(d.get("published", 0)) >= 1, "diagnostics counting the output")
    assert int(d["received"]) >= 1 and d["intrinsics"] == "camera_info"
    assert d["image_topic"] == f"{rig.ns}/image"


def test_mesh_faces_reach_a_late_subscriber(rig):
    """hands/mesh is transient local: a subscriber created now still gets both sides' faces."""
    got = {}
    node = rclpy.create_node("late_mesh_listener", namespace=rig.ns)
    node.create_subscription(HandMesh, "hands/mesh", lambda m: got.setdefault(m.side, m),
                             QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,
                                        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    try:
        t_end = time.monotonic() + TIMEOUT
        while len(got) < 2 and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert set(got) == {HandMesh.LEFT, HandMesh.RIGHT}
        faces = np.frombuffer(got[HandMesh.LEFT].faces, np.uint32).reshape(-1, 3)
        assert np.array_equal(faces, rig.node.faces["left"])
        assert got[HandMesh.LEFT].hand_model_id == rig.node.hand_model_id
        assert got[HandMesh.RIGHT].num_vertices == rig.node.hand_models["right"].v_template.shape[0]
    finally:
        node.destroy_node()


def _corrupt(kind):
    img = test_image()
    if kind == "encoding":
        return dict(encoding="bayer_rggb8")
    if kind == "size_mismatch":
        return dict(data=img.tobytes()[:-W * 3])  # one row short of step x height
    if kind == "empty":
        return dict(width=0, height=0, step=0, data=b"")
    if kind == "too_large":
        return dict(width=200_000, height=150_000, step=600_000)  # 90 GB claimed, 57 kB sent
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["encoding", "size_mismatch", "empty", "too_large"])
def test_bad_image_is_counted_warned_and_the_next_good_frame_answered(rig, kind):
    before = int(rig.latest_diag().get(f"errors_{kind}", 0))
    for _ in range(3):  # best effort: send a few; every one must be refused
        rig.send_image(**_corrupt(kind))
        time.sleep(0.05)
    d = rig.wait_diag(lambda d: int(d.get(f"errors_{kind}", 0)) > before, f"errors_{kind} in /diagnostics")
    assert kind in d["last_error"]
    rig.wait(lambda: any(f"[{kind}]" in w for w in rig.warnings), f"a [{kind}] warning on /rosout")
    with rig.lock:
        n_warn = sum(f"[{kind}]" in w for w in rig.warnings)
    assert n_warn == 1, "warnings of one kind are rate limited (warn_period_s)"
    assert rig.node.context.ok() and rig.node._worker.is_alive()
    rig.send_until_answered(rig.send_image)


@pytest.mark.parametrize("k", [[float("nan")] + K[1:], [0.0] + K[1:]], ids=["nan", "zero"])
def test_bad_intrinsics_are_refused_and_the_previous_kept(rig, k):
    before = int(rig.latest_diag().get("errors_intrinsics", 0))
    rig.send_info(k=k)
    d = rig.wait_diag(lambda d: int(d.get("errors_intrinsics", 0)) > before, "errors_intrinsics in /diagnostics")
    assert d["intrinsics"] == "camera_info"  # the earlier good one is still used
    msg = rig.send_until_answered(rig.send_image)
    assert all(np.isfinite([p.z for p in msg.left.joints]))


def test_missing_camera_info_falls_back_with_one_warning(ros_context, checkpoint):
    rig = Rig(checkpoint, "noinfo")
    try:
        msg = rig.send_until_answered(rig.send_image)
        assert msg.left.valid and all(p.z > 0 for p in msg.left.joints)
        time.sleep(0.6)  # past camera_info_timeout_s (0.5 s) since the first image
        for _ in range(3):
            rig.send_until_answered(rig.send_image)
        rig.wait(lambda: any("no valid camera_info" in w for w in rig.warnings), "the missing camera_info warning")
        d = rig.wait_diag(lambda d: d.get("intrinsics", "").startswith("assumed"), "diagnostics saying so")
        assert d["_level"] == b"\x01" and "camera_info" in d["_message"]
        with rig.lock:
            assert sum("no valid camera_info" in w for w in rig.warnings) == 1
    finally:
        rig.close()


def test_compressed_images_and_a_truncated_jpeg(ros_context, checkpoint):
    rig = Rig(checkpoint, "jpeg", image_transport="compressed")
    try:
        rig.send_info()
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(test_image(), cv2.COLOR_RGB2BGR))
        assert ok

        def send(data=jpg.tobytes()):
            msg = CompressedImage(format="jpeg", data=data)
            msg.header.stamp, msg.header.frame_id = rig.stamp(), FRAME
            rig.pub_img.publish(msg)
            return msg.header.stamp

        msg = rig.send_until_answered(send)
        assert msg.header.frame_id == FRAME and msg.right.valid
        send(jpg.tobytes()[: len(jpg) // 3])
        rig.wait_diag(lambda d: int(d.get("errors_decode", 0)) >= 1, "errors_decode in /diagnostics")
        rig.send_until_answered(send)
    finally:
        rig.close()


def test_topic_parameters_rename_inputs_and_outputs(ros_context, checkpoint):
    rig = Rig(checkpoint, "topics", image_topic="cam/color/image_raw", camera_info_topic="/t%s_topics/cam/color/info" % TOKEN,
              output_topic="operator/hands", publish_markers=False, publish_tf=False)
    try:
        rig.send_info()
        msg = rig.send_until_answered(rig.send_image)
        assert msg.header.frame_id == FRAME
        names = dict(rig.node.get_publisher_names_and_types_by_node(rig.node.get_name(), rig.node.get_namespace()))
        assert f"{rig.ns}/operator/hands/left_wrist_pose" in names and f"{rig.ns}/operator/hands/mesh" in names
        assert f"{rig.ns}/operator/hands/markers" not in names, "publish_markers: false"
        d = rig.wait_diag(lambda d: d.get("intrinsics") == "camera_info", "the renamed camera_info in use")
        assert d["image_topic"] == f"{rig.ns}/cam/color/image_raw"
    finally:
        rig.close()


def test_depth_image_sets_the_distance_and_penetration_is_resolved(ros_context, checkpoint):
    """An aligned 16UC1 depth image (a wall at 0.45 m) moves the hands there; bad depth is counted."""
    rig = Rig(checkpoint, "depth", depth_topic="depth", smoothing=False, resolve_penetration=True)
    try:
        pub_depth = rig.cam.create_publisher(Image, "depth", qos_profile_sensor_data)
        t_end = time.monotonic() + TIMEOUT
        while pub_depth.get_subscription_count() == 0 and time.monotonic() < t_end:
            time.sleep(0.02)
        rig.send_info()
        wall_mm = 450  # within hand_distance's plausibility bound (50% of the estimate)

        def send(encoding="16UC1"):
            stamp = rig.stamp()
            depth = np.full((H, W), wall_mm, np.uint16)
            d = Image(height=H, width=W, encoding=encoding, step=W * 2, data=depth.tobytes())
            d.header.stamp, d.header.frame_id = stamp, FRAME
            pub_depth.publish(d)
            time.sleep(0.05)  # let the depth image arrive first (the node matches by stamp)
            return rig.send_image(stamp=stamp)

        msg = rig.send_until_answered(send)
        z = [msg.left.wrist_pose.position.z, msg.right.wrist_pose.position.z]
        assert all(abs(v - wall_mm / 1000) < 0.06 for v in z), f"wrists at {z}, the wall at 0.45 m"
        d = rig.wait_diag(lambda d: d.get("depth") == "matched", "diagnostics reporting the matched depth")
        assert float(d["penetration_after_cm3"]) <= 0.5  # resolve_penetration: true
        send("mono8")
        rig.wait_diag(lambda d: int(d.get("errors_depth_encoding", 0)) >= 1, "the bad depth image counted")
    finally:
        rig.close()


def test_newest_frame_only_drops_and_counts(rig):
    """A burst faster than inference: older frames are dropped (counted), the newest answered."""
    d0 = rig.wait_diag(lambda d: True, "diagnostics")
    stamps = []
    for _ in range(20):  # 3 ms apart: each reaches the callback (a DDS reader of depth 1 would
        stamps.append(rig.send_image())  # keep only the newest of a tighter burst), while one
        time.sleep(0.003)  # inference takes longer, so frames wait in the slot and get replaced
    rig.wait(lambda: rig.answered(stamps[-1]) is not None, "an answer to the newest frame of the burst")
    time.sleep(0.5)
    with rig.lock:
        n_answered = sum(rig.answered(s) is not None for s in stamps)
    d = rig.wait_diag(lambda d: int(d["processed"]) + int(d["dropped"]) >= int(d0["processed"]) + int(d0["dropped"]) + n_answered,
                      "the burst in the diagnostics")
    assert n_answered < len(stamps), "inference is slower than the burst: some frames must be dropped"
    assert int(d["dropped"]) > int(d0["dropped"])
    # every received frame is processed or dropped, never queued (at most one waits in the slot)
    assert int(d["processed"]) + int(d["dropped"]) <= int(d["received"])


def test_startup_fails_clearly_in_process(ros_context, checkpoint, tmp_path):
    with pytest.raises(StartupError, match="checkpoint: .*nope.safetensors does not exist"):
        HandsNode(parameter_overrides=[Parameter("method", value="dir"),
                                       Parameter("checkpoint", value=str(tmp_path / "nope.safetensors"))])
    with pytest.raises(StartupError, match="mano_dir: .* is not a directory"):
        HandsNode(parameter_overrides=[Parameter("checkpoint", value=checkpoint),
                                       Parameter("mano_dir", value=str(tmp_path / "no_mano"))])
    (tmp_path / "mano").mkdir()
    with pytest.raises(StartupError, match="lacks MANO_RIGHT.pkl and MANO_LEFT.pkl"):
        HandsNode(parameter_overrides=[Parameter("checkpoint", value=checkpoint),
                                       Parameter("mano_dir", value=str(tmp_path / "mano"))])
    with pytest.raises(StartupError, match="crop_mode: .bogus. is not one of center, full, roi, detect"):
        HandsNode(parameter_overrides=[Parameter("checkpoint", value=checkpoint), Parameter("crop_mode", value="bogus")])


def test_startup_fails_clearly_as_an_executable(tmp_path):
    """The installed ``hands_node`` exits with status 2 and says what to fix."""
    exe = os.path.join(os.path.dirname(sys.executable), "hands_node")
    proc = subprocess.run([exe, "--ros-args", "-p", "method:=dir", "-p", f"checkpoint:={tmp_path / 'missing.safetensors'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot start" in proc.stderr and "missing.safetensors does not exist" in proc.stderr
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "crop_mode" in helped.stdout and "camera_info" in helped.stdout


def test_markers_are_rate_limited_not_the_hands():
    """markers_max_rate_hz: RViz markers at most that often (the first frame always), 0 = every
    frame; TwoHands, TF and the wrist poses are not limited."""
    assert markers_due(None, 5.0, 15.0) and markers_due(1.0, 1.0, 0.0)
    assert not markers_due(1.0, 1.05, 15.0) and markers_due(1.0, 1.07, 15.0)
