"""``interhand bench``: forward latency and parameter counts of the DIR network.

Latencies are medians over repeated batch-1 forward passes with random weights (speed does not
depend on the weights), measured side by side in one run so that the ratios between
configurations are meaningful on a shared, noisy machine.
"""
from __future__ import annotations

import statistics
import time

import torch

from ..dir_net import DIRConfig, DIRNet
from ..hand_model import load_hand_model
from ..hand_model.joints import SIDES


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters (hand-model arrays are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def time_forward(model: torch.nn.Module, x: torch.Tensor, repeats: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of ``repeats`` forward passes after ``warmup`` untimed ones."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return times


def available_devices(requested: list[str]) -> list[torch.device]:
    out = []
    for name in requested:
        if name == "cuda" and not torch.cuda.is_available():
            continue
        out.append(torch.device(name))
    return out


def run_bench(backbones=("resnet18", "resnet50"), stages=(0, 1, 2), img_size: int = 256, repeats: int = 10,
              devices=("cpu", "cuda"), threads: int | None = None, printer=print) -> list[dict]:
    """Print and return a table of parameter counts and forward latencies.

    Returns:
        One dict per (device, backbone, T): ``params_m``, ``median_ms``, ``p90_ms``, ``fps``,
        ``ratio`` (median relative to the first row of the same device).
    """
    if threads:
        torch.set_num_threads(threads)
    hands = {s: load_hand_model(s) for s in SIDES}
    rows = []
    for dev in available_devices(list(devices)):
        base = None
        for backbone in backbones:
            for t in stages:
                cfg = DIRConfig.from_dict({"backbone": backbone, "img_size": img_size, "num_stages": t})
                model = DIRNet(cfg, {s: hands[s] for s in SIDES}).to(dev).eval()
                x = torch.randn(1, 3, img_size, img_size, device=dev)
                times = time_forward(model, x, repeats)
                med = statistics.median(times) * 1e3
                base = base or med
                rows.append({"device": str(dev), "backbone": backbone, "stages": t,
                             "params_m": count_parameters(model) / 1e6, "median_ms": med,
                             "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))] * 1e3,
                             "fps": 1e3 / med, "ratio": med / base})
                del model
    header = f"{'device':<7}{'backbone':<10}{'T':>2}{'params (M)':>12}{'median ms':>11}{'p90 ms':>9}{'FPS':>8}{'x first':>9}"
    printer(f"DIR forward latency, batch 1, {img_size}x{img_size}, {repeats} runs each, "
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    printer(header)
    printer("-" * len(header))
    for r in rows:
        printer(f"{r['device']:<7}{r['backbone']:<10}{r['stages']:>2}{r['params_m']:>12.2f}{r['median_ms']:>11.1f}"
                f"{r['p90_ms']:>9.1f}{r['fps']:>8.1f}{r['ratio']:>9.2f}")
    return rows
