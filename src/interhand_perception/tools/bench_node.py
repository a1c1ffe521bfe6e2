"""End-to-end cost of hands_node per frame, per network backend (``interhand bench --node``).

Each frame runs what ``hands_node`` runs, on the same 640 x 480 frame (a held-out synthetic
render in the middle of the frame), from the image message to the published hands: decode
(Image rgb8 -> RGB), then the node's ``pipeline.Pipeline`` (stages from its timings: crop +
resize -> network incl. the hand-model layer (the backend) -> lift to 3D (placement in the
camera frame) -> post (smoothing, interpenetration)), then build messages and publish
(serialise + DDS to a subscriber in another node, loopback). DIR runs with ``crop_mode
center``; what ``crop_mode detect`` adds (MediaPipe's two-hand search) is timed on the same
frame and printed below the table. The keypoint-fit method runs the same way (detect -> fit). Every
variant runs round-robin, one frame each in turn, in one process, so that load spikes of this
shared machine hit all alike: compare the ratios. End to end = the sum of one frame's stages
(median and 95th percentile over the rounds), FPS = 1 / median, ratio = against PyTorch eager
(the network as trained, no inference fast paths).
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np

from ..paths import DEMO_WEIGHTS

W, H = 640, 480


def _frame() -> tuple[np.ndarray, np.ndarray]:
    """A 640 x 480 frame (a synthetic render in the centre square, grey around) and its K."""
    from ..data.synthetic import SyntheticConfig, generate_sample

    s = generate_sample(0, "test", SyntheticConfig(img_size=H))
    frame = np.full((H, W, 3), 60, np.uint8)
    x0 = (W - H) // 2
    frame[:, x0:x0 + H] = s["image"]
    K = s["K"].astype(np.float64).copy()
    K[0, 2] += x0
    return frame, K


def _variants(checkpoint: str, device: str, threads: int | None, printer) -> dict:
    """name -> network backend, for every runtime that can run here."""
    from ..network.backends import BackendUnavailable
    from ..network.factory import make_backend

    out = {"pytorch eager": make_backend("pytorch", checkpoint, device=device, threads=threads, fast=False,
                                         channels_last=False),
           "pytorch": make_backend("pytorch", checkpoint, device=device, threads=threads)}
    if device.startswith("cuda"):  # the forward replayed as a CUDA graph (issue 13); eager with a warning if it cannot
        out["pytorch cuda graph"] = make_backend("pytorch", checkpoint, device=device, threads=threads, cuda_graph=True)
    for name in ("onnxruntime", "tensorrt"):
        try:
            out[name] = make_backend(name, checkpoint, device=device, threads=threads)
        except (BackendUnavailable, ImportError, RuntimeError, ValueError) as e:
            printer(f"({name} skipped: {str(e).splitlines()[0]})")
    return out


def run_node_bench(checkpoint: str = str(DEMO_WEIGHTS), repeats: int = 30, device: str = "cpu",
                   threads: int | None = 1, printer=print) -> list[dict]:
    """Time every per-frame stage of hands_node for each backend; print and return the rows."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from interhand_perception_msgs.msg import TwoHands
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import MarkerArray

    from ..detection import MediaPipeHands, find_two_hands
    from ..hand_model import load_hand_model
    from ..pipeline.decode import image_to_rgb, rgb_to_image_data
    from ..pipeline.methods import DIRMethod, KeypointFitMethod
    from ..pipeline.pipeline import Pipeline
    from ..pipeline.placement import intrinsics_from_camera_info
    from ..ros import conversions as conv

    if threads:
        import torch

        torch.set_num_threads(threads)
    variants = _variants(checkpoint, device, threads, printer)
    frame, K = _frame()
    data, step = rgb_to_image_data(frame, "rgb8")
    img_msg = Image(width=W, height=H, encoding="rgb8", step=step, data=data)
    intr = intrinsics_from_camera_info(K.reshape(-1).tolist(), W, H)
    header = Header(frame_id="camera_optical_frame")
    detector = MediaPipeHands()
    models = {s: load_hand_model(s) for s in ("left", "right")}
    faces = {s: np.asarray(m.faces, np.int64) for s, m in models.items()}
    fit_method = KeypointFitMethod(models, detector)

    rclpy.init()
    pub_node, sub_node = rclpy.create_node("bench_hands_node"), rclpy.create_node("bench_listener")
    kinds = {"hands": TwoHands, "markers": MarkerArray, "tf": TFMessage, "pose": PoseStamped}
    pubs = {k: pub_node.create_publisher(t, f"bench/{k}", 100 if k == "tf" else 5) for k, t in kinds.items()}
    taken = [0]  # messages the listener has taken (it runs in this process: see settle())
    for k, p in pubs.items():
        sub_node.create_subscription(kinds[k], p.topic_name, lambda m: taken.__setitem__(0, taken[0] + 1), 5)
    ex = SingleThreadedExecutor()
    ex.add_node(sub_node)
    stop = threading.Event()

    def spin() -> None:  # spin_once in a loop: stopped and joined before the executor is shut down
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    t_end = time.monotonic() + 10.0
    while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < t_end:
        time.sleep(0.05)

    def build(f, valid) -> tuple:
        """Every message hands_node sends for one frame."""
        return (conv.two_hands_msg(header, f, valid, True, "bench", "bench"), conv.hand_markers(header, f.placed, faces, valid),
                TFMessage(transforms=conv.hand_transforms(header, f.placed, valid)),
                [conv.wrist_pose_msg(header, f.placed.wrist[i], f.placed.wrist_quaternion[i]) for i in range(2)])

    def settle(expected: int, timeout: float = 2.0) -> None:
        """Wait, untimed, until the listener has taken ``expected`` messages in all. It shares this
        process and its GIL: deserialising the markers (~18,000 points) while the next variant
        is timed added ~5 ms to that variant's first stages (decode measured 5 ms in the table,
        0.04 ms alone). A real subscriber runs in its own process."""
        end = time.monotonic() + timeout
        while taken[0] < expected and time.monotonic() < end:
            time.sleep(0.001)

    def publish(msgs) -> None:
        hands, markers, tf, poses = msgs
        pubs["hands"].publish(hands)
        pubs["markers"].publish(markers)
        pubs["tf"].publish(tf)
        for pose in poses:
            pubs["pose"].publish(pose)

    def node_frame(pipeline, t) -> dict:
        """One frame as hands_node runs it: decode, the pipeline, messages, publish."""
        t0 = time.perf_counter()
        rgb = image_to_rgb(img_msg.data, W, H, "rgb8", step)
        t1 = time.perf_counter()
        out = pipeline(rgb, intr, t)
        t2 = time.perf_counter()
        msgs = build(out.frame, out.valid)
        t3 = time.perf_counter()
        publish(msgs)
        t4 = time.perf_counter()
        tm = out.timings
        stages = {"decode": t1 - t0, "detect": tm.get("detect", 0.0), "crop": tm.get("crop", 0.0),
                  "network": tm.get("network", tm.get("fit", 0.0)), "lift_3d": tm.get("placement", 0.0),
                  "post": tm["post"], "build": t3 - t2, "publish": t4 - t3}
        stages["method_other"] = max(tm["method"] - sum(stages[k] for k in ("detect", "crop", "network", "lift_3d")), 0.0)
        return stages

    # DIR with a fixed crop (crop_mode center), each backend; the keypoint fit (detector + fit).
    pipelines = {n: Pipeline(DIRMethod(b, "center"), b.hand_models, model_id=n) for n, b in variants.items()}
    pipelines["keypoint_fit (no network)"] = Pipeline(fit_method, models, model_id="keypoint_fit")
    names = list(pipelines)
    times: dict = {n: [] for n in names}
    detect_s = []
    sent = 0
    for r in range(repeats + 2):  # 2 warm-up rounds
        for n in names:
            tm = node_frame(pipelines[n], r / 30.0)
            sent += 5  # hands, markers, tf, two wrist poses
            settle(sent)
            if r >= 2:
                times[n].append(tm)
        t0 = time.perf_counter()  # what crop_mode detect adds to DIR: the two-hand search
        find_two_hands(detector, image_to_rgb(img_msg.data, W, H, "rgb8", step))
        if r >= 2:
            detect_s.append(time.perf_counter() - t0)
    stop.set()  # ex.shutdown() while ex.spin() ran in the thread sometimes raised InvalidHandle there
    spinner.join(timeout=5.0)
    ex.shutdown()
    pub_node.destroy_node()
    sub_node.destroy_node()
    rclpy.shutdown()
    detector.close()
    return _print_table(times, names, repeats, threads, printer, float(np.median(detect_s)) * 1e3)


STAGES = ("decode", "detect", "crop", "network", "lift_3d", "method_other", "post", "build", "publish")


def _print_table(times: dict, names: list, repeats: int, threads, printer, detect_ms: float) -> list[dict]:
    rows = []
    base = None
    printer(f"hands_node per frame at {W}x{H}, medians of {repeats} rounds in ms, round-robin in one run "
            f"({os.cpu_count()} CPU cores, {threads or 'default'} thread(s); DIR with crop_mode center; network = incl. "
            "the hand-model layer; keypoint_fit: network = the fit; post = smoothing + interpenetration)")
    width = {s: max(9, len(s) + 2) for s in STAGES}
    head = (f"{'variant':<26}" + "".join(f"{s:>{width[s]}}" for s in STAGES)
            + f"{'e2e med':>9}{'e2e p95':>9}{'FPS':>7}{'x eager':>9}")
    printer(head)
    printer("-" * len(head))
    for n in names:
        per = times[n]
        med = {s: float(np.median([t.get(s, 0.0) for t in per])) * 1e3 for s in STAGES}
        tot = np.array([sum(t.values()) for t in per]) * 1e3
        e_med, e_p95 = float(np.median(tot)), float(np.percentile(tot, 95))
        base = base or e_med
        row = {"variant": n, **{f"{s}_ms": med[s] for s in STAGES}, "e2e_median_ms": e_med, "e2e_p95_ms": e_p95,
               "fps": 1000.0 / e_med, "ratio_to_eager": e_med / base}
        rows.append(row)
        printer(f"{n:<26}" + "".join(f"{med[s]:>{width[s]}.1f}" for s in STAGES)
                + f"{e_med:>9.1f}{e_p95:>9.1f}{row['fps']:>7.1f}{row['ratio_to_eager']:>9.2f}")
    with_detect = [(r["variant"], r["e2e_median_ms"] + detect_ms) for r in rows if "keypoint" not in r["variant"]]
    printer(f"crop_mode detect adds the two-hand search, {detect_ms:.1f} ms: "
            + ", ".join(f"{n} {v:.1f} ms ({1000 / v:.1f} FPS)" for n, v in with_detect))
    return rows
