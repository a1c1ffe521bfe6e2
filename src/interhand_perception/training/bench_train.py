"""``interhand bench --train``: training throughput of the old and the new training path, side by side.

Both variants run in one process on the same data, one after the other, with the same model
configuration, batch size and number of steps:

* ``old``: the loop as it was before the speed settings: fp32, ``data.num_workers`` as the config
  says (``auto`` there counts as the old default 2), unpinned host memory, NCHW, the foreach
  AdamW, no cuDNN autotuning, and the loss values read back (a GPU sync) after every step;
* ``new``: what ``interhand train`` does now with the default speed settings
  (``train.amp: auto``, ``train.channels_last: auto``, ``data.num_workers: auto``, pinned memory,
  fused AdamW on CUDA, losses read back only at log steps);
* ``new+compile`` (``--compile``): the same with ``torch.compile``.

Each variant builds a fresh network (same seed), runs ``warmup`` untimed steps and then
``steps`` timed ones. The timed span ends with a device synchronisation, so ``step ms`` is the
real time per step however the GPU work was queued. ``data_wait`` is the share of that span spent
waiting for the DataLoader. Loader workers start prefetching during the warm-up, so the wait
only shows the steady state when ``steps`` is well above ``workers x prefetch_factor``. The
samples are drawn as one shuffled pass over the whole run (no epoch boundaries in the timing).

The data are the configured training set: the synthetic shards of ``data.cache_dir`` when they
exist there, else samples generated on the fly (much slower; the table header says which).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from ..data.splits import build_train_set
from ..devices import resolve_device
from ..dir_net.build import build_model
from ..paths import REPO_ROOT
from .config import load_run_config
from .data_setup import mesh_tensors
from .losses import LossWeights, logs_to_floats
from .trainer import (Runtime, compiled_forward_and_loss, cosine_with_warmup, forward_and_loss, make_loader,
                      make_optimizer, prepare_model, resolve_runtime, to_device, train_step)

DEFAULT_CONFIG = REPO_ROOT / "configs" / "demo_r18_128.yaml"
OLD_DEFAULT_WORKERS = 2  # data.num_workers before "auto" existed


def old_runtime(cfg: dict) -> Runtime:
    """The settings of the training loop before the speed work (see the module docstring)."""
    workers = cfg["data"]["num_workers"]
    workers = OLD_DEFAULT_WORKERS if workers == "auto" else int(workers)
    return Runtime(amp_dtype=None, channels_last=False, compile=None, num_workers=workers,
                   prefetch_factor=2 if workers else None, pin_memory=False, fused_adam=False)


def variants(cfg: dict, device: torch.device, with_compile: str | None = None) -> list[tuple[str, Runtime, bool]]:
    """``[(name, runtime, legacy)]`` to compare: old, new (and new+compile)."""
    auto = {**cfg, "train": {**cfg["train"], "amp": "auto", "channels_last": "auto"},
            "data": {**cfg["data"], "num_workers": "auto", "prefetch_factor": None}}
    new = resolve_runtime(auto, device)
    out = [("old", old_runtime(cfg), True), ("new", new, False)]
    if with_compile:
        out.append(("new+compile", dataclasses.replace(new, compile=with_compile), False))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_variant(cfg: dict, train_set, device: torch.device, rt: Runtime, legacy: bool,
                 steps: int, warmup: int, batch_size: int) -> dict:
    """Train ``warmup + steps`` steps with ``rt`` and time the last ``steps``.

    ``legacy``: the old loop's habits besides ``rt``: no cuDNN autotuning and the loss values
    read back after every step.

    Returns:
        ``samples_per_s``, ``data_wait_frac`` (share of the timed wall time spent waiting for a
        batch), ``step_ms`` and ``final_loss``.
    """
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = False  # the old loop never set it
    model, hand_models = build_model(cfg, device)
    if not legacy:
        prepare_model(model, rt, device)  # cuDNN autotuning on CUDA, NHWC when asked
    mesh = mesh_tensors(hand_models, device)
    weights = LossWeights.from_dict(cfg["loss"])
    optimizer = make_optimizer(model, cfg["train"], rt)
    scheduler = cosine_with_warmup(optimizer, int(cfg["train"]["warmup_steps"]), warmup + steps)
    scaler = torch.amp.GradScaler(device.type, enabled=rt.amp_dtype == torch.float16)
    step_fn = compiled_forward_and_loss(False, rt.compile) if rt.compile else forward_and_loss
    grad_clip = float(cfg["train"]["grad_clip"]) if cfg["train"]["grad_clip"] else None
    # one shuffled pass as long as the whole run (several permutations back to back when the
    # set is small): no epoch boundary, where the loader would refill its pipeline, in the timing
    sampler = torch.utils.data.RandomSampler(train_set, num_samples=(warmup + steps) * batch_size)
    loader = make_loader(train_set, batch_size, rt, sampler=sampler)
    batches = iter(loader)
    model.train()
    wait = 0.0
    loss = None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            wait, start = 0.0, time.perf_counter()
        t0 = time.perf_counter()
        batch = next(batches)
        wait += time.perf_counter() - t0
        batch = to_device(batch, device)
        loss, logs = train_step(model, batch, mesh, weights, optimizer, scheduler, scaler, rt, grad_clip, step_fn)
        if legacy:  # the old loop: isfinite(loss) and float(term) for every term, every step
            values = logs_to_floats(logs)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss in the benchmark: {values}")
    _sync(device)
    wall = time.perf_counter() - start
    final = float(loss.detach()) if loss is not None else float("nan")
    del batches, loader  # stops the workers
    return {"samples_per_s": steps * batch_size / wall, "data_wait_frac": wait / wall,
            "step_ms": wall / steps * 1e3, "final_loss": final}


def _data_source(cfg: dict, train_set) -> str:
    if cfg["data"]["kind"] != "synthetic":
        return f"{cfg['data']['kind']} from {cfg['data']['root']}"
    if getattr(train_set, "shard_size", 0):
        return f"synthetic shards in {cfg['data']['cache_dir']}"
    return "synthetic, generated on the fly (no shards in data.cache_dir)"


def run_train_bench(config: str | Path | None = None, steps: int = 50, warmup: int = 5, batch_size: int | None = None,
                    devices=("auto",), overrides: dict | None = None, threads: int | None = None,
                    with_compile: str | None = None, printer=print) -> list[dict]:
    """Print and return the old-vs-new training throughput table.

    Args:
        config: run config YAML (default ``configs/demo_r18_128.yaml``).
        steps, warmup: timed and untimed steps per variant.
        batch_size: per-step batch (default the config's ``train.batch_size``).
        devices: "auto", "cpu", "cuda" names; unavailable CUDA is skipped.
        overrides: nested dict merged over the config (``--set``).
        threads: torch CPU threads.
        with_compile: a ``torch.compile`` mode: add the ``new+compile`` variant with it.
    Returns:
        One dict per (device, variant): ``device``, ``variant``, ``settings``, ``samples_per_s``,
        ``data_wait_frac``, ``step_ms``, ``final_loss``, ``ratio`` (samples/s over the old path's).
    """
    if threads:
        torch.set_num_threads(int(threads))
    cfg = load_run_config(config or DEFAULT_CONFIG, overrides)
    batch_size = int(batch_size or cfg["train"]["batch_size"])
    train_set = build_train_set(cfg)
    if len(train_set) < batch_size:
        raise ValueError(f"batch {batch_size} exceeds the {len(train_set)} training samples")
    rows = []
    m = cfg["model"]
    printer(f"DIR training throughput: {Path(config or DEFAULT_CONFIG).name} ({m['backbone']}, {m['img_size']} px, "
            f"T = {m['num_stages']}), batch {batch_size}, {steps} timed steps after {warmup} warm-up; "
            f"data: {_data_source(cfg, train_set)}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for name in dict.fromkeys(devices):
        if name == "cuda" and not torch.cuda.is_available():
            printer("cuda: not available, skipped")
            continue
        device = resolve_device(name)
        run_cfg = {**cfg, "train": {**cfg["train"], "device": device.type}}
        base = None
        for variant, rt, legacy in variants(run_cfg, device, with_compile):
            res = time_variant(run_cfg, train_set, device, rt, legacy, steps, warmup, batch_size)
            base = base or res["samples_per_s"]
            rows.append({"device": str(device), "variant": variant, "settings": rt.describe(), **res,
                         "ratio": res["samples_per_s"] / base})
    header = f"{'device':<7}{'variant':<13}{'samples/s':>11}{'data_wait %':>13}{'step ms':>10}{'x old':>8}  settings"
    printer(header)
    printer("-" * len(header))
    for r in rows:
        printer(f"{r['device']:<7}{r['variant']:<13}{r['samples_per_s']:>11.1f}{100 * r['data_wait_frac']:>13.1f}"
                f"{r['step_ms']:>10.1f}{r['ratio']:>8.2f}  {r['settings']}")
    return rows
