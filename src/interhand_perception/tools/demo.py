"""``interhand demo``: the node against a synthetic camera, with live accuracy.

What runs, all over real ROS 2 (rclpy + DDS, kept on this machine):

* ``hands_node`` as its own process, started exactly as a user would (``--ros-args
  --params-file config/hands.yaml``), with the demo weights;
* in this process, a ``synthetic_camera`` node that streams rendered two-hand frames from the
  held-out test split (``sensor_msgs/Image`` rgb8 + ``CameraInfo`` with the true intrinsics)
  at a fixed rate, and keeps each frame's ground truth by stamp;
* a listener on ``hands`` and ``hands/mesh`` that matches every ``TwoHands`` to its frame by
  stamp and prints the accuracy as it goes (wrist-relative MPJPE, wrist position error in the
  camera frame), the output rate, the latency and the dropped frames, then writes an overlay
  video (mp4), a PNG strip and ``demo_summary.json``.

Frames are rendered before streaming starts, so that the camera rate is steady. The node runs
``method: dir`` with ``crop_mode: center`` (the synthetic frames show the two hands filling the
image, as DIR's crop) and ``smoothing: false`` (consecutive frames are unrelated scenes, which a
temporal filter would blend); everything else comes from config/hands.yaml.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ..hand_model.joints import SIDES
from ..paths import DEMO_WEIGHTS, NODE_CONFIG
from ..pipeline.decode import rgb_to_image_data



def render_frames(n: int, size: int, seed: int = 0) -> list[dict]:
    """``n`` held-out synthetic frames (test split) with ground truth in the camera frame."""
    from ..data.synthetic import SyntheticConfig, generate_sample, load_models

    models = load_models()
    cfg = SyntheticConfig(img_size=size, seed=seed)
    return [generate_sample(i, "test", cfg, models) for i in range(n)]


def frame_errors(msg, gt: dict) -> dict:
    """Errors of one ``TwoHands`` against its frame's ground truth, millimetres.

    Returns ``mpjpe`` (wrist-relative, both hands), ``wrist`` (mean wrist position error in the
    camera frame), ``depth`` (mean absolute wrist depth error), ``valid`` (hands valid),
    ``sides_ok`` (valid hands whose wrist is nearer its own side's true wrist than the other's:
    left and right told apart) and, with both hands valid, ``rel`` (error of the right-minus-left
    wrist vector, the demo's MRRPE).
    """
    pred = np.array([[[p.x, p.y, p.z] for p in getattr(msg, s).joints] for s in SIDES])  # (2, 21, 3)
    true = gt["joints3d"].astype(np.float64)
    valid = np.array([getattr(msg, s).valid for s in SIDES])
    if not valid.any():
        return {"valid": 0}
    rel = (pred - pred[:, :1]) - (true - true[:, :1])
    mpjpe = np.linalg.norm(rel, axis=-1).mean(axis=1)[valid].mean() * 1000
    wrist = np.linalg.norm(pred[:, 0] - true[:, 0], axis=-1)[valid].mean() * 1000
    depth = np.abs(pred[:, 0, 2] - true[:, 0, 2])[valid].mean() * 1000
    own = np.linalg.norm(pred[:, 0] - true[:, 0], axis=-1)
    other = np.linalg.norm(pred[:, 0] - true[::-1, 0], axis=-1)
    out = {"mpjpe": float(mpjpe), "wrist": float(wrist), "depth": float(depth), "valid": int(valid.sum()),
           "sides_ok": int(((own < other) & valid).sum())}
    if valid.all():
        out["rel"] = float(np.linalg.norm((pred[1, 0] - pred[0, 0]) - (true[1, 0] - true[0, 0])) * 1000)
    return out


def draw_frame(gt: dict, msg, faces: dict | None) -> np.ndarray:
    """The frame with the received hands projected through the true intrinsics (and the truth)."""
    from ..visualization.overlay import SIDE_COLOURS, draw_mesh, draw_skeleton

    img = gt["image"].copy()
    K = gt["K"].astype(np.float64)

    def proj(p):
        q = p @ K.T
        return q[:, :2] / np.maximum(q[:, 2:3], 1e-6)

    for i, side in enumerate(SIDES):
        draw_gt = draw_skeleton(img, proj(gt["joints3d"][i].astype(np.float64)), colour=(0, 0, 0), radius=1)
        img = draw_gt
    if msg is None:
        return img
    for side in SIDES:
        h = getattr(msg, side)
        if not h.valid:
            continue
        if faces is not None and len(h.vertices):
            v = np.frombuffer(h.vertices, dtype=np.float32).reshape(-1, 3).astype(np.float64)
            img = draw_mesh(img, proj(v), v[:, 2], faces[side], SIDE_COLOURS[side], 0.55, verts3d=v)
        j = np.array([[p.x, p.y, p.z] for p in h.joints])
        img = draw_skeleton(img, proj(j))
    return img


def _start_node(args, image_topic: str, info_topic: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "interhand_perception.ros.hands_node", "--ros-args",
           "--params-file", str(NODE_CONFIG), "-p", "method:=dir", "-p", "crop_mode:=center", "-p", "smoothing:=false", "-p", f"checkpoint:={args.checkpoint}",
           "-p", f"device:={args.device}",
           "-r", f"image:={image_topic}", "-r", f"camera_info:={info_topic}", "-r", "__ns:=/demo"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_demo(args) -> dict:
    """Run the demo (``args``: see ``interhand demo --help``); returns the summary dict."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never leave this machine
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    import rclpy
    from interhand_perception_msgs.msg import HandMesh, TwoHands
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"rendering {args.frames} synthetic test frames ({args.size}x{args.size}) ...", flush=True)
    frames = render_frames(args.frames, args.size, args.seed)

    image_topic, info_topic = "/demo/camera/image_raw", "/demo/camera/camera_info"
    node_proc = _start_node(args, image_topic, info_topic, dict(os.environ))
    node_log: list[str] = []
    threading.Thread(target=lambda: [node_log.append(line) for line in node_proc.stdout], daemon=True).start()

    rclpy.init()
    node = rclpy.create_node("synthetic_camera")
    pub_img = node.create_publisher(Image, image_topic, qos_profile_sensor_data)
    pub_info = node.create_publisher(CameraInfo, info_topic, qos_profile_sensor_data)
    received: dict[int, object] = {}
    arrival: dict[int, float] = {}
    faces: dict = {}
    sent_at: dict[int, float] = {}

    def on_hands(msg):
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        received[key] = msg
        arrival[key] = time.monotonic()

    def on_mesh(msg):
        faces["left" if msg.side == HandMesh.LEFT else "right"] = np.frombuffer(msg.faces, np.uint32).reshape(-1, 3)

    node.create_subscription(TwoHands, "/demo/hands", on_hands, 10)
    node.create_subscription(HandMesh, "/demo/hands/mesh", on_mesh,
                             QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,
                                        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    summary: dict = {}
    try:
        print("starting hands_node (loading the model) ...", flush=True)
        deadline = time.monotonic() + args.startup_timeout
        while pub_img.get_subscription_count() == 0 or node.count_publishers("/demo/hands") == 0:
            ex.spin_once(timeout_sec=0.1)
            if node_proc.poll() is not None:
                raise RuntimeError("hands_node exited during start-up:\n" + "".join(node_log[-30:]))
            if time.monotonic() > deadline:
                raise RuntimeError(f"hands_node did not come up within {args.startup_timeout:g} s:\n" + "".join(node_log[-30:]))
        # Warm-up: repeat the first frame until the node answers, so that the best-effort image
        # topic is matched both ways and the first inference (slow) stays out of the statistics.
        warm = 0
        while not received:
            _publish_frame(node, pub_img, pub_info, frames[0], args.size)
            warm += 1
            t_next = time.monotonic() + 1.0
            while time.monotonic() < t_next and not received:
                ex.spin_once(timeout_sec=0.05)
            if node_proc.poll() is not None:
                raise RuntimeError("hands_node exited:\n" + "".join(node_log[-30:]))
            if time.monotonic() > deadline + args.startup_timeout:
                raise RuntimeError("hands_node answers no frame:\n" + "".join(node_log[-30:]))
        received.clear()
        arrival.clear()
        print(f"hands_node is up (answered after {warm} warm-up frame(s)); streaming {len(frames)} frames "
              f"at {args.rate:g} Hz", flush=True)
        period = 1.0 / args.rate
        key_of: dict[int, int] = {}
        t_start = time.monotonic()
        printed = 0
        errs: list[dict] = []
        for i, gt in enumerate(frames):
            t_due = t_start + i * period
            while time.monotonic() < t_due:
                ex.spin_once(timeout_sec=max(0.0, min(0.01, t_due - time.monotonic())))
            stamp = _publish_frame(node, pub_img, pub_info, gt, args.size)
            key = stamp.sec * 1_000_000_000 + stamp.nanosec
            key_of[key] = i
            sent_at[key] = time.monotonic()
            printed = _print_new(received, key_of, frames, arrival, sent_at, errs, printed, len(frames))
        t_end = time.monotonic() + args.drain_timeout
        while time.monotonic() < t_end and sum(k in key_of for k in received) < len(frames):
            ex.spin_once(timeout_sec=0.05)
            if node_proc.poll() is not None:
                break
        _print_new(received, key_of, frames, arrival, sent_at, errs, printed, len(frames))
        summary = _summarise(errs, {k: m for k, m in received.items() if k in key_of},
                             {k: t for k, t in arrival.items() if k in key_of}, len(frames), args)
        _write_outputs(out_dir, frames, received, key_of, faces or None, args)
        summary["outputs"] = sorted(str(p) for p in out_dir.iterdir())
        (out_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    finally:
        if node_proc.poll() is None:
            node_proc.send_signal(signal.SIGINT)
            try:
                node_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node_proc.kill()
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown()
    return summary


def _publish_frame(node, pub_img, pub_info, gt: dict, size: int):
    """Publish one frame and its camera_info, stamped now; returns the stamp."""
    from sensor_msgs.msg import CameraInfo, Image

    stamp = node.get_clock().now().to_msg()
    k = gt["K"].astype(np.float64).reshape(-1).tolist()
    info = CameraInfo(width=size, height=size, distortion_model="plumb_bob", k=k, d=[0.0] * 5,
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0])
    info.header.stamp, info.header.frame_id = stamp, "demo_camera_optical_frame"
    data, step = rgb_to_image_data(gt["image"], "rgb8")
    img = Image(width=size, height=size, encoding="rgb8", step=step, data=data)
    img.header = info.header
    pub_info.publish(info)
    pub_img.publish(img)
    return stamp


def _print_new(received, key_of, frames, arrival, sent_at, errs, printed, total) -> int:
    """Print one line per newly received frame (in stamp order); returns how many were printed."""
    keys = sorted(k for k in received if k in key_of)
    for key in keys[printed:]:
        i = key_of[key]
        e = frame_errors(received[key], frames[i])
        e["latency_ms"] = (arrival[key] - sent_at[key]) * 1000
        e["frame"] = i
        errs.append(e)
        if e["valid"]:
            print(f"frame {i + 1:4d}/{total}  hands {e['valid']}  sides ok {e['sides_ok']}/{e['valid']}  MPJPE "
                  f"{e['mpjpe']:6.1f} mm  wrist error {e['wrist']:6.1f} mm (depth {e['depth']:5.1f})  latency "
                  f"{e['latency_ms']:6.1f} ms", flush=True)
        else:
            print(f"frame {i + 1:4d}/{total}  no valid hand  latency {e['latency_ms']:6.1f} ms", flush=True)
    return len(keys)


def _summarise(errs, received, arrival, total, args) -> dict:
    ok = [e for e in errs if e["valid"]]
    times = sorted(arrival.values())
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    lat = np.array([e["latency_ms"] for e in errs]) if errs else np.zeros(0)

    def mean(key):
        return float(np.mean([e[key] for e in ok])) if ok else float("nan")

    s = {"frames_sent": total, "frames_answered": len(received), "frames_dropped": total - len(received),
         "camera_rate_hz": args.rate, "output_rate_hz": rate,
         "latency_ms_mean": float(lat.mean()) if lat.size else float("nan"),
         "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else float("nan"),
         "mpjpe_mm": mean("mpjpe"), "wrist_error_mm": mean("wrist"), "wrist_depth_error_mm": mean("depth"),
         "sides_correct_pct": (100.0 * sum(e["sides_ok"] for e in ok) / max(1, sum(e["valid"] for e in ok))
                               if ok else float("nan")),
         "right_minus_left_error_mm": (float(np.mean([e["rel"] for e in ok if "rel" in e]))
                                       if any("rel" in e for e in ok) else float("nan")),
         "hands_valid": int(sum(e["valid"] for e in errs)), "checkpoint": str(args.checkpoint)}
    print("\nsummary (hands_node over ROS 2 on this machine):")
    for k, v in s.items():
        print(f"  {k:<26} {v:.1f}" if isinstance(v, float) else f"  {k:<26} {v}")
    return s


def _write_outputs(out_dir: Path, frames, received, key_of, faces, args) -> None:
    by_frame = {i: received[k] for k, i in key_of.items() if k in received}
    tiles = [draw_frame(gt, by_frame.get(i), faces) for i, gt in enumerate(frames)]
    video = out_dir / "demo_overlay.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), float(args.rate), (args.size, args.size))
    if writer.isOpened():
        for t in tiles:
            writer.write(cv2.cvtColor(t, cv2.COLOR_RGB2BGR))
        writer.release()
        print(f"wrote {video}")
    pick = [i for i in sorted(by_frame)][:: max(1, len(by_frame) // 6)][:6] or list(range(min(6, len(tiles))))
    strip = np.concatenate([tiles[i] for i in pick], axis=1)
    cv2.imwrite(str(out_dir / "demo_strip.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    print(f"wrote {out_dir / 'demo_strip.png'} (frames {', '.join(str(i + 1) for i in pick)}; "
          "coloured = hands_node output projected with the camera_info, black = ground truth)")


def add_parser(sub) -> None:
    """The ``interhand demo`` sub-command."""
    d = sub.add_parser(
        "demo", help="run hands_node on a synthetic camera over ROS 2 and print live accuracy",
        description="Start hands_node (its own process, config/hands.yaml, the demo weights) and a synthetic camera "
        "that streams held-out rendered two-hand frames with camera_info over ROS 2 (DDS kept on this machine: "
        "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, own ROS_DOMAIN_ID). Prints accuracy per frame against the ground "
        "truth, then output rate, latency and dropped frames, and writes an overlay video and PNG strip. "
        "Needs the ROS 2 workspace (scripts/setup.sh builds it).")
    d.add_argument("--frames", type=int, default=40, help="frames to stream (default 40)")
    d.add_argument("--rate", type=float, default=5.0, help="camera rate in Hz (default 5; frames the node cannot "
                   "keep up with are dropped, not queued)")
    d.add_argument("--size", type=int, default=256, help="frame size in pixels (square; default 256)")
    d.add_argument("--checkpoint", default=str(DEMO_WEIGHTS), help="weights (default: the demo weights)")
    d.add_argument("--device", default="auto", help="auto | cpu | cuda")
    d.add_argument("--seed", type=int, default=0, help="synthetic test-split seed")
    d.add_argument("--out", default="demo_out", help="output folder (default demo_out/)")
    d.add_argument("--startup-timeout", type=float, default=90.0, help="seconds to wait for the node")
    d.add_argument("--drain-timeout", type=float, default=10.0, help="seconds to wait for the last outputs")
