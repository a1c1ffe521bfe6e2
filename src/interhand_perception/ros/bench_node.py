"""The node's own cost per frame, apart from the network (``interhand bench --node``).

Each step is the very function ``hands_node`` runs, timed on the same 640 x 480 frame:
conversion of the message data to RGB (raw rgb8 / bgr8, and a JPEG ``CompressedImage``), the
crop and input normalisation, the network (for scale), the post-processing (network output
to arrays, metric placement), building each output message, and publishing them through real
rclpy publishers to a subscriber in another node (DDS on loopback), so serialisation counts.
Steps are interleaved round-robin in one loop, so that machine noise hits them alike; the
table gives the median and the share of the node's own cost.
"""
from __future__ import annotations

import os
import threading
import time

import cv2
import numpy as np

from ..paths import DEMO_WEIGHTS

W, H = 640, 480


def _frame() -> tuple[np.ndarray, np.ndarray]:
    """A 640 x 480 synthetic camera frame (hands in the centre square) and its intrinsics K."""
    from ..data.synthetic import SyntheticConfig, generate_sample

    s = generate_sample(0, "test", SyntheticConfig(img_size=H))
    frame = np.full((H, W, 3), 60, np.uint8)
    x0 = (W - H) // 2
    frame[:, x0:x0 + H] = s["image"]
    K = s["K"].astype(np.float64).copy()
    K[0, 2] += x0
    return frame, K


def run_node_bench(checkpoint: str = str(DEMO_WEIGHTS), repeats: int = 30, device: str = "cpu",
                   printer=print) -> list[dict]:
    """Time every per-frame step of hands_node; print and return the table rows."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from interhand_perception_msgs.msg import TwoHands
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import MarkerArray

    from ..runtime.image_input import compressed_to_rgb, image_to_rgb, rgb_to_image_data
    from ..runtime.pipeline import FrameProcessor
    from ..runtime.placement import intrinsics_from_camera_info
    from ..runtime.reconstructor import HandReconstructor
    from . import conversions as conv

    rec = HandReconstructor.from_checkpoint(checkpoint, device=device)
    proc = FrameProcessor(rec, "center", None, "pair")
    frame, K = _frame()
    data_rgb, step = rgb_to_image_data(frame, "rgb8")
    data_bgr, _ = rgb_to_image_data(frame, "bgr8")
    img_rgb = Image(width=W, height=H, encoding="rgb8", step=step, data=data_rgb)
    img_bgr = Image(width=W, height=H, encoding="bgr8", step=step, data=data_bgr)
    jpeg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes())
    intr = intrinsics_from_camera_info(K.reshape(-1).tolist(), W, H, W, H)
    header = Header(frame_id="camera_optical_frame")
    valid = np.array([True, True])

    rclpy.init()
    pub_node = rclpy.create_node("bench_hands_node")
    sub_node = rclpy.create_node("bench_listener")
    pubs = {"hands": pub_node.create_publisher(TwoHands, "bench/hands", 5),
            "markers": pub_node.create_publisher(MarkerArray, "bench/markers", 5),
            "tf": pub_node.create_publisher(TFMessage, "bench/tf", 100),
            "pose": pub_node.create_publisher(PoseStamped, "bench/pose", 5)}
    kinds = {"hands": TwoHands, "markers": MarkerArray, "tf": TFMessage, "pose": PoseStamped}
    for name, p in pubs.items():
        sub_node.create_subscription(kinds[name], p.topic_name, lambda m: None, 5)
    ex = SingleThreadedExecutor()
    ex.add_node(sub_node)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    t_end = time.monotonic() + 10.0
    while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < t_end:
        time.sleep(0.05)

    state: dict = {}

    def build():
        f = state["frame"]
        state["msgs"] = (conv.two_hands_msg(header, f, valid, True, "bench", "bench"),
                         conv.hand_markers(header, f.placed, rec.faces, valid),
                         TFMessage(transforms=conv.hand_transforms(header, f.placed, valid)),
                         conv.wrist_pose_msg(header, f.placed.wrist[0], f.placed.wrist_quaternion[0]))

    def publish():
        hands, markers, tf, pose = state["msgs"]
        pubs["hands"].publish(hands)
        pubs["markers"].publish(markers)
        pubs["tf"].publish(tf)
        pubs["pose"].publish(pose)
        pubs["pose"].publish(pose)

    def crop():
        state["crop"], state["box"] = proc.crop(state["rgb"])

    steps = [
        ("decode Image rgb8", lambda: state.__setitem__("rgb", image_to_rgb(img_rgb.data, W, H, "rgb8", step))),
        ("decode Image bgr8", lambda: image_to_rgb(img_bgr.data, W, H, "bgr8", step)),
        ("decode CompressedImage jpeg", lambda: compressed_to_rgb(jpeg.data, "jpeg")),
        ("crop + resize", crop),
        ("normalise to tensor", lambda: rec.preprocess(state["crop"])),
        ("network (for scale)", lambda: state.__setitem__("raw", rec.forward_raw(state["crop"]))),
        ("post-process + placement", lambda: _post_only(rec, state, intr)),
        ("build messages", build),
        ("publish (serialise + DDS)", publish),
    ]
    for _ in range(2):  # warm-up (first calls allocate) and a complete state
        for _name, fn in steps:
            fn()
    times = {name: [] for name, _ in steps}
    for _ in range(repeats):
        for name, fn in steps:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ex.shutdown()
    spinner.join(timeout=5.0)
    pub_node.destroy_node()
    sub_node.destroy_node()
    rclpy.shutdown()

    node_steps = [n for n, _ in steps if n not in ("network (for scale)", "decode Image bgr8", "decode CompressedImage jpeg")]
    node_total = sum(float(np.median(times[n])) for n in node_steps)
    net = float(np.median(times["network (for scale)"]))
    rows = []
    printer(f"hands_node per-frame cost at {W}x{H} ({repeats} rounds, medians; device {rec.device}, "
            f"{os.cpu_count()} CPU cores; node total = raw rgb8 path without the network)")
    header_line = f"{'step':<30}{'median ms':>11}{'p90 ms':>9}{'of node':>9}"
    printer(header_line)
    printer("-" * len(header_line))
    for name, _ in steps:
        med, p90 = float(np.median(times[name])) * 1e3, float(np.percentile(times[name], 90)) * 1e3
        share = f"{100 * med / 1e3 / node_total:7.1f}%" if name in node_steps else "      -"
        rows.append({"step": name, "median_ms": med, "p90_ms": p90})
        printer(f"{name:<30}{med:>11.2f}{p90:>9.2f}{share:>9}")
    printer("-" * len(header_line))
    printer(f"{'node total (without network)':<30}{node_total * 1e3:>11.2f}")
    printer(f"node cost / network time = {node_total / net:.2f}")
    rows.append({"step": "node total", "median_ms": node_total * 1e3, "ratio_to_network": node_total / net})
    return rows


def _post_only(rec, state, intr) -> None:
    from ..runtime.pipeline import FrameResult, pose_and_betas
    from ..runtime.placement import place_hands

    result = rec.postprocess(state["raw"])[0]
    placed = place_hands(result, state["box"], intr, "pair")
    pose, betas = pose_and_betas(result)
    state["frame"] = FrameResult(placed=placed, result=result, box=state["box"], pose=pose, betas=betas,
                                 confidence=np.array([result.left.confidence, result.right.confidence]))
