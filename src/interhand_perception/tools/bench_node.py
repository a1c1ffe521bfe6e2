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
                                         channels_last=False, cuda_graph=False),
           "pytorch": make_backend("pytorch", checkpoint, device=device, threads=threads, cuda_graph=False)}
    if device.startswith("cuda"):  # normalise + forward replayed as a CUDA graph (issue 13), the node's default
        for precision in ("fp32", "bf16", "fp16"):
            name = "pytorch cuda graph" + ("" if precision == "fp32" else f" {precision}")
            out[name] = make_backend("pytorch", checkpoint, device=device, threads=threads, precision=precision,
                                     cuda_graph=True)
        out["pytorch cuda graph fp16 NHWC"] = make_backend("pytorch", checkpoint, device=device, threads=threads,
                                                           precision="fp16", cuda_graph=True, channels_last=True)
    for name in ("onnxruntime", "tensorrt"):
        try:
            out[name] = make_backend(name, checkpoint, device=device, threads=threads)
        except (BackendUnavailable, ImportError, RuntimeError, ValueError) as e:
            printer(f"({name} skipped: {str(e).splitlines()[0]})")
    return out


class RosLink:
    """The node's outgoing side for the benchmark: builds every message ``hands_node`` sends for a
    frame and publishes it to a listener node over DDS (loopback, this process).

    The listener shares this process and its GIL: :meth:`settle` waits, untimed, until it has
    taken what was sent. Deserialising the markers (~18,000 points) while the next variant was
    timed added ~5 ms to that variant's first stages (decode measured 5 ms, 0.04 ms alone); a
    real subscriber runs in its own process.
    """

    def __init__(self, faces: dict) -> None:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from interhand_perception_msgs.msg import TwoHands
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Header
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        from ..ros import conversions as conv

        self.rclpy, self.conv, self.faces, self.TFMessage = rclpy, conv, faces, TFMessage
        self.header = Header(frame_id="camera_optical_frame")
        rclpy.init()
        self.pub_node, self.sub_node = rclpy.create_node("bench_hands_node"), rclpy.create_node("bench_listener")
        kinds = {"hands": TwoHands, "markers": MarkerArray, "tf": TFMessage, "pose": PoseStamped}
        self.pubs = {k: self.pub_node.create_publisher(t, f"bench/{k}", 100 if k == "tf" else 5)
                     for k, t in kinds.items()}
        self.taken, self.sent = [0], 0
        for k, pub in self.pubs.items():
            self.sub_node.create_subscription(kinds[k], pub.topic_name,
                                              lambda m: self.taken.__setitem__(0, self.taken[0] + 1), 5)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.sub_node)
        self.stop = threading.Event()
        self.spinner = threading.Thread(target=self._spin, daemon=True)
        self.spinner.start()
        t_end = time.monotonic() + 10.0
        while any(p.get_subscription_count() == 0 for p in self.pubs.values()) and time.monotonic() < t_end:
            time.sleep(0.05)

    def _spin(self) -> None:  # spin_once in a loop: stopped and joined before the executor is shut down
        while not self.stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def send(self, frame, valid) -> tuple[float, float]:
        """Publish one frame's messages in the node's order: ``TwoHands`` first, then the RViz
        markers, TF and wrist poses. Returns (seconds to build and publish ``TwoHands``,
        seconds for the rest)."""
        conv, h = self.conv, self.header
        t0 = time.perf_counter()
        self.pubs["hands"].publish(conv.two_hands_msg(h, frame, valid, True, "bench", "bench"))
        t1 = time.perf_counter()
        self.pubs["markers"].publish(conv.hand_markers(h, frame.placed, self.faces, valid))
        self.pubs["tf"].publish(self.TFMessage(transforms=conv.hand_transforms(h, frame.placed, valid)))
        for i in range(2):
            self.pubs["pose"].publish(conv.wrist_pose_msg(h, frame.placed.wrist[i], frame.placed.wrist_quaternion[i]))
        t2 = time.perf_counter()
        self.sent += 5
        return t1 - t0, t2 - t1

    def settle(self, timeout: float = 2.0) -> None:
        """Wait, untimed, until the listener has taken everything sent."""
        end = time.monotonic() + timeout
        while self.taken[0] < self.sent and time.monotonic() < end:
            time.sleep(0.001)

    def close(self) -> None:
        self.stop.set()  # executor.shutdown() while spin() ran in the thread sometimes raised InvalidHandle
        self.spinner.join(timeout=5.0)
        self.executor.shutdown()
        self.pub_node.destroy_node()
        self.sub_node.destroy_node()
        self.rclpy.shutdown()


def _detector(printer):
    """MediaPipe's hand detector, or None (printed) where it is not installed (e.g. a GPU box)."""
    from ..detection import DetectorUnavailable, MediaPipeHands

    detector = MediaPipeHands()
    try:
        detector.detect(np.zeros((64, 64, 3), np.uint8))
    except DetectorUnavailable as e:
        printer(f"(keypoint_fit and crop_mode detect skipped: {str(e).splitlines()[0]})")
        return None
    return detector


def run_node_bench(checkpoint: str = str(DEMO_WEIGHTS), repeats: int = 30, device: str = "cpu",
                   threads: int | None = 1, printer=print, ros: bool = True) -> list[dict]:
    """Time every per-frame stage of hands_node for each backend; print and return the rows.

    ``ros=False`` (machines without ROS 2, e.g. a lent GPU box) times decode and the pipeline
    only: build and publish, CPU work that no GPU changes, are left out (0 in the table).
    """
    from ..detection import find_two_hands
    from ..hand_model import load_hand_model
    from ..pipeline.decode import image_to_rgb, rgb_to_image_data
    from ..pipeline.methods import DIRMethod, KeypointFitMethod
    from ..pipeline.pipeline import Pipeline
    from ..pipeline.placement import intrinsics_from_camera_info

    if threads:
        import torch

        torch.set_num_threads(threads)
    variants = _variants(checkpoint, device, threads, printer)
    frame, K = _frame()
    data, step = rgb_to_image_data(frame, "rgb8")  # what an Image message (rgb8) carries
    intr = intrinsics_from_camera_info(K.reshape(-1).tolist(), W, H)
    models = {s: load_hand_model(s) for s in ("left", "right")}
    detector = _detector(printer)
    link = RosLink({s: np.asarray(m.faces, np.int64) for s, m in models.items()}) if ros else None
    if link is None:
        printer("(no ROS 2: build and publish not timed)")

    def node_frame(pipeline, t) -> dict:
        """One frame as hands_node runs it: decode, the pipeline, messages, publish."""
        t0 = time.perf_counter()
        rgb = image_to_rgb(data, W, H, "rgb8", step)
        t1 = time.perf_counter()
        out = pipeline(rgb, intr, t)
        hands_msg, other_msgs = link.send(out.frame, out.valid) if link is not None else (0.0, 0.0)
        tm = out.timings
        stages = {"decode": t1 - t0, "detect": tm.get("detect", 0.0), "crop": tm.get("crop", 0.0),
                  "network": tm.get("network", tm.get("fit", 0.0)), "lift_3d": tm.get("placement", 0.0),
                  "post": tm["post"], "hands_msg": hands_msg, "other_msgs": other_msgs}
        stages["method_other"] = max(tm["method"] - sum(stages[k] for k in ("detect", "crop", "network", "lift_3d")), 0.0)
        return stages

    # DIR with a fixed crop (crop_mode center), each backend; the keypoint fit (detector + fit).
    pipelines = {n: Pipeline(DIRMethod(b, "center"), b.hand_models, model_id=n) for n, b in variants.items()}
    if detector is not None:
        pipelines["keypoint_fit (no network)"] = Pipeline(KeypointFitMethod(models, detector), models,
                                                          model_id="keypoint_fit")
    names = list(pipelines)
    times: dict = {n: [] for n in names}
    detect_s = []
    try:
        for r in range(repeats + 2):  # 2 warm-up rounds
            for n in names:
                tm = node_frame(pipelines[n], r / 30.0)
                if link is not None:
                    link.settle()
                if r >= 2:
                    times[n].append(tm)
            if detector is not None:
                t0 = time.perf_counter()  # what crop_mode detect adds to DIR: the two-hand search
                find_two_hands(detector, image_to_rgb(data, W, H, "rgb8", step))
                if r >= 2:
                    detect_s.append(time.perf_counter() - t0)
    finally:
        if link is not None:
            link.close()
        if detector is not None:
            detector.close()
    detect_ms = float(np.median(detect_s)) * 1e3 if detect_s else None
    return _print_table(times, names, repeats, threads, printer, detect_ms)


STAGES = ("decode", "detect", "crop", "network", "lift_3d", "method_other", "post", "hands_msg", "other_msgs")
#: The stages up to ``TwoHands`` published (the node publishes it before the other messages).
TO_HANDS = STAGES[:STAGES.index("hands_msg") + 1]


def _print_table(times: dict, names: list, repeats: int, threads, printer, detect_ms: float | None) -> list[dict]:
    rows = []
    base = None
    printer(f"hands_node per frame at {W}x{H}, medians of {repeats} rounds in ms, round-robin in one run "
            f"({os.cpu_count()} CPU cores, {threads or 'default'} thread(s); DIR with crop_mode center; network = incl. "
            "the hand-model layer; keypoint_fit: network = the fit; post = smoothing (+ interpenetration when resolve_penetration is on; measured only when read otherwise); hands_msg = "
            "build + publish TwoHands; other_msgs = RViz markers, TF, wrist poses, sent after it; to TwoHands = "
            "image message in to TwoHands out; e2e = all messages out)")
    width = {s: max(9, len(s) + 2) for s in STAGES}
    head = (f"{'variant':<30}" + "".join(f"{s:>{width[s]}}" for s in STAGES)
            + f"{'to TwoHands':>13}{'e2e med':>9}{'e2e p95':>9}{'FPS':>7}{'x eager':>9}")
    printer(head)
    printer("-" * len(head))
    for n in names:
        per = times[n]
        med = {s: float(np.median([t.get(s, 0.0) for t in per])) * 1e3 for s in STAGES}
        to_hands = float(np.median([sum(t[s] for s in TO_HANDS) for t in per])) * 1e3
        tot = np.array([sum(t.values()) for t in per]) * 1e3
        e_med, e_p95 = float(np.median(tot)), float(np.percentile(tot, 95))
        base = base or e_med
        row = {"variant": n, **{f"{s}_ms": med[s] for s in STAGES}, "to_two_hands_ms": to_hands,
               "e2e_median_ms": e_med, "e2e_p95_ms": e_p95, "fps": 1000.0 / e_med, "ratio_to_eager": e_med / base}
        rows.append(row)
        printer(f"{n:<30}" + "".join(f"{med[s]:>{width[s]}.1f}" for s in STAGES)
                + f"{to_hands:>13.1f}{e_med:>9.1f}{e_p95:>9.1f}{row['fps']:>7.1f}{row['ratio_to_eager']:>9.2f}")
    if detect_ms is None:
        return rows
    with_detect = [(r["variant"], r["e2e_median_ms"] + detect_ms) for r in rows if "keypoint" not in r["variant"]]
    printer(f"crop_mode detect adds the two-hand search, {detect_ms:.1f} ms: "
            + ", ".join(f"{n} {v:.1f} ms ({1000 / v:.1f} FPS)" for n, v in with_detect))
    return rows
