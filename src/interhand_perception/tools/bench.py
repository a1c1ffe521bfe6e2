"""``interhand bench``: forward latency and parameter counts of the DIR network.

Latencies are medians over repeated batch-1 forward passes with random weights (speed does not
depend on the weights), measured side by side in one run so that the ratios between
configurations are meaningful on a shared, noisy machine. Every forward is the whole network,
hand models included.

On a CUDA device each configuration is also timed as the GPU fast-path variants of issue 13
(:data:`CUDA_VARIANTS`): eager fp32, eager under fp16 / bf16 autocast, the forward replayed as
a CUDA graph (fp32, fp16, bf16, and fp16 with weights and input channels-last), and
``torch.compile`` (``max-autotune``), at each batch size asked (1 and 16 by default), with
images/s and the ratio to eager fp32 at the same batch; then the verdicts on issue 13's targets.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

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


def latency_ms(times: list[float]) -> tuple[float, float]:
    """(median, 90th percentile, the lower of the two neighbours) in ms of timings in seconds."""
    return statistics.median(times) * 1e3, sorted(times)[int(0.9 * (len(times) - 1))] * 1e3


@dataclass(frozen=True)
class Variant:
    """One way of running the forward: precision (autocast dtype or None), graph, compile mode,
    memory format (``channels_last``: weights and input NHWC, what tensor cores prefer)."""

    name: str
    autocast: torch.dtype | None = None
    cuda_graph: bool = False
    compile_mode: str | None = None
    channels_last: bool = False


#: The GPU variants by name (``interhand bench --variants``), in table order.
CUDA_VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("eager fp32"),
    Variant("eager fp16", autocast=torch.float16),
    Variant("eager bf16", autocast=torch.bfloat16),
    Variant("graph fp32", cuda_graph=True),
    Variant("graph fp16", autocast=torch.float16, cuda_graph=True),
    Variant("graph bf16", autocast=torch.bfloat16, cuda_graph=True),
    Variant("graph fp16 NHWC", autocast=torch.float16, cuda_graph=True, channels_last=True),
    Variant("compiled", compile_mode="max-autotune"),
)}
BASELINE = "eager fp32"


def variant_table(device: torch.device, names: list[str] | None = None, batches: tuple[int, ...] = (1, 16)
                  ) -> list[tuple[Variant, int]]:
    """(variant, batch) pairs to time on ``device``, baseline first at each batch.

    The CPU runs eager fp32 at batch 1 only (the table ``interhand bench`` always printed);
    CUDA runs ``names`` (default: all of :data:`CUDA_VARIANTS`) at each batch size.
    """
    if device.type != "cuda":
        return [(CUDA_VARIANTS[BASELINE], 1)]
    names = list(CUDA_VARIANTS) if not names else list(names)
    unknown = [n for n in names if n not in CUDA_VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {list(CUDA_VARIANTS)}")
    if BASELINE not in names:
        names.insert(0, BASELINE)  # every ratio is to eager fp32
    ordered = [BASELINE] + [n for n in names if n != BASELINE]
    return [(CUDA_VARIANTS[n], b) for b in batches for n in ordered]


def make_runner(model: torch.nn.Module, variant: Variant, x: torch.Tensor, graph_api=None,
                compile_backend: str = "inductor") -> Callable[[torch.Tensor], object]:
    """A callable running ``variant`` of ``model`` on inputs shaped like ``x``.

    Graph variants capture at once for ``x.shape[0]`` (``network.cuda_graph.CudaGraphRunner``;
    ``graph_api`` replaces the CUDA calls in tests); compiled variants compile
    ``fullgraph=True`` (a graph break is an error, not a silently slower run) with
    ``compile_backend``; autocast wraps the forward (the hand models stay fp32 inside
    ``DIRNet.decode``).
    """
    if variant.cuda_graph:
        from ..network.cuda_graph import CudaGraphRunner

        def refuse(msg: str) -> None:
            raise RuntimeError(msg)

        fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
        runner = CudaGraphRunner(model, tuple(x.shape[1:]), (x.shape[0],), device=x.device, dtype=x.dtype,
                                 memory_format=fmt, autocast=variant.autocast, api=graph_api, warn=refuse)
        return runner
    net = model
    if variant.compile_mode is not None:
        mode = variant.compile_mode if compile_backend == "inductor" else None
        net = torch.compile(model, fullgraph=True, mode=mode, backend=compile_backend)
    if variant.autocast is None:
        return net

    def autocast_forward(images: torch.Tensor):
        with torch.autocast(device_type=images.device.type, dtype=variant.autocast):
            return net(images)
    return autocast_forward


def time_variants(model: torch.nn.Module, device: torch.device, img_size: int, repeats: int,
                  table: list[tuple[Variant, int]], warmup: int = 3, printer=print, graph_api=None,
                  compile_backend: str = "inductor") -> list[dict]:
    """Median seconds of each (variant, batch) of ``table``: dicts with ``variant``, ``batch``,
    ``median_ms``, ``p90_ms``, ``images_per_s``, ``ratio`` (median / eager fp32's at that batch;
    below 1 is faster). A variant that fails (capture or compile error) is reported and skipped."""
    rows, base = [], {}
    for variant, batch in table:
        x = torch.randn(batch, 3, img_size, img_size, device=device)
        if variant.channels_last:  # this variant only: the model goes back to NCHW afterwards
            model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            run = make_runner(model, variant, x, graph_api=graph_api, compile_backend=compile_backend)
            times = time_forward(run, x, repeats, warmup=warmup)
        except Exception as exc:  # noqa: BLE001 - one failing variant must not end the table
            printer(f"  {variant.name} at batch {batch} failed: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        finally:
            if variant.compile_mode is not None:
                torch._dynamo.reset()
            if variant.channels_last:
                model.to(memory_format=torch.contiguous_format)
        med, p90 = latency_ms(times)
        if variant.name == BASELINE:
            base[batch] = med
        rows.append({"variant": variant.name, "batch": batch, "median_ms": med, "p90_ms": p90,
                     "images_per_s": batch * 1e3 / med, "ratio": med / base[batch] if batch in base else float("nan")})
    return rows


def available_devices(requested: list[str]) -> list[torch.device]:
    out = []
    for name in requested:
        if name == "cuda" and not torch.cuda.is_available():
            continue
        out.append(torch.device(name))
    return out


def run_bench(backbones=("resnet18", "resnet50"), stages=(0, 1, 2), img_size: int = 256, repeats: int = 10,
              devices=("cpu", "cuda"), threads: int | None = None, printer=print,
              variants: list[str] | None = None, batches: tuple[int, ...] = (1, 16)) -> list[dict]:
    """Print and return a table of parameter counts and forward latencies.

    Args:
        variants, batches: on CUDA, the :data:`CUDA_VARIANTS` (default all) and batch sizes
            timed for each configuration (:func:`variant_table`); the CPU times eager fp32 at
            batch 1.
    Returns:
        One dict per (device, backbone, T) on the CPU: ``params_m``, ``median_ms``, ``p90_ms``,
        ``fps``, ``ratio`` (median relative to the first row of the same device); on CUDA one
        per (backbone, T, variant, batch), with ``variant``, ``batch``, ``images_per_s`` and
        ``ratio`` to eager fp32 at that batch.
    """
    if threads:
        torch.set_num_threads(threads)
    hands = {s: load_hand_model(s) for s in SIDES}
    rows, gpu_rows = [], []
    for dev in available_devices(list(devices)):
        base = None
        for backbone in backbones:
            for t in stages:
                cfg = DIRConfig.from_dict({"backbone": backbone, "img_size": img_size, "num_stages": t})
                model = DIRNet(cfg, {s: hands[s] for s in SIDES}).to(dev).eval()
                if dev.type == "cuda":
                    for r in time_variants(model, dev, img_size, repeats, variant_table(dev, variants, batches),
                                           printer=printer):
                        gpu_rows.append({"device": str(dev), "backbone": backbone, "stages": t,
                                         "params_m": count_parameters(model) / 1e6, **r})
                    del model
                    continue
                x = torch.randn(1, 3, img_size, img_size, device=dev)
                times = time_forward(model, x, repeats)
                med, p90 = latency_ms(times)
                base = base or med
                rows.append({"device": str(dev), "backbone": backbone, "stages": t,
                             "params_m": count_parameters(model) / 1e6, "median_ms": med, "p90_ms": p90,
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
    if gpu_rows:
        print_variant_table(gpu_rows, img_size, repeats, printer)
    return rows + gpu_rows


def print_variant_table(rows: list[dict], img_size: int, repeats: int, printer=print) -> None:
    """The GPU table: one line per (backbone, T, batch, variant)."""
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "?"
    printer(f"\nDIR forward on {name}, {img_size}x{img_size}, {repeats} runs each after 3 warm-up runs, "
            f"torch {torch.__version__}; x eager = median / eager fp32's at the same batch")
    header = (f"{'backbone':<10}{'T':>2}{'batch':>6}  {'variant':<16}{'median ms':>10}{'p90 ms':>9}"
              f"{'images/s':>10}{'x eager':>9}")
    printer(header)
    printer("-" * len(header))
    for r in rows:
        printer(f"{r['backbone']:<10}{r['stages']:>2}{r['batch']:>6}  {r['variant']:<16}{r['median_ms']:>10.2f}"
                f"{r['p90_ms']:>9.2f}{r['images_per_s']:>10.1f}{r['ratio']:>9.2f}")
    for line in target_lines(rows, img_size):
        printer(line)


#: Issue 13's targets on an H100/H200: ResNet-50, T = 2, 256 x 256.
TARGET_FPS_BATCH1, TARGET_IMAGES_S_BATCH64, TARGET_STAGE_MS = 300.0, 3000.0, 1.0


def stage_costs(rows: list[dict]) -> dict:
    """{(backbone, variant, batch): ms per refinement stage}: the slope of the median over T,
    (median at the largest T - median at T = 0) / largest T, where both were timed."""
    by_key: dict = {}
    for r in rows:
        by_key.setdefault((r["backbone"], r["variant"], r["batch"]), {})[r["stages"]] = r["median_ms"]
    return {k: (t[max(t)] - t[0]) / max(t) for k, t in by_key.items() if 0 in t and max(t) > 0}


def target_lines(rows: list[dict], img_size: int) -> list[str]:
    """The GPU table's verdicts on issue 13's targets (lines to print; none when nothing
    relevant was timed): the best variant of ResNet-50, T = 2 at batch 1 (FPS) and at batch 64
    (images/s), and the cost per refinement stage at batch 1 per variant."""
    out = []
    costs = stage_costs(rows)
    if costs:
        out.append("ms per refinement stage (slope over T, batch 1): " + ", ".join(
            f"{bb} {v} {ms:.2f}" for (bb, v, b), ms in sorted(costs.items()) if b == 1)
            + f" (target <= {TARGET_STAGE_MS:g} ms)")
    if img_size != 256:
        return out
    r50 = [r for r in rows if r["backbone"] == "resnet50" and r["stages"] == 2]
    for batch, key, target, unit in ((1, "images_per_s", TARGET_FPS_BATCH1, "FPS"),
                                     (64, "images_per_s", TARGET_IMAGES_S_BATCH64, "images/s")):
        cands = [r for r in r50 if r["batch"] == batch]
        if cands:
            best = max(cands, key=lambda r: r[key])
            verdict = "met" if best[key] >= target else "NOT met"
            out.append(f"target ResNet-50 T=2 batch {batch}: best {best['variant']} {best[key]:.0f} {unit} "
                       f"(target >= {target:g}): {verdict}")
    return out
