"""Numpy results -> ROS 2 messages (no node, no rclpy context needed).

Every function takes plain arrays plus the input image's ``std_msgs/Header`` and returns
message objects; the node only wires them to publishers, and the tests and the benchmark call
them directly. Conventions (REP 103): metres, the input image's optical frame, the input stamp.
"""
from __future__ import annotations

import array
import gc

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, TransformStamped, Vector3
from interhand_perception_msgs.msg import Hand, HandMesh, TwoHands
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ..hand_model.joints import BONES, JOINT_NAMES, JOINT_PARENTS, SIDES

#: RGBA per hand in RViz (left blue, right orange), as in the project's overlays.
HAND_COLOURS = {"left": (0.25, 0.55, 1.0, 0.8), "right": (1.0, 0.55, 0.15, 0.8)}
NUM_POSE = 48
NUM_BETAS = 10


def _points(xyz: np.ndarray) -> list:
    """(N, 3) -> list of geometry_msgs/Point (one Python object per row; the slow part).

    The cyclic garbage collector is paused while the objects are made: thousands of new
    objects trigger collections that traverse the growing list, which made a mesh marker
    (about 9,000 points) 3.5x slower (25 vs 7 ms here). Nothing built here forms a cycle.
    """
    rows = np.asarray(xyz, dtype=np.float64).tolist()
    enabled = gc.isenabled()
    gc.disable()
    try:
        return [Point(x=x, y=y, z=z) for x, y, z in rows]
    finally:
        if enabled:
            gc.enable()


def _quat(q_xyzw: np.ndarray) -> Quaternion:
    x, y, z, w = (float(v) for v in q_xyzw)
    return Quaternion(x=x, y=y, z=z, w=w)


def hand_msg(side: str, valid: bool, confidence: float, joints: np.ndarray, pose: np.ndarray,
             betas: np.ndarray, wrist: np.ndarray, wrist_quat_xyzw: np.ndarray,
             vertices: np.ndarray | None) -> Hand:
    """One ``Hand``.

    Args:
        side: "left" or "right".
        valid: False publishes zeros everywhere (fixed array lengths kept).
        joints: (21, 3) metres, camera frame.
        pose: (48,) global axis-angle + 15 x 3 finger axis-angle (mean included).
        betas: (10,) shape.
        wrist: (3,) metres; wrist_quat_xyzw: (4,) (x, y, z, w).
        vertices: (V, 3) metres or None (mesh output off).
    """
    msg = Hand()
    msg.side = Hand.LEFT if side == "left" else Hand.RIGHT
    msg.side_name = side
    msg.valid = bool(valid)
    if not valid:
        msg.confidence = float(confidence)
        msg.joints = [Point() for _ in JOINT_NAMES]
        msg.pose = array.array("f", bytes(4 * NUM_POSE))
        msg.betas = array.array("f", bytes(4 * NUM_BETAS))
        msg.wrist_pose = Pose()
        msg.wrist_pose.orientation.w = 1.0
        return msg
    msg.confidence = float(confidence)
    msg.joints = _points(joints)
    msg.pose = array.array("f", np.asarray(pose, dtype=np.float32).reshape(NUM_POSE).tobytes())
    msg.betas = array.array("f", np.asarray(betas, dtype=np.float32).reshape(-1)[:NUM_BETAS].tobytes())
    msg.wrist_pose = Pose(position=Point(x=float(wrist[0]), y=float(wrist[1]), z=float(wrist[2])),
                          orientation=_quat(wrist_quat_xyzw))
    if vertices is not None:
        msg.vertices = array.array("f", np.ascontiguousarray(vertices, dtype=np.float32).tobytes())
    return msg


def two_hands_msg(header: Header, frame, valid: np.ndarray, include_vertices: bool, model_id: str,
                  hand_model_id: str) -> TwoHands:
    """The pair message of one frame.

    Args:
        header: the input image's header (stamp and frame_id are copied).
        frame: a :class:`~interhand_perception.pipeline.frame.FrameResult` (``placed``,
            ``confidence``, ``pose``, ``betas``).
        valid: (2,) bool, left and right.
        include_vertices: fill ``Hand.vertices``.
    """
    placed = frame.placed
    msg = TwoHands(header=header, model_id=model_id, hand_model_id=hand_model_id)
    for i, side in enumerate(SIDES):
        setattr(msg, side, hand_msg(side, bool(valid[i]), float(frame.confidence[i]), placed.joints[i], frame.pose[i],
                                    frame.betas[i], placed.wrist[i], placed.wrist_quaternion[i],
                                    placed.vertices[i] if include_vertices else None))
    d = placed.right_minus_left if bool(valid.all()) else np.zeros(3)
    msg.right_minus_left = Vector3(x=float(d[0]), y=float(d[1]), z=float(d[2]))
    return msg


def wrist_pose_msg(header: Header, wrist: np.ndarray, quat_xyzw: np.ndarray) -> PoseStamped:
    """PoseStamped of one wrist in the image frame. wrist: (3,), quat_xyzw: (4,)."""
    return PoseStamped(header=header, pose=Pose(position=Point(x=float(wrist[0]), y=float(wrist[1]), z=float(wrist[2])),
                                                orientation=_quat(quat_xyzw)))


def hand_transforms(header: Header, placed, valid: np.ndarray, prefix: str = "",
                    joint_frames: bool = False) -> list:
    """TF: image frame -> ``<prefix>{left,right}_wrist`` (+ per-joint frames).

    The wrist frame is the hand model's root frame (its rotation is ``pose[0:3]``). Joint frames
    ``<prefix><side>_<joint>`` are children of their side's wrist frame, positioned at the joint
    (translation expressed in the wrist frame) with the wrist's orientation: positions only.
    Invalid hands publish nothing (a stale transform is better left to expire than faked).

    Args:
        header: the input image's header (parent frame = its frame_id, stamp copied).
        placed: :class:`~interhand_perception.pipeline.placement.PlacedHands`.
        valid: (2,) bool.
    Returns:
        list of geometry_msgs/TransformStamped.
    """
    out = []
    for i, side in enumerate(SIDES):
        if not valid[i]:
            continue
        wrist_frame = f"{prefix}{side}_wrist"
        t = TransformStamped(header=Header(stamp=header.stamp, frame_id=header.frame_id), child_frame_id=wrist_frame)
        w = placed.wrist[i]
        t.transform.translation = Vector3(x=float(w[0]), y=float(w[1]), z=float(w[2]))
        t.transform.rotation = _quat(placed.wrist_quaternion[i])
        out.append(t)
        if joint_frames:
            rel = (placed.joints[i] - w) @ placed.wrist_rotation[i]  # R^T (p - w), rows
            for j in range(1, len(JOINT_NAMES)):
                tj = TransformStamped(header=Header(stamp=header.stamp, frame_id=wrist_frame),
                                      child_frame_id=f"{prefix}{side}_{JOINT_NAMES[j]}")
                tj.transform.translation = Vector3(x=float(rel[j, 0]), y=float(rel[j, 1]), z=float(rel[j, 2]))
                tj.transform.rotation.w = 1.0
                out.append(tj)
    return out


def _marker(header: Header, ns: str, mid: int, kind: int, rgba, lifetime_s: float) -> Marker:
    m = Marker(header=header, ns=ns, id=mid, type=kind, action=Marker.ADD)
    m.pose.orientation.w = 1.0
    m.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
    sec = int(lifetime_s)
    m.lifetime = Duration(sec=sec, nanosec=int((lifetime_s - sec) * 1e9))
    return m


def hand_markers(header: Header, placed, faces: dict, valid: np.ndarray, mesh: bool = True,
                 lifetime_s: float = 1.0) -> MarkerArray:
    """RViz markers: per valid hand a mesh (TRIANGLE_LIST) and a skeleton (LINE_LIST + joints).

    Namespaces ``<side>_mesh``, ``<side>_skeleton`` and ``<side>_joints``; invalid hands get
    DELETE actions so that RViz clears them at once.

    Args:
        faces: {side: (F, 3) int} triangles.
        valid: (2,) bool.
        lifetime_s: markers vanish this long after the last update (node stopped, hand lost).
    """
    arr = MarkerArray()
    bones = np.asarray(BONES, dtype=np.int64).reshape(-1)
    for i, side in enumerate(SIDES):
        rgba = HAND_COLOURS[side]
        if not valid[i]:
            for ns in ("mesh", "skeleton", "joints"):
                arr.markers.append(Marker(header=header, ns=f"{side}_{ns}", id=0, action=Marker.DELETE))
            continue
        if mesh:
            m = _marker(header, f"{side}_mesh", 0, Marker.TRIANGLE_LIST, rgba, lifetime_s)
            m.scale.x = m.scale.y = m.scale.z = 1.0
            m.points = _points(placed.vertices[i][np.asarray(faces[side]).reshape(-1)])
            arr.markers.append(m)
        line = _marker(header, f"{side}_skeleton", 0, Marker.LINE_LIST, (rgba[0], rgba[1], rgba[2], 1.0), lifetime_s)
        line.scale.x = 0.004  # line width, metres
        line.points = _points(placed.joints[i][bones])
        arr.markers.append(line)
        dots = _marker(header, f"{side}_joints", 0, Marker.SPHERE_LIST, (1.0, 1.0, 1.0, 1.0), lifetime_s)
        dots.scale.x = dots.scale.y = dots.scale.z = 0.008
        dots.points = _points(placed.joints[i])
        arr.markers.append(dots)
    return arr


def hand_mesh_msg(header: Header, side: str, faces: np.ndarray, num_vertices: int, hand_model_id: str) -> HandMesh:
    """The once-per-side faces message. faces: (F, 3) int."""
    return HandMesh(header=header, hand_model_id=hand_model_id, side=HandMesh.LEFT if side == "left" else HandMesh.RIGHT,
                    faces=array.array("I", np.ascontiguousarray(faces, dtype=np.uint32).tobytes()),
                    num_vertices=int(num_vertices))


def diagnostics_msg(stamp, name: str, hardware_id: str, level: int, message: str, values: dict) -> DiagnosticArray:
    """One ``DiagnosticStatus`` in a ``DiagnosticArray``. level: 0 OK, 1 WARN, 2 ERROR, 3 STALE."""
    status = DiagnosticStatus(level=bytes([int(level)]), name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def joint_parent_names() -> dict:
    """{joint name: parent joint name} of the 21-joint skeleton (documentation and tests)."""
    return {JOINT_NAMES[c]: JOINT_NAMES[p] for c, p in enumerate(JOINT_PARENTS) if p >= 0}
