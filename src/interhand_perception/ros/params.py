"""The ``hands_node`` parameters: defaults, documentation and validation (ROS-free).

One table, :data:`PARAMETERS`, is the single source of truth: the node declares every entry as
a ROS parameter (with its description), ``config/hands.yaml`` lists the same names, and
:func:`validate` turns a plain ``{name: value}`` dict into a checked :class:`NodeParams`,
raising :class:`ConfigError` with every problem and how to fix it. Start-up fails on the first
invalid value instead of the node limping on with a half-working configuration.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import DEMO_WEIGHTS


class ConfigError(ValueError):
    """An invalid node parameter; the message says which and what to change."""


@dataclass(frozen=True)
class Param:
    default: Any
    description: str


# name -> (default, description). Types follow the defaults (bool, int, float, str, list of float).
PARAMETERS: dict[str, Param] = {
    "method": Param("keypoint_fit", "dir (the DIR network; needs weights) | keypoint_fit (MediaPipe landmarks + hand-model fit; no weights, works on real cameras today)"),
    "backend": Param("auto", "network runtime of method dir: auto (tensorrt on a CUDA GPU with TensorRT, else onnxruntime, else pytorch) | pytorch | onnxruntime | tensorrt"),
    "cpu_threads": Param(0, "CPU threads of the network runtime; 0 = its default (set 1 on shared or busy cores)"),
    "checkpoint": Param("", "DIR checkpoint (.safetensors written by `interhand train`); empty = the shipped demo weights"),
    "mano_dir": Param("", "folder with MANO_RIGHT.pkl and MANO_LEFT.pkl; empty = the hand model the checkpoint was trained with (built-in)"),
    "device": Param("auto", "auto | cpu | cuda | cuda:N (auto = CUDA when available)"),
    "precision": Param("fp32", "fp32 | fp16 (CUDA only) | int8 (backend tensorrt, calibrated on generated images)"),
    "image_topic": Param("image", "input image topic (relative names follow the namespace; remapping `image` works too); compressed: <image_topic>/compressed"),
    "camera_info_topic": Param("camera_info", "camera_info topic of the same camera"),
    "output_topic": Param("hands", "TwoHands topic; the other outputs are <output_topic>/markers, /mesh, /left_wrist_pose, /right_wrist_pose"),
    "image_transport": Param("raw", "raw (sensor_msgs/Image on `image`) | compressed (CompressedImage on `image/compressed`)"),
    "image_qos": Param("sensor_data", "sensor_data (best effort, depth 5) | reliable (reliable, depth 5) for the image and camera_info subscriptions; only the newest frame is processed either way"),
    "frame_prefix": Param("", "prefix of the published TF frames, e.g. 'operator/' gives operator/left_wrist"),
    "publish_tf": Param(True, "publish TF image frame -> <prefix>left_wrist / <prefix>right_wrist"),
    "publish_joint_tf": Param(False, "also publish the 20 finger-joint frames per hand (children of the wrist frames)"),
    "publish_markers": Param(True, "publish hands/markers (MarkerArray: meshes and skeletons)"),
    "publish_wrist_poses": Param(True, "publish hands/left_wrist_pose and hands/right_wrist_pose (PoseStamped)"),
    "publish_mesh": Param(True, "fill Hand.vertices and publish the faces once on hands/mesh (transient local)"),
    "crop_mode": Param("detect", "method dir: detect (MediaPipe finds both hands) | center (largest centred square) | full (whole image, letterboxed) | roi (crop_roi)"),
    "mirrored": Param(False, "the camera image is a mirror image (selfie / front camera): un-mirrored first, so outputs stay in the true optical frame with the person's own sides"),
    "carry_frames": Param(5, "detector misses bridged by the last crop before the hands are dropped (crop_mode detect)"),
    "unseen_hand_min_confidence": Param(0.95, "crop_mode detect: a DIR hand the detector did not find counts only above this confidence"),
    "crop_roi": Param([0.0, 0.0, 0.0], "[cx, cy, side] in pixels of the square the hands are in (crop_mode roi)"),
    "placement": Param("pair", "pair (depth of the pair from both scales, relative depth from DIR's offset) | per_hand"),
    "depth_topic": Param("", "aligned depth image (16UC1 mm or 32FC1 m, registered to the colour image) that sets each hand's distance; empty = off"),
    "depth_max_age_s": Param(0.05, "largest stamp difference between a colour frame and the depth image used with it, seconds"),
    "smoothing": Param(True, "One Euro filtering of joints, mesh and wrist poses (identity kept per hand)"),
    "smoothing_min_cutoff": Param(1.0, "One Euro min cutoff, Hz: lower = steadier when still, more lag"),
    "smoothing_beta": Param(10.0, "One Euro speed coefficient: higher = less lag when moving, more jitter"),
    "smoothing_d_cutoff": Param(1.0, "One Euro cutoff of the speed estimate, Hz"),
    "hand_timeout_s": Param(0.25, "a hand not seen for this long is published as not valid, seconds"),
    "resolve_penetration": Param(False, "move the two hands apart when their meshes interpenetrate (always measured, in /diagnostics)"),
    "assumed_hfov_deg": Param(60.0, "horizontal field of view assumed when no camera_info arrives, degrees (0, 180)"),
    "distortion": Param("undistort", "lens distortion in camera_info (D not zero): undistort (remap each image first; a few ms) | rectified (the image is already rectified, e.g. image_proc's image_rect: intrinsics from P) | ignore (use K, warn once)"),
    "camera_info_timeout_s": Param(2.0, "how long to wait for camera_info before falling back to assumed_hfov_deg, seconds"),
    "min_confidence": Param(0.3, "hands with a lower confidence are published with valid=false, [0, 1]"),
    "max_image_width": Param(8192, "images wider than this are refused before any allocation, pixels"),
    "max_image_height": Param(8192, "images taller than this are refused before any allocation, pixels"),
    "warn_period_s": Param(5.0, "at most one warning of each kind per this period, seconds"),
    "image_timeout_s": Param(2.0, "no image for this long after the last one: /diagnostics reports ERROR (camera stopped), seconds"),
    "diagnostics_period_s": Param(1.0, "period of /diagnostics, seconds"),
}

DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
FRAME_PREFIX_RE = re.compile(r"^[A-Za-z0-9_/]*$")
# ROS 2 topic names: letters, digits, '_', '/', optional leading '~'; no '//' and no trailing '/';
# a token must not start with a digit.
TOPIC_RE = re.compile(r"^~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class NodeParams:
    """Validated parameters; see :data:`PARAMETERS` for the meaning of each field."""

    method: str
    backend: str
    cpu_threads: int
    checkpoint: str
    mano_dir: str | None
    device: str
    precision: str
    image_topic: str
    camera_info_topic: str
    output_topic: str
    image_transport: str
    image_qos: str
    frame_prefix: str
    publish_tf: bool
    publish_joint_tf: bool
    publish_markers: bool
    publish_wrist_poses: bool
    publish_mesh: bool
    crop_mode: str
    crop_roi: tuple[float, float, float] | None
    mirrored: bool
    carry_frames: int
    unseen_hand_min_confidence: float
    placement: str
    depth_topic: str
    depth_max_age_s: float
    smoothing: bool
    smoothing_min_cutoff: float
    smoothing_beta: float
    smoothing_d_cutoff: float
    hand_timeout_s: float
    resolve_penetration: bool
    assumed_hfov_deg: float
    distortion: str
    camera_info_timeout_s: float
    min_confidence: float
    max_image_width: int
    max_image_height: int
    warn_period_s: float
    image_timeout_s: float
    diagnostics_period_s: float


def _choice(errors: list[str], name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        errors.append(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _number(errors: list[str], name: str, value: Any, lo: float, hi: float, integer: bool = False,
            lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        errors.append(f"{name}: expected a finite {'integer' if integer else 'number'}, got {value!r}")
        return float("nan")
    if integer and float(value) != int(value):
        errors.append(f"{name}: expected an integer, got {value!r}")
    v = float(value)
    if v < lo or v > hi or (lo_open and v == lo):
        errors.append(f"{name}: {value!r} is outside {'(' if lo_open else '['}{lo:g}, {hi:g}]")
    return v


def _flag(errors: list[str], name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        errors.append(f"{name}: expected true or false, got {value!r}")
    return bool(value)


def resolve_checkpoint(value: str) -> Path:
    """Empty -> the shipped demo weights; ``~`` expanded."""
    return DEMO_WEIGHTS if not value else Path(value).expanduser()


def validate(values: dict[str, Any]) -> NodeParams:
    """Check every parameter and return :class:`NodeParams`.

    Args:
        values: ``{name: value}``; missing names take their defaults, unknown names are errors
            (a typo in the YAML must not be silently ignored).
    Raises:
        ConfigError: listing every invalid value, what is allowed, and where to change it.
    """
    errors: list[str] = []
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        errors.append(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETERS)}")
    v = {name: values.get(name, p.default) for name, p in PARAMETERS.items()}
    for name in ("checkpoint", "mano_dir", "frame_prefix", "image_topic", "camera_info_topic", "output_topic",
                 "depth_topic"):
        if not isinstance(v[name], str):
            errors.append(f"{name}: expected a string, got {v[name]!r}")
            v[name] = str(v[name])

    method = _choice(errors, "method", v["method"], ("dir", "keypoint_fit"))
    ckpt = resolve_checkpoint(v["checkpoint"])
    if method == "dir" and not ckpt.is_file():
        hint = ("the shipped demo weights are missing from this checkout (weights/ is part of the repository)"
                if not v["checkpoint"] else "set `checkpoint` to a .safetensors file written by `interhand train`")
        errors.append(f"checkpoint: {ckpt} does not exist ({hint})")
    mano_dir = v["mano_dir"] or None
    if mano_dir is not None:
        d = Path(mano_dir).expanduser()
        missing = [f for f in ("MANO_RIGHT.pkl", "MANO_LEFT.pkl") if not (d / f).is_file()]
        if not d.is_dir():
            errors.append(f"mano_dir: {d} is not a directory (download MANO from https://mano.is.tue.mpg.de, "
                          "see README 'Real MANO', or leave it empty for the built-in hand model)")
        elif missing:
            errors.append(f"mano_dir: {d} lacks {' and '.join(missing)} (the files of mano_v1_2/models)")
        mano_dir = str(d)
    for name in ("image_topic", "camera_info_topic", "output_topic", "depth_topic"):
        if not TOPIC_RE.match(v[name]) and not (name == "depth_topic" and v[name] == ""):
            errors.append(f"{name}: {v[name]!r} is not a valid ROS 2 topic name (letters, digits, '_' and '/', "
                          "tokens not starting with a digit, e.g. camera/image_raw or /camera/image_raw)")
    if not isinstance(v["device"], str) or not DEVICE_RE.match(v["device"]):
        errors.append(f"device: {v['device']!r} is not auto, cpu, cuda or cuda:N")
    _choice(errors, "precision", v["precision"], ("fp32", "fp16", "int8"))
    if v["precision"] in ("fp16", "int8") and v["device"] == "cpu":
        errors.append(f"precision: {v['precision']} needs a CUDA device; use fp32 with device cpu")
    backend = _choice(errors, "backend", v["backend"], ("auto", "pytorch", "onnxruntime", "tensorrt"))
    if v["precision"] == "int8" and backend != "tensorrt":
        errors.append("precision: int8 needs backend tensorrt")
    threads = _number(errors, "cpu_threads", v["cpu_threads"], 0, 256, integer=True)
    _choice(errors, "image_transport", v["image_transport"], ("raw", "compressed"))
    _choice(errors, "image_qos", v["image_qos"], ("sensor_data", "reliable"))
    if not FRAME_PREFIX_RE.match(v["frame_prefix"]) or v["frame_prefix"].startswith("/"):
        errors.append(f"frame_prefix: {v['frame_prefix']!r} must use letters, digits, '_' and '/' and not start with '/'")
    flags = {n: _flag(errors, n, v[n]) for n in ("publish_tf", "publish_joint_tf", "publish_markers",
                                                  "publish_wrist_poses", "publish_mesh", "smoothing",
                                                  "resolve_penetration", "mirrored")}
    crop_mode = _choice(errors, "crop_mode", v["crop_mode"], ("center", "full", "roi", "detect"))
    roi = None
    if crop_mode == "roi":
        r = v["crop_roi"]
        ok = (isinstance(r, (list, tuple)) and len(r) == 3
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x)) for x in r))
        if not ok or float(r[2]) <= 0:
            errors.append(f"crop_roi: crop_mode roi needs [cx, cy, side] in pixels with side > 0, got {r!r}")
        else:
            roi = (float(r[0]), float(r[1]), float(r[2]))
    placement = _choice(errors, "placement", v["placement"], ("pair", "per_hand"))
    carry = _number(errors, "carry_frames", v["carry_frames"], 0, 1000, integer=True)
    unseen = _number(errors, "unseen_hand_min_confidence", v["unseen_hand_min_confidence"], 0.0, 1.0)
    depth_age = _number(errors, "depth_max_age_s", v["depth_max_age_s"], 0.0, 10.0)
    min_cutoff = _number(errors, "smoothing_min_cutoff", v["smoothing_min_cutoff"], 0.0, 1000.0, lo_open=True)
    beta = _number(errors, "smoothing_beta", v["smoothing_beta"], 0.0, 1e6)
    d_cutoff = _number(errors, "smoothing_d_cutoff", v["smoothing_d_cutoff"], 0.0, 1000.0, lo_open=True)
    timeout = _number(errors, "hand_timeout_s", v["hand_timeout_s"], 0.0, 3600.0)
    hfov = _number(errors, "assumed_hfov_deg", v["assumed_hfov_deg"], 0.0, 179.0, lo_open=True)
    distortion = _choice(errors, "distortion", v["distortion"], ("undistort", "rectified", "ignore"))
    ci_timeout = _number(errors, "camera_info_timeout_s", v["camera_info_timeout_s"], 0.0, 3600.0)
    min_conf = _number(errors, "min_confidence", v["min_confidence"], 0.0, 1.0)
    max_w = _number(errors, "max_image_width", v["max_image_width"], 1, 65535, integer=True)
    max_h = _number(errors, "max_image_height", v["max_image_height"], 1, 65535, integer=True)
    warn_period = _number(errors, "warn_period_s", v["warn_period_s"], 0.0, 3600.0)
    image_timeout = _number(errors, "image_timeout_s", v["image_timeout_s"], 0.0, 3600.0, lo_open=True)
    diag_period = _number(errors, "diagnostics_period_s", v["diagnostics_period_s"], 0.0, 3600.0, lo_open=True)
    if errors:
        raise ConfigError("invalid hands_node parameters (config/hands.yaml or --ros-args -p):\n  - "
                          + "\n  - ".join(errors))
    return NodeParams(
        method=method, backend=backend, cpu_threads=int(threads), checkpoint=str(ckpt), mano_dir=mano_dir, device=v["device"], precision=v["precision"],
        image_topic=v["image_topic"], camera_info_topic=v["camera_info_topic"], output_topic=v["output_topic"],
        image_transport=v["image_transport"], image_qos=v["image_qos"], frame_prefix=v["frame_prefix"],
        **flags, crop_mode=crop_mode, crop_roi=roi, carry_frames=int(carry), unseen_hand_min_confidence=unseen, placement=placement, depth_topic=v["depth_topic"],
        depth_max_age_s=depth_age, smoothing_min_cutoff=min_cutoff, smoothing_beta=beta, smoothing_d_cutoff=d_cutoff,
        hand_timeout_s=timeout, assumed_hfov_deg=hfov, distortion=distortion,
        camera_info_timeout_s=ci_timeout, min_confidence=min_conf, max_image_width=int(max_w),
        max_image_height=int(max_h), warn_period_s=warn_period, image_timeout_s=image_timeout,
        diagnostics_period_s=diag_period)
