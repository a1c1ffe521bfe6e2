"""End-to-end cost of hands_node per frame, per network backend (``interhand bench --node``).

Each stage is the very function ``hands_node`` runs, on the same 640 x 480 frame (a held-out
synthetic render in the middle of the frame), from the image message to the published hands:

    decode (Image rgb8 -> RGB) -> detect (MediaPipe two-hand search; crop_mode detect only) ->
    crop + resize -> network incl. the hand-model layer (the backend) -> post-process ->
    lift to 3D (placement in the camera frame) -> refine (smoothing, interpenetration) ->
    build messages -> publish (serialise + DDS to a subscriber in another node, loopback)

plus the keypoint-fit method (decode -> detect -> fit -> refine -> build -> publish). Every
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
    from ..deploy.inference_backends import BackendUnavailable, make_backend

    out = {"pytorch eager": make_backend("pytorch", checkpoint, device=device, threads=threads, fast=False,
                                         channels_last=False),
           "pytorch": make_backend("pytorch", checkpoint, device=device, threads=threads)}
    for kind in ("onnxruntime", "tensorrt"):
        try:
            out[kind] = make_backend(kind, checkpoint, device=device, threads=threads)
        except (BackendUnavailable, ImportError, RuntimeError, ValueError) as e:
            printer(f"({kind} skipped: {str(e).splitlines()[0]})")
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
    from ..runtime.image_input import image_to_rgb, rgb_to_image_data
    from ..runtime.methods import KeypointFitMethod
    from ..runtime.pipeline import FrameProcessor, FrameResult, pose_and_betas
    from ..runtime.placement import intrinsics_from_camera_info, place_hands
    from ..runtime.refine import OutputRefiner, RefineConfig
    from . import conversions as conv

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
    for k, p in pubs.items():
        sub_node.create_subscription(kinds[k], p.topic_name, lambda m: None, 5)
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

    def publish(msgs) -> None:
        hands, markers, tf, poses = msgs
        pubs["hands"].publish(hands)
        pubs["markers"].publish(markers)
        pubs["tf"].publish(tf)
        for pose in poses:
            pubs["pose"].publish(pose)

    def dir_frame(backend, refiner, t) -> dict:
        tm = {}
        t0 = time.perf_counter()
        rgb = image_to_rgb(img_msg.data, W, H, "rgb8", step)
        t1 = time.perf_counter()
        found = find_two_hands(detector, rgb)
        t2 = time.perf_counter()
        crop, box = FrameProcessor(backend, "center").crop(rgb)
        t3 = time.perf_counter()
        raw = backend.forward_raw(crop)
        t4 = time.perf_counter()
        result = backend.postprocess(raw)[0]
        t5 = time.perf_counter()
        placed = place_hands(result, box, intr, "pair")
        t6 = time.perf_counter()
        pose, betas = pose_and_betas(result)
        f = FrameResult(placed=placed, result=result, box=box, pose=pose, betas=betas,
                        confidence=np.array([result.left.confidence, result.right.confidence]))
        f, valid, _ = refiner(f, np.array([True, True]), t, intr)
        t7 = time.perf_counter()
        msgs = build(f, valid)
        t8 = time.perf_counter()
        publish(msgs)
        t9 = time.perf_counter()
        del found
        tm.update(decode=t1 - t0, detect=t2 - t1, crop=t3 - t2, network=t4 - t3, postprocess=t5 - t4,
                  lift_3d=t6 - t5, refine=t7 - t6, build=t8 - t7, publish=t9 - t8)
        return tm

    def fit_frame(refiner, t) -> dict:
        t0 = time.perf_counter()
        rgb = image_to_rgb(img_msg.data, W, H, "rgb8", step)
        t1 = time.perf_counter()
        f, report = fit_method(rgb, intr, t)
        t2 = time.perf_counter()
        valid = f.confidence >= 0.3
        f, valid, _ = refiner(f, valid, t, intr)
        t3 = time.perf_counter()
        msgs = build(f, valid)
        t4 = time.perf_counter()
        publish(msgs)
        t5 = time.perf_counter()
        det = report.get("detect_ms", 0.0) / 1e3
        return {"decode": t1 - t0, "detect": det, "network": (t2 - t1) - det, "refine": t3 - t2,
                "build": t4 - t3, "publish": t5 - t4}

    names = list(variants) + ["keypoint_fit (no network)"]
    refiners = {n: OutputRefiner(RefineConfig(), faces) for n in names}
    times: dict = {n: [] for n in names}
    for r in range(repeats + 2):  # 2 warm-up rounds
        for n in names:
            t = r / 30.0
            tm = fit_frame(refiners[n], t) if n not in variants else dir_frame(variants[n], refiners[n], t)
            if r >= 2:
                times[n].append(tm)
    stop.set()  # ex.shutdown() while ex.spin() ran in the thread sometimes raised InvalidHandle there
    spinner.join(timeout=5.0)
    ex.shutdown()
    pub_node.destroy_node()
    sub_node.destroy_node()
    rclpy.shutdown()
    detector.close()
    return _print_table(times, names, repeats, threads, printer)


STAGES = ("decode", "detect", "crop", "network", "postprocess", "lift_3d", "refine", "build", "publish")


def _print_table(times: dict, names: list, repeats: int, threads, printer) -> list[dict]:
    rows = []
    base = None
    printer(f"hands_node per frame at {W}x{H}, medians of {repeats} rounds in ms, round-robin in one run "
            f"({os.cpu_count()} CPU cores, {threads or 'default'} thread(s); network = incl. the hand-model layer; "
            "keypoint_fit: network = the fit)")
    head = f"{'variant':<26}" + "".join(f"{s:>9}" for s in STAGES) + f"{'e2e med':>9}{'e2e p95':>9}{'FPS':>7}{'x eager':>9}"
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
        printer(f"{n:<26}" + "".join(f"{med[s]:>9.1f}" for s in STAGES)
                + f"{e_med:>9.1f}{e_p95:>9.1f}{row['fps']:>7.1f}{row['ratio_to_eager']:>9.2f}")
    no_detect = [(r["variant"], r["e2e_median_ms"] - r["detect_ms"]) for r in rows if "keypoint" not in r["variant"]]
    printer("without detection (crop_mode center/full/roi): "
            + ", ".join(f"{n} {v:.1f} ms ({1000 / v:.1f} FPS)" for n, v in no_detect))
    return rows
