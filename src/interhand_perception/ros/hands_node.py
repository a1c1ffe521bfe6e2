"""``hands_node``: the ROS 2 node that turns a camera stream into two reconstructed hands.

Wiring only, as in the ros2 demos: message decoding (:mod:`pipeline.decode`), camera_info checks
and undistortion (:mod:`pipeline.camera_info`), stamps and stream health
(:mod:`pipeline.stream_health`), the per-frame chain (:class:`pipeline.pipeline.Pipeline`),
bookkeeping (:mod:`pipeline.frame_stats`) and message building (:mod:`ros.conversions`) are
plain functions that the tests, ``interhand infer`` and the benchmark call directly.

Threads: the executor thread runs the subscription callbacks, which only store the newest
frame in a one-slot mailbox (a frame still waiting there when a newer one arrives is dropped
and counted, never queued); one worker thread takes the newest frame, runs the pipeline and
publishes. So the output always belongs to the most recent image the node could take, and
latency does not grow when the network is slower than the camera.

Run it with ``ros2 launch interhand_perception hands.launch.py`` or, where ``ros2 launch``
does not exist, ``hands_node --ros-args --params-file config/hands.yaml -r image:=... -r
camera_info:=...`` (``hands_node --help`` lists the parameters).
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from interhand_perception_msgs.msg import HandMesh, TwoHands
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from ..pipeline.camera_info import CameraInfoFields, CameraInfoTracker
from ..pipeline.depth import DepthBuffer, depth_to_metres
from ..pipeline.frame_stats import FrameStats, LatestSlot, RateLimitedLog
from ..pipeline.decode import InputError, compressed_to_rgb, image_to_rgb, require_usable_size
from ..pipeline.methods import MethodUnavailable
from ..pipeline.pipeline import Pipeline, PipelineOutput
from ..pipeline.stream_health import LOSS_HINT, HealthInputs, StreamClock, TransportMeter, assess
from . import conversions as conv
from ..pipeline.config import PARAMETERS, ConfigError, help_text, validate

try:  # Iron and newer pass DDS's MessageInfo to callbacks that take it
    from rclpy.subscription import MessageInfo  # noqa: F401
    HAVE_MESSAGE_INFO = True
except ImportError:  # Humble
    HAVE_MESSAGE_INFO = False

NODE_NAME = "hands_node"
FALLBACK_FRAME = "camera_optical_frame"


class StartupError(RuntimeError):
    """The node cannot start (bad parameters, missing checkpoint or MANO files)."""


class HandsNode(Node):
    """See the module docstring. Raises :class:`StartupError` when it cannot start."""

    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        for name, spec in PARAMETERS.items():
            self.declare_parameter(name, spec.default,
                                   ParameterDescriptor(description=spec.description, dynamic_typing=True,
                                                       read_only=True))
        try:
            self.params = validate({n: self.get_parameter(n).value for n in PARAMETERS})
        except ConfigError as e:
            raise StartupError(str(e)) from e
        p = self.params
        try:
            self.pipeline = Pipeline.from_params(p)
        except MethodUnavailable as e:
            raise StartupError(str(e)) from e
        self.hand_models, self.faces = self.pipeline.hand_models, self.pipeline.faces
        self.model_id, self.device = self.pipeline.model_id, self.pipeline.device
        ids = {s: getattr(m, "fingerprint", "?") for s, m in self.hand_models.items()}
        self.hand_model_id = f"{ids['left']}+{ids['right']}"
        self.depth_buffer = DepthBuffer(max_age_s=p.depth_max_age_s) if p.depth_topic else None
        self._last: PipelineOutput | None = None
        self._markers_sent: float | None = None  # time.monotonic() of the last MarkerArray
        self.stats = FrameStats()
        self.warn_limiter = RateLimitedLog(p.warn_period_s)
        self.slot = LatestSlot()
        self.camera = CameraInfoTracker(p.distortion, p.assumed_hfov_deg, p.camera_info_timeout_s,
                                        topic=self.resolve_topic_name(p.camera_info_topic))
        self.clock = StreamClock()
        self.transport = TransportMeter()
        self._lost_said = 0
        self._lock = threading.Lock()  # guards self.camera and self.transport

        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        latched = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        tf_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        # Reader depth 5, not 1: while the worker holds the GIL (building markers: 20-40 ms) the
        # executor cannot take a frame, and a shallow reader overwrites it (lost, as if in
        # transport; 30 Hz 640x480 + 1280x720 into this node, tests/ros/test_large_images.py:
        # depth 1 took 60 of 120 frames, depth 3 about 100, depth 5 116-118). Queued frames
        # reach the callback moments later and only the newest stays in the one-slot mailbox
        # (the rest count as `dropped`), so latency does not grow.
        if p.image_qos == "sensor_data":
            in_qos = QoSProfile(depth=5, reliability=qos_profile_sensor_data.reliability,
                                history=HistoryPolicy.KEEP_LAST, durability=qos_profile_sensor_data.durability)
        else:
            in_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)

        self.pub_hands = self.create_publisher(TwoHands, p.output_topic, reliable)
        self.pub_markers = self.create_publisher(MarkerArray, f"{p.output_topic}/markers", reliable) if p.publish_markers else None
        self.pub_poses = ({s: self.create_publisher(PoseStamped, f"{p.output_topic}/{s}_wrist_pose", reliable)
                           for s in conv.SIDES} if p.publish_wrist_poses else None)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", tf_qos) if p.publish_tf else None
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable)
        if p.publish_mesh:
            self.pub_mesh = self.create_publisher(HandMesh, f"{p.output_topic}/mesh", latched)
            stamp = self.get_clock().now().to_msg()
            for side in conv.SIDES:
                n_verts = int(self.hand_models[side].v_template.shape[0])
                self.pub_mesh.publish(conv.hand_mesh_msg(Header(stamp=stamp), side, self.faces[side], n_verts,
                                                         self.hand_model_id))
        if p.image_transport == "compressed":
            self.image_topic = compressed_topic(self, p.image_topic)
            self.create_subscription(CompressedImage, self.image_topic, self._image_callback(), in_qos)
        else:
            self.image_topic = p.image_topic
            self.create_subscription(Image, self.image_topic, self._image_callback(), in_qos)
        self.create_subscription(CameraInfo, p.camera_info_topic, self._on_camera_info, in_qos)
        if self.depth_buffer is not None:
            depth_qos = QoSProfile(depth=3, reliability=in_qos.reliability, history=HistoryPolicy.KEEP_LAST,
                                   durability=in_qos.durability)
            self.create_subscription(Image, p.depth_topic, self._on_depth, depth_qos)
        self.create_timer(p.diagnostics_period_s, self._publish_diagnostics)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="hands_node_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {p.method} ({self.model_id}) on {self.device}, hand model "
            f"{self.hand_model_id}, crop {p.crop_mode if p.method == 'dir' else 'detect'}, listening on {self.resolve_topic_name(self.image_topic)} "
            f"and {self.resolve_topic_name(p.camera_info_topic)}")

    # ---------------------------------------------------------------- callbacks (executor)
    def _image_callback(self):
        """The image callback, with DDS's MessageInfo where rclpy passes it (Iron and newer:
        rclpy decides by the callback's number of arguments)."""
        if not HAVE_MESSAGE_INFO:  # Humble
            return lambda msg: self._on_image(msg, None)
        return lambda msg, info: self._on_image(msg, info)

    def _on_image(self, msg, info) -> None:
        now = time.monotonic()
        self.stats.record_input(now)
        if info is not None:  # rclpy's MessageInfo: DDS numbers each sample its publisher wrote
            gid = info.get("publisher_gid") or {}
            with self._lock:
                self.transport.record(bytes(gid.get("data", b"")), info.get("publication_sequence_number"), now)
        if self.slot.put((msg, now, self.get_clock().now())):
            self.stats.record_drop()

    def _on_camera_info(self, msg) -> None:
        try:  # K is checked now; the image size only per frame (CameraInfoTracker.for_image)
            fields = CameraInfoFields.from_msg(msg)
            with self._lock:
                self.camera.update(fields)
        except (InputError, TypeError, ValueError) as e:
            self._bad_input(getattr(e, "kind", "intrinsics"), f"camera_info rejected, keeping the previous one: {e}")

    def _on_depth(self, msg) -> None:
        p = self.params
        try:
            depth = depth_to_metres(msg.data, msg.width, msg.height, msg.encoding, msg.step, bool(msg.is_bigendian),
                                    p.max_image_width, p.max_image_height)
        except InputError as e:
            self._bad_input(f"depth_{e.kind}", f"depth image rejected: {e}")
            return
        self.depth_buffer.add(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, depth)

    # ---------------------------------------------------------------- worker thread
    def _work(self) -> None:
        while self._running:
            item = self.slot.take(timeout=0.2)
            if item is None:
                continue
            try:
                self._process(*item)
            except InputError as e:
                self._bad_input(e.kind, str(e))
            except Exception as e:  # keep the node alive; the error is counted and shown
                if not self._running or not self.context.ok():
                    return  # shutting down (Ctrl-C): publishers are gone, nothing to report
                self._bad_input("internal", f"{type(e).__name__}: {e}")

    def _decode(self, msg) -> np.ndarray:
        p = self.params
        if hasattr(msg, "encoding"):
            rgb = image_to_rgb(msg.data, msg.width, msg.height, msg.encoding, msg.step, bool(msg.is_bigendian),
                               p.max_image_width, p.max_image_height)
        else:
            rgb = compressed_to_rgb(msg.data, msg.format, p.max_image_width, p.max_image_height)
        return require_usable_size(rgb)

    def _camera(self, rgb: np.ndarray, frame_id: str):
        """(image undistorted when camera_info says so, its intrinsics, the CameraFit or None)."""
        with self._lock:
            intr, notes = self.camera.for_image(rgb.shape[1], rgb.shape[0], frame_id, time.monotonic())
            fit = self.camera.fit
        for kind, text in notes:  # each distinct one once
            self.get_logger().warning(f"[{kind}] {text}")
        if fit is not None:  # a no-op without distortion
            rgb = self.camera.undistorter.image(rgb, fit)
        return rgb, intr, fit

    def _process(self, msg, received: float, received_ros) -> None:
        rgb, intr, fit = self._camera(self._decode(msg), msg.header.frame_id)
        stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        t, stamp_problem = self.clock(stamp_s, received)
        header = Header(stamp=msg.header.stamp, frame_id=msg.header.frame_id)
        if stamp_problem == "stamp_zero":
            header.stamp = received_ros.to_msg()
            self._bad_input(stamp_problem, "image header.stamp is zero: outputs are stamped with the time of "
                            "receipt, filtering and hand_timeout_s use it, latency statistics leave these frames out")
        elif stamp_problem == "stamp_backwards":
            self._bad_input(stamp_problem, f"image header.stamp {stamp_s:.6f} is not later than the previous "
                            "frame's: filtering and hand_timeout_s use the time of receipt for it, latency "
                            "statistics leave it out")
        if not header.frame_id:
            self._bad_input("frame_id", f"input image has an empty header.frame_id; publishing in '{FALLBACK_FRAME}'")
            header.frame_id = FALLBACK_FRAME
        depth = self.depth_buffer.match(stamp_s) if self.depth_buffer is not None else None
        if depth is not None and fit is not None:  # a no-op without distortion
            depth = self.camera.undistorter.depth(depth, fit)
        out = self.pipeline(rgb, intr, t, depth)
        out.post["depth_matched"] = depth is not None
        self._last = out
        if not self._publish_frame(header, out.frame, out.valid):
            return
        done = time.monotonic()
        latency = (self.get_clock().now().nanoseconds * 1e-9 - stamp_s) if stamp_problem is None else float("nan")
        self.stats.record_output(done, latency, done - received)

    def _publish_frame(self, header, frame, valid) -> bool:
        """Publish every output of one frame; False when the node is shutting down."""
        p = self.params
        if not self._running or not self.context.ok():
            return False
        self.pub_hands.publish(conv.two_hands_msg(header, frame, valid, p.publish_mesh, self.model_id,
                                                  self.hand_model_id))
        if self.pub_tf is not None:
            tfs = conv.hand_transforms(header, frame.placed, valid, p.frame_prefix, p.publish_joint_tf)
            if tfs:
                self.pub_tf.publish(TFMessage(transforms=tfs))
        if self.pub_poses is not None:
            for i, side in enumerate(conv.SIDES):
                if valid[i]:
                    self.pub_poses[side].publish(conv.wrist_pose_msg(header, frame.placed.wrist[i],
                                                                     frame.placed.wrist_quaternion[i]))
        now = time.monotonic()
        if self.pub_markers is not None and markers_due(self._markers_sent, now, p.markers_max_rate_hz):
            self._markers_sent = now
            self.pub_markers.publish(conv.hand_markers(header, frame.placed, self.faces, valid, mesh=p.publish_mesh))
        return True

    # ---------------------------------------------------------------- errors, diagnostics
    def _bad_input(self, kind: str, message: str) -> None:
        self.stats.record_error(kind, message, time.monotonic())
        emit, suppressed = self.warn_limiter.should_log(kind)
        if emit:
            extra = f" ({suppressed} similar suppressed)" if suppressed else ""
            self.get_logger().warning(f"[{kind}] {message}{extra}")

    def _publish_diagnostics(self) -> None:
        if not self.context.ok():
            return
        now = time.monotonic()
        snap = self.stats.snapshot(now)
        with self._lock:
            transport = self.transport.snapshot(now)
            intrinsics, cam_level, cam_problems = self.camera.summary()
            undistort_ms = self.camera.undistorter.last_ms if self.camera.fit is not None and \
                self.camera.fit.distortion is not None else None
        topic = self.resolve_topic_name(self.image_topic)
        lost = transport["lost_in_transport"] or 0
        if lost > self._lost_said and self.warn_limiter.should_log("lost_in_transport")[0]:
            self.get_logger().warning(f"[lost_in_transport] {lost - self._lost_said} image(s) published on {topic} "
                                      f"never arrived ({lost} since start): {LOSS_HINT}")
            self._lost_said = lost
        level, problems = assess(HealthInputs(
            received=snap["received"], last_input_age_s=snap["last_input_age_s"], input_rate_hz=snap["input_rate_hz"],
            published_rate_hz=transport["published_rate_hz"], image_timeout_s=self.params.image_timeout_s,
            image_topic=topic))
        if snap["received"] and cam_level:
            level = max(level, cam_level)
            problems += cam_problems
        if snap.get("last_error_age_s") is not None and snap["last_error_age_s"] < 2 * self.params.diagnostics_period_s:
            level = max(level, 1)
            problems.append(f"recent error: {snap.get('last_error', '')}")
        last = self._last
        method, post = (last.method, last.post) if last is not None else ({}, {})
        extra = {}
        if method.get("found") is not None:
            extra["hands_detected"] = method["found"]
            extra["detection"] = method.get("reason", "")
        if "penetration" in post:
            pen = post["penetration"].values()  # measured here, once per period, when resolution is off
            extra["penetration_cm3"] = pen["penetration_cm3"]
            extra["penetration_after_cm3"] = pen["penetration_after_cm3"]
        if self.depth_buffer is not None:
            extra["depth"] = ("matched" if post.get("depth_matched") else "no depth image within "
                              f"{self.params.depth_max_age_s:g} s of the frame")
            extra["depth_used_left_right"] = str(post.get("depth", [False, False]))
        if undistort_ms is not None:
            extra["undistort_ms"] = round(undistort_ms, 2)
        values = {**snap, **transport, **extra, "intrinsics": intrinsics,
                  "device": self.device, "method": self.params.method, "model_id": self.model_id,
                  "image_topic": topic}
        self.pub_diag.publish(conv.diagnostics_msg(self.get_clock().now().to_msg(), f"{self.get_fully_qualified_name()}: hand reconstruction",
                                                   self.model_id, level,
                                                   "; ".join(problems) or "ok", values))

    def destroy_node(self):
        self._running = False
        self.slot.close()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        return super().destroy_node()


def markers_due(last: float | None, now: float, max_rate_hz: float) -> bool:
    """Whether a MarkerArray goes out with the frame processed at ``now`` (seconds, monotonic):
    always when ``max_rate_hz`` is 0 or none was sent yet, else once ``1 / max_rate_hz`` has
    passed since ``last``."""
    return max_rate_hz <= 0 or last is None or now - last >= 1.0 / max_rate_hz


def compressed_topic(node, image_topic: str) -> str:
    """The ``CompressedImage`` topic that goes with ``image_topic``: ``<image topic>/compressed``
    after remapping, as image_transport names it.

    ROS 2 remaps whole names, so ``-r image:=/cam/image`` leaves ``image/compressed`` alone;
    the compressed topic follows the remapped image topic here. An explicit rule for
    ``image/compressed`` itself (the launch file has one) still wins.
    """
    own = f"{image_topic}/compressed"
    remapped = node.resolve_topic_name(own)
    if remapped != node.resolve_topic_name(own, only_expand=True):
        return remapped
    return node.resolve_topic_name(image_topic) + "/compressed"


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``hands_node`` executable (console script and ROS package)."""
    argv = list(sys.argv if args is None else args)
    user_args = argv[1:argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    if "-h" in user_args or "--help" in user_args:
        print(help_text())
        return 0
    rclpy.init(args=argv)
    node = None
    try:
        node = HandsNode()
        rclpy.spin(node)
    except StartupError as e:
        print(f"hands_node: cannot start:\n{e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
