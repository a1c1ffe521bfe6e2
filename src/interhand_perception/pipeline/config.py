"""The configuration of the per-frame pipeline and of ``hands_node``: one table (ROS-free).

:data:`PARAMETERS` is the single source of truth. From it:

* the node declares every entry as a ROS parameter, with its description;
* :func:`validate` turns a plain ``{name: value}`` dict into a checked :class:`NodeParams`
  (range, choice and type checks come from the table; the few rules between parameters are
  written out below), raising :class:`ConfigError` with every problem and how to fix it;
* ``hands_node --help`` (:func:`help_text`), ``config/hands.yaml`` (:func:`render_yaml`) and
  the parameter table of docs/ros_node.md (:func:`render_markdown`) are generated;
  ``interhand params --format yaml|markdown|help`` prints them and tests/test_node_params.py checks that
  the shipped files and :class:`NodeParams` match the table.

Start-up fails on the first invalid value instead of the node limping on with a
half-working configuration.
"""
from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import DEMO_WEIGHTS


class ConfigError(ValueError):
    """An invalid parameter; the message says which and what to change."""


@dataclass(frozen=True)
class Param:
    """One parameter.

    Attributes:
        default: its value when not set (its type is the parameter's: bool, int, float, str,
            list of float).
        description: what it does (help, YAML comment, docs).
        group: the section of config/hands.yaml and of the docs table.
        choices: the allowed values of a string choice.
        lo, hi: the range of a number (``lo_open``: ``lo`` itself not allowed).
        check: what is checked beyond the type: "topic" (a ROS 2 topic name; ``optional``: ""
            allowed), "device", "frame_prefix", "roi", "path" or "" (nothing more).
    """

    default: Any
    description: str
    group: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    check: str = ""
    optional: bool = False

    def range_text(self) -> str:
        """``"one of a | b"``, ``"[0, 1]"``, ``"(0, 179]"`` or ``""``."""
        if self.choices:
            return "one of " + " | ".join(self.choices)
        if self.lo is None:
            return ""
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"


M, T, I, C, F, O, L = "model", "topics", "input", "crop and 3D placement", "smoothing and interpenetration", \
    "outputs", "logging and diagnostics"
PARAMETERS: dict[str, Param] = {
    # --- model
    "method": Param("keypoint_fit", "dir: the DIR network (needs weights) | keypoint_fit: MediaPipe landmarks and a hand-model fit, no weights needed; the method for real cameras until DIR weights trained on real images exist (the shipped DIR demo weights saw synthetic images only)", M, choices=("dir", "keypoint_fit")),
    "checkpoint": Param("", "DIR checkpoint, a .safetensors file written by `interhand train`; empty = the shipped demo weights", M, check="path"),
    "mano_dir": Param("", "folder with MANO_RIGHT.pkl and MANO_LEFT.pkl (licence-gated, not shipped); empty = the built-in hand model", M, check="path"),
    "device": Param("auto", "compute device: auto (CUDA when available, else CPU) | cpu | cuda | cuda:N (GPU number N)", M, check="device"),
    "precision": Param("fp32", "inference precision: fp32 | fp16 (CUDA only; backend pytorch: autocast, weights and hand models fp32; tensorrt: an fp16 engine) | bf16 (CUDA, backend pytorch or auto: autocast) | int8 (backend tensorrt, calibrated on generated images); on the demo weights fp16 moves joints 0.03 mm, bf16 0.24 mm (medians against fp32; docs/performance.md): prefer fp16", M, choices=("fp32", "fp16", "bf16", "int8")),
    "backend": Param("auto", "network backend of method dir: auto (on a CUDA GPU: tensorrt when TensorRT is installed, else pytorch with CUDA graphs; on the CPU: onnxruntime when installed, else pytorch) | pytorch | onnxruntime | tensorrt; ONNX files and TensorRT engines are made on first use and cached in ~/.cache/interhand_perception", M, choices=("auto", "pytorch", "onnxruntime", "tensorrt")),
    "cuda_graph": Param(True, "backend pytorch on a CUDA device: capture normalisation + network forward once at start-up as a CUDA graph and replay it per frame (the eager forward is bound by kernel launches at batch 1); false = the eager forward (the fallback if capture misbehaves); ignored on the CPU", M),
    "cpu_threads": Param(0, "CPU threads of the network backend; 0 = the backend's default (1 is fastest on shared or busy cores)", M, lo=0, hi=256),
    # --- topics
    "image_topic": Param("image", "input image topic; relative names follow the node's namespace and remapping `image` works too; with image_transport compressed the node reads <image_topic>/compressed", T, check="topic"),
    "camera_info_topic": Param("camera_info", "camera_info topic of the same camera", T, check="topic"),
    "output_topic": Param("hands", "TwoHands topic; also the prefix of <output_topic>/markers, /mesh, /left_wrist_pose, /right_wrist_pose", T, check="topic"),
    # --- input
    "image_transport": Param("raw", "raw: sensor_msgs/Image on `image` | compressed: sensor_msgs/CompressedImage on `image/compressed`", I, choices=("raw", "compressed")),
    "image_qos": Param("sensor_data", "QoS of the image and camera_info subscriptions: sensor_data (best effort, depth 5) | reliable (depth 5); only the newest frame is processed either way", I, choices=("sensor_data", "reliable")),
    "camera_info_timeout_s": Param(2.0, "seconds to wait for camera_info before using assumed_hfov_deg instead", I, lo=0.0, hi=3600.0),
    "assumed_hfov_deg": Param(60.0, "horizontal field of view assumed while no camera_info has arrived, degrees", I, lo=0.0, hi=179.0, lo_open=True),
    "distortion": Param("undistort", "lens distortion in camera_info (D not zero): undistort (each image is remapped first, a few ms; for image_raw) | rectified (the image is already rectified, e.g. image_proc's image_rect: intrinsics from camera_info's P, D not applied) | ignore (K as it is, one warning)", I, choices=("undistort", "rectified", "ignore")),
    "max_image_width": Param(8192, "wider images are refused before anything is allocated, pixels", I, lo=1, hi=65535),
    "max_image_height": Param(8192, "taller images are refused before anything is allocated, pixels", I, lo=1, hi=65535),
    # --- crop and 3D placement
    "crop_mode": Param("detect", "method dir: the image region given to the network: detect (MediaPipe finds both hands; for real cameras) | center (largest centred square) | full (whole image, letterboxed) | roi (crop_roi)", C, choices=("center", "full", "roi", "detect")),
    "crop_roi": Param([0.0, 0.0, 0.0], "the square used when crop_mode is roi: [cx, cy, side] in pixels (three doubles, side > 0); ignored otherwise", C, check="roi"),
    "placement": Param("pair", "depth placement of method dir: pair (one depth for the pair from both scales, relative depth from DIR's offset) | per_hand (each hand on its own)", C, choices=("pair", "per_hand")),
    "mirrored": Param(False, "the camera image is a mirror image (selfie / front camera); the node un-mirrors it (and the depth image) first, so outputs stay in the true, right-handed optical frame and sides are the person's own", C),
    "carry_frames": Param(5, "crop_mode detect: missed detections bridged by the last crop before the hands are dropped", C, lo=0, hi=1000),
    "unseen_hand_min_confidence": Param(0.95, "crop_mode detect: a DIR hand the detector did not find counts only above this confidence", C, lo=0.0, hi=1.0),
    "depth_topic": Param("", "aligned depth image (16UC1 mm or 32FC1 m, registered to the colour image, e.g. /camera/aligned_depth_to_color/image_raw) that sets each hand's distance; empty = off", C, check="topic", optional=True),
    "depth_max_age_s": Param(0.05, "largest stamp difference between a colour frame and the depth image used with it, seconds", C, lo=0.0, hi=10.0),
    # --- smoothing and interpenetration
    "smoothing": Param(True, "One Euro smoothing of joints, mesh and wrist poses (identity kept per hand)", F),
    "smoothing_min_cutoff": Param(1.0, "One Euro min cutoff, Hz: lower = steadier when still, more lag (1.0: about 160 ms lag when slow)", F, lo=0.0, hi=1000.0, lo_open=True),
    "smoothing_beta": Param(10.0, "One Euro speed coefficient: higher = less lag when moving, more jitter (10: about 25 ms at 0.3 m/s)", F, lo=0.0, hi=1e6),
    "smoothing_d_cutoff": Param(1.0, "One Euro cutoff of the speed estimate, Hz", F, lo=0.0, hi=1000.0, lo_open=True),
    "hand_timeout_s": Param(0.25, "a hand not seen for this long is published as not valid, seconds", F, lo=0.0, hi=3600.0),
    "resolve_penetration": Param(False, "move the two hands apart when their meshes interpenetrate (always measured, in /diagnostics)", F),
    "min_confidence": Param(0.3, "hands with a lower confidence are published with valid=false", F, lo=0.0, hi=1.0),
    # --- outputs
    "frame_prefix": Param("", "prefix of the published TF frame names, e.g. 'operator/' gives operator/left_wrist (no leading '/')", O, check="frame_prefix"),
    "publish_tf": Param(True, "publish <prefix>left_wrist and <prefix>right_wrist on /tf, children of the image's frame_id", O),
    "publish_joint_tf": Param(False, "also publish the 20 finger-joint frames per hand, <prefix>left_<joint name>, children of the wrist frames", O),
    "publish_markers": Param(True, "publish hands/markers (visualization_msgs/MarkerArray: meshes and skeletons)", O),
    "markers_max_rate_hz": Param(15.0, "hands/markers at most this often (RViz needs no more; one MarkerArray is ~18,000 points, 20-25 ms of Python per frame on a small CPU), so that TwoHands, TF and the wrist poses keep the camera's rate on a GPU; 0 = with every frame", O, lo=0.0, hi=1000.0),
    "publish_wrist_poses": Param(True, "publish hands/left_wrist_pose and hands/right_wrist_pose (geometry_msgs/PoseStamped)", O),
    "publish_mesh": Param(True, "fill Hand.vertices and publish the faces once on hands/mesh (transient local)", O),
    # --- logging and diagnostics
    "warn_period_s": Param(5.0, "at most one warning of each kind per this period, seconds", L, lo=0.0, hi=3600.0),
    "image_timeout_s": Param(2.0, "no image for this long after the last one: /diagnostics reports ERROR (the camera stopped), seconds", L, lo=0.0, hi=3600.0, lo_open=True),
    "diagnostics_period_s": Param(1.0, "period of the status published on /diagnostics, seconds", L, lo=0.0, hi=3600.0, lo_open=True),
}
GROUPS: tuple[str, ...] = (M, T, I, C, F, O, L)

DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
FRAME_PREFIX_RE = re.compile(r"^[A-Za-z0-9_/]*$")
# ROS 2 topic names: letters, digits, '_', '/', optional leading '~'; no '//' and no trailing '/';
# a token must not start with a digit.
TOPIC_RE = re.compile(r"^~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class NodeParams:
    """Validated parameters, in :data:`PARAMETERS`' order (a test checks the names and types);
    see the table for the meaning of each field. ``checkpoint`` is resolved (empty = the demo
    weights), ``mano_dir`` is None when empty, ``crop_roi`` None unless ``crop_mode`` is roi."""

    method: str
    checkpoint: str
    mano_dir: str | None
    device: str
    precision: str
    backend: str
    cuda_graph: bool
    cpu_threads: int
    image_topic: str
    camera_info_topic: str
    output_topic: str
    image_transport: str
    image_qos: str
    camera_info_timeout_s: float
    assumed_hfov_deg: float
    distortion: str
    max_image_width: int
    max_image_height: int
    crop_mode: str
    crop_roi: tuple[float, float, float] | None
    placement: str
    mirrored: bool
    carry_frames: int
    unseen_hand_min_confidence: float
    depth_topic: str
    depth_max_age_s: float
    smoothing: bool
    smoothing_min_cutoff: float
    smoothing_beta: float
    smoothing_d_cutoff: float
    hand_timeout_s: float
    resolve_penetration: bool
    min_confidence: float
    frame_prefix: str
    publish_tf: bool
    publish_joint_tf: bool
    publish_markers: bool
    markers_max_rate_hz: float
    publish_wrist_poses: bool
    publish_mesh: bool
    warn_period_s: float
    image_timeout_s: float
    diagnostics_period_s: float


def check_value(name: str, value: Any) -> tuple[Any, list[str]]:
    """One parameter against its table entry: (the value as its type, problems)."""
    p = PARAMETERS[name]
    d = p.default
    if isinstance(d, bool):
        return bool(value), ([] if isinstance(value, bool) else [f"{name}: expected true or false, got {value!r}"])
    if isinstance(d, (int, float)):
        integer = isinstance(d, int)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            return float("nan"), [f"{name}: expected a finite {'integer' if integer else 'number'}, got {value!r}"]
        if integer and float(value) != int(value):
            return float(value), [f"{name}: expected an integer, got {value!r}"]
        v = int(value) if integer else float(value)
        if v < p.lo or v > p.hi or (p.lo_open and v == p.lo):
            return v, [f"{name}: {value!r} is outside {p.range_text()}"]
        return v, []
    if isinstance(d, list):
        return value, []   # crop_roi: checked with crop_mode in validate()
    if not isinstance(value, str):
        return str(value), [f"{name}: expected a string, got {value!r}"]
    if p.choices and value not in p.choices:
        return value, [f"{name}: {value!r} is not one of {', '.join(p.choices)}"]
    if p.check == "topic" and not TOPIC_RE.match(value) and not (p.optional and value == ""):
        return value, [f"{name}: {value!r} is not a valid ROS 2 topic name (letters, digits, '_' and '/', tokens not "
                       "starting with a digit, e.g. camera/image_raw or /camera/image_raw)"]
    if p.check == "device" and not DEVICE_RE.match(value):
        return value, [f"{name}: {value!r} is not auto, cpu, cuda or cuda:N"]
    if p.check == "frame_prefix" and (not FRAME_PREFIX_RE.match(value) or value.startswith("/")):
        return value, [f"{name}: {value!r} must use letters, digits, '_' and '/' and not start with '/'"]
    return value, []


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
    v = {}
    for name, p in PARAMETERS.items():
        v[name], problems = check_value(name, values.get(name, p.default))
        errors += problems
    # rules between parameters
    ckpt = resolve_checkpoint(v["checkpoint"])
    if v["method"] == "dir" and not ckpt.is_file():
        hint = ("the shipped demo weights are missing from this checkout (weights/ is part of the repository)"
                if not v["checkpoint"] else "set `checkpoint` to a .safetensors file written by `interhand train`")
        errors.append(f"checkpoint: {ckpt} does not exist ({hint})")
    v["checkpoint"] = str(ckpt)
    mano_dir = v["mano_dir"] or None
    if mano_dir is not None:
        d = Path(mano_dir).expanduser()
        missing = [f for f in ("MANO_RIGHT.pkl", "MANO_LEFT.pkl") if not (d / f).is_file()]
        if not d.is_dir():
            errors.append(f"mano_dir: {d} is not a directory (download MANO from https://mano.is.tue.mpg.de, "
                          "see docs 'Real MANO', or leave it empty for the built-in hand model)")
        elif missing:
            errors.append(f"mano_dir: {d} lacks {' and '.join(missing)} (the files of mano_v1_2/models)")
        mano_dir = str(d)
    v["mano_dir"] = mano_dir
    if v["precision"] in ("fp16", "bf16", "int8") and v["device"] == "cpu":
        errors.append(f"precision: {v['precision']} needs a CUDA device; use fp32 with device cpu")
    if v["precision"] == "bf16" and v["backend"] not in ("pytorch", "auto"):
        errors.append("precision: bf16 needs backend pytorch (or auto, which then picks pytorch)")
    if v["precision"] == "int8" and v["backend"] != "tensorrt":
        errors.append("precision: int8 needs backend tensorrt")
    roi = None
    if v["crop_mode"] == "roi":
        r = v["crop_roi"]
        ok = (isinstance(r, (list, tuple)) and len(r) == 3
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x)) for x in r))
        if not ok or float(r[2]) <= 0:
            errors.append(f"crop_roi: crop_mode roi needs [cx, cy, side] in pixels with side > 0, got {r!r}")
        else:
            roi = (float(r[0]), float(r[1]), float(r[2]))
    v["crop_roi"] = roi
    if errors:
        raise ConfigError("invalid hands_node parameters (config/hands.yaml or --ros-args -p):\n  - "
                          + "\n  - ".join(errors))
    return NodeParams(**v)


# ----------------------------------------------------------------------------- generated texts
def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(x) for x in value) + "]"
    return repr(value)


YAML_HEADER = """\
# Parameters of the interhand_perception node `hands_node` (two-hand reconstruction with DIR from
# one RGB camera). Loaded by launch/hands.launch.py (launch argument params_file), or directly:
#   hands_node --ros-args --params-file config/hands.yaml \\
#     -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
# Generated from the parameter table (src/interhand_perception/pipeline/config.py) by
# `interhand params`: the values are the node's defaults. The node refuses to start on an
# unknown name or an invalid value, and says why.
#
# Key: `/**/hands_node` applies to a node named hands_node in any namespace, including the one
# set by the launch argument `namespace` (a plain `hands_node:` key only matches `/hands_node`,
# so under a namespace it would be silently ignored). If the node is renamed (launch `name=`,
# or `-r __node:=other`), change the key to match (e.g. `/**/other:`).
# Types are not converted by ROS 2: doubles need a decimal point (2.0, not 2), integers none.
/**/hands_node:
  ros__parameters:
"""


def render_yaml() -> str:
    """config/hands.yaml: every parameter with its default, description and range, by group."""
    out = [YAML_HEADER.rstrip("\n")]
    for group in GROUPS:
        out.append("")
        out.append(f"    # --- {group} ---")
        for name, p in PARAMETERS.items():
            if p.group != group:
                continue
            text = p.description + "."
            rng = p.range_text()
            if rng and not p.choices:
                text += f" Range {rng}."
            out += textwrap.wrap(text, 96, initial_indent="    # ", subsequent_indent="    # ")
            out.append(f"    {name}: {_yaml_value(p.default)}")
    return "\n".join(out[:1] + out[2:]) + "\n"


#: docs/node.md holds :func:`render_markdown`'s table between these two lines.
MARKDOWN_BEGIN = "<!-- parameter table: generated by `interhand params --format markdown`, checked by a test -->"
MARKDOWN_END = "<!-- end of the parameter table -->"


def render_markdown() -> str:
    """The parameter table of docs/node.md."""
    lines = ["| parameter | default | allowed | what it does |", "| --- | --- | --- | --- |"]
    for group in GROUPS:
        lines.append(f"| **{group}** | | | |")
        for name, p in PARAMETERS.items():
            if p.group == group:
                lines.append(f"| `{name}` | `{_yaml_value(p.default)}` | {p.range_text().replace(' | ', ', ')} | "
                             f"{p.description.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def help_text() -> str:
    """``hands_node --help``."""
    lines = [
        "usage: hands_node [--help] [--ros-args --params-file config/hands.yaml -p NAME:=VALUE -r image:=TOPIC ...]",
        "",
        "Reconstructs two interacting hands (DIR) from a camera stream and publishes them.",
        "Subscribes: image (sensor_msgs/Image) or <image>/compressed (follows a remapping of image),",
        "            camera_info (sensor-data QoS: best effort; with Fast DDS, images over 512 KiB need",
        "            config/fastdds_large_images.xml in the camera driver's process: docs/ros_node.md).",
        "Publishes:  hands (interhand_perception_msgs/TwoHands), hands/markers (MarkerArray),",
        "            hands/{left,right}_wrist_pose (PoseStamped), hands/mesh (HandMesh, transient local),",
        "            /tf (image frame -> <frame_prefix>{left,right}_wrist), /diagnostics.",
        "",
        "parameters (ROS parameters; defaults in config/hands.yaml):",
    ]
    for group in GROUPS:
        lines.append(f"  {group}:")
        for name, p in PARAMETERS.items():
            if p.group == group:
                rng = p.range_text()
                lines.append(f"    {name:<26} default {_yaml_value(p.default)}{'; ' + rng if rng else ''}")
                lines += textwrap.wrap(p.description, 92, initial_indent=" " * 8, subsequent_indent=" " * 8)
    lines += ["", "example: hands_node --ros-args --params-file config/hands.yaml -r image:=/camera/image_raw "
              "-r camera_info:=/camera/camera_info -p device:=cuda"]
    return "\n".join(lines)
