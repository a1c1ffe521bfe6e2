"""Per-stage CPU latency of the network runtimes, measured side by side (docs/cpu_speed.md).

Why this shape: the development machine is 2 shared cores with a training job beside us, so
absolute times swing by 2x between minutes. Every variant therefore runs round-robin, one
frame each in turn, in one process: a load spike hits all of them alike and the *ratios* of
medians are what the table is for. Stages per frame (640x480 RGB, centre crop):

crop -> preprocess (uint8 -> normalised) -> network (incl. the hand models) -> postprocess
(-> ``TwoHandResult``) -> placement (camera frame). The hand models' share of "network" is
measured apart: in PyTorch by timing ``model.decode`` inside the forward pass, for ONNX Runtime
with the decoder alone exported as a small graph, run 3 times (once per stage), as it would be
if the hand model were a separate graph.

Run: ``python -m interhand_perception.tools.backend_bench --threads 1 --repeats 200``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..dir_net.crop import crop_image
from ..paths import DEMO_WEIGHTS
from ..dir_net.checkpoint import file_sha256
from ..network.export_onnx import export_model
from ..network.parity import parity_images
from ..pipeline.placement import Intrinsics, place_hands

STAGES = ("crop", "preprocess", "network", "postprocess", "placement", "total")


class DecodeTimer:
    """Wraps ``model.decode`` (plain or batched) and sums its wall time per forward pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.inner, self.seconds = model.decode, 0.0
        object.__setattr__(model, "decode", self)

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.inner(*args, **kwargs)
        self.seconds += time.perf_counter() - t0
        return out


def torch_variant(model, preprocess: Callable, postprocess: Callable) -> Callable:
    """Stage functions of a PyTorch network: (preprocess, network, postprocess, hand-model timer)."""
    timer = DecodeTimer(model)

    def network(x):
        with torch.inference_mode():
            return model(x)

    def post(pred):
        with torch.inference_mode():
            return postprocess(pred)

    return preprocess, network, post, timer


def ort_variant(backend) -> tuple:
    """Stage functions of an ``OnnxRuntimeBackend`` (the adapter counts as postprocess)."""
    from ..network.export_onnx import onnx_outputs_to_pred

    return (backend.preprocess, backend.run,
            lambda outs: backend.postprocess(onnx_outputs_to_pred(outs, backend.output_names)), None)


def decoder_session(model, path: Path, threads: int, batched: bool):
    """An ONNX Runtime session of ``model.decode`` alone: (session, feed) for one frame."""
    import onnxruntime as ort

    from ..network.backends import session_options

    decoder = model.decode_pair if batched else model.decode_each  # both hands in one call, or side by side

    class Decode(torch.nn.Module):
        def forward(self, left, right, offset):
            out = decoder({"left": left, "right": right}, offset)
            return tuple(out[k][s] for k in ("verts", "joints", "joints2d", "verts2d") for s in ("left", "right"))

    p = torch.zeros(1, model.config.num_params)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Decode(), (p, p.clone(), torch.zeros(1, 3)), str(path), dynamo=False, opset_version=17,
                          input_names=["left", "right", "offset"])
    sess = ort.InferenceSession(str(path), session_options(ort, threads), providers=["CPUExecutionProvider"])
    feed = {"left": p.numpy(), "right": p.numpy(), "offset": np.zeros((1, 3), np.float32)}
    return sess, {i.name: feed[i.name] for i in sess.get_inputs()}  # offset is unused, hence pruned


def build_variants(checkpoint, threads: int, workdir: Path) -> dict:
    """name -> (preprocess, network, postprocess, decode timer or None)."""
    from ..network.factory import make_backend
    from ..network.reconstructor import HandReconstructor

    torch.set_num_threads(threads)
    plain = HandReconstructor.from_checkpoint(checkpoint, device="cpu")
    fast = make_backend("pytorch", checkpoint, device="cpu", threads=threads, channels_last=False)
    fast_cl = make_backend("pytorch", checkpoint, device="cpu", threads=threads)  # the backend's default
    meta = {"checkpoint_sha256": file_sha256(checkpoint), "hand_models": json.dumps(plain.hand_model_ids)}
    graphs = {kind: export_model(plain.model, workdir / f"{kind}.onnx", metadata=meta, fast_paths=kind == "fast")
              for kind in ("plain", "fast")}
    ort_plain, ort_fast = (make_backend("onnxruntime", checkpoint, device="cpu", threads=threads, onnx_path=graphs[k])
                           for k in ("plain", "fast"))
    return {
        "torch eager (before)": torch_variant(plain.model, plain.preprocess, plain.postprocess),
        "torch + fast paths": torch_variant(fast.model, fast.preprocess, fast.postprocess),
        "torch + fast paths + channels-last": torch_variant(fast_cl.model, fast_cl.preprocess, fast_cl.postprocess),
        "ORT, plain graph": ort_variant(ort_plain),
        "ORT, fast graph": ort_variant(ort_fast),
    }, plain


def run_frame(stages: tuple, frame: np.ndarray, box: np.ndarray, intr: Intrinsics, size: int) -> dict:
    """One frame through the stage functions; seconds per stage (+ "hand_model" when timed)."""
    preprocess, network, postprocess, timer = stages
    if timer is not None:
        timer.seconds = 0.0
    t = [time.perf_counter()]
    crop = crop_image(frame, box, size)
    t.append(time.perf_counter())
    x = preprocess(crop)
    t.append(time.perf_counter())
    raw = network(x)
    t.append(time.perf_counter())
    result = postprocess(raw)[0]
    t.append(time.perf_counter())
    place_hands(result, box, intr)
    t.append(time.perf_counter())
    out = {name: t[i + 1] - t[i] for i, name in enumerate(STAGES[:-1])}
    out["total"] = t[-1] - t[0]
    if timer is not None:
        out["hand_model"] = timer.seconds
    return out


def summarise(samples: list[float]) -> tuple[float, float]:
    """(median, p95) in milliseconds."""
    ms = sorted(s * 1e3 for s in samples)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def compare(checkpoint=DEMO_WEIGHTS, threads: int = 1, repeats: int = 100, warmup: int = 5,
            printer: Callable = print) -> dict:
    """Measure every variant round-robin and print a markdown table; returns {variant: {stage: (med, p95)}}."""
    with tempfile.TemporaryDirectory() as tmp:
        variants, plain = build_variants(checkpoint, threads, Path(tmp))
        size = plain.img_size
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[240 - size // 2:240 + size // 2, 320 - size // 2:320 + size // 2] = parity_images(1, size)[0]
        box = np.array([320.0, 240.0, float(size)])
        intr = Intrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
        decoders = {f"ORT hand model alone x3 ({kind})": decoder_session(plain.model, Path(tmp) / f"{kind}.onnx",
                                                                          threads, kind == "batched")
                    for kind in ("per side", "batched")}
        times = {name: [] for name in variants}
        dec_times = {name: [] for name in decoders}
        for i in range(warmup + repeats):
            for name, stages in variants.items():
                r = run_frame(stages, frame, box, intr, size)
                if i >= warmup:
                    times[name].append(r)
            for name, (sess, feed) in decoders.items():
                t0 = time.perf_counter()
                for _ in range(3):
                    sess.run(None, feed)
                if i >= warmup:
                    dec_times[name].append(time.perf_counter() - t0)
    table = {name: {k: summarise([r[k] for r in rows]) for k in rows[0]} for name, rows in times.items()}
    printer(f"threads {threads}, {repeats} frames per variant (round-robin), torch {torch.__version__}")
    cols = [*STAGES[:-1], "hand_model", "total"]
    printer("| variant | " + " | ".join(cols) + " |")
    printer("|---|" + "---|" * len(cols))
    for name, stats in table.items():
        cells = [f"{stats[c][0]:.2f} / {stats[c][1]:.2f}" if c in stats else "(in graph)" for c in cols]
        printer(f"| {name} | " + " | ".join(cells) + " |")
    for name, samples in dec_times.items():
        med, p95 = summarise(samples)
        printer(f"| {name} | | | {med:.2f} / {p95:.2f} | | | | |")
        table[name] = {"network": (med, p95)}
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(DEMO_WEIGHTS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=100)
    args = p.parse_args(argv)
    compare(args.checkpoint, threads=args.threads, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
