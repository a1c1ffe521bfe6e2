"""``interhand train``: the training loop (single process, or DDP under torchrun).

Run directory layout (``train.out_dir``)::

    config.yaml            the merged configuration of the run
    last.safetensors       newest weights (+ embedded config), written every ckpt_every steps
    model_fp16.safetensors the final weights in fp16 (train.save_half), for shipping
    train_state.pt         optimiser/scheduler/step for --resume (weights_only loadable)
    log.jsonl              one JSON line per log_every steps and per evaluation
    curves.png             loss and validation curves, redrawn at every checkpoint

DDP: launched with ``torchrun --nproc_per_node N -m interhand_perception.cli train ...``
(or ``interhand train``), the loop uses gloo on CPU and nccl on CUDA, a DistributedSampler,
and rank 0 writes every file. At the end the replicas' weights are compared and the result is
logged (``replicas_in_sync``).

Speed (:class:`Runtime`, from ``train.amp``, ``train.channels_last``, ``train.compile``,
``data.num_workers``, ``data.prefetch_factor``): on CUDA by default bf16 autocast, NHWC
convolutions, cuDNN autotuning, the fused AdamW, pinned host memory and one loader worker per
spare CPU core (up to 12); on CPU the loop runs as before (fp32). The step reads nothing back
from the GPU: loss values, the finiteness check of the loss and the DDP time-budget vote are
read every ``log_every`` steps (and before every checkpoint), so the CPU can queue the next steps
while the GPU works. A non-finite loss is therefore reported at the next log step, naming the
range of steps it happened in, and never reaches a checkpoint. Every log record (and the
progress bar) carries ``samples_per_s`` (all ranks together) and ``data_wait_frac``, the share of
the loop's wall time spent waiting for the next batch from the DataLoader.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..data.splits import build_test_set, build_train_set
from ..devices import resolve_device
from ..dir_net.build import build_model
from ..dir_net.checkpoint import read_checkpoint, save_checkpoint
from .checkpoint import load_train_state, save_train_state
from .curves import plot_curves
from .data_setup import load_backbone_weights, mesh_tensors
from .losses import LossWeights, dir_loss_terms, logs_to_floats


def setup_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1).

    Returns:
        ``(rank, world_size, device)``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return dist.get_rank(), world, torch.device("cuda", local)
        return dist.get_rank(), world, torch.device("cpu")
    return 0, 1, resolve_device(device_name)


def cosine_with_warmup(optimizer, warmup: int, total: int, clock=None):
    """Linear warm-up to the base lr, then cosine decay to 0 at ``total`` steps.

    Args:
        clock: optional callable giving the run's progress in [0, 1] by wall time
            (``train.lr_schedule: time``); the cosine then follows it instead of the step
            count, so a run stopped by ``train.max_minutes`` still ends at lr 0.
    """
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        if clock is not None:
            progress = min(1.0, clock())
        else:
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def init_weights(model: torch.nn.Module, path: str) -> int:
    """Start from the weights of another checkpoint of the same architecture (``train.init_from``).

    Returns:
        Number of tensors loaded (all of them: the load is strict).
    Raises:
        ValueError: the checkpoint does not fit the network (missing, unexpected or mis-shaped
        tensors are listed).
    """
    state, _info = read_checkpoint(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        raise ValueError(f"train.init_from {path} does not fit this network: missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}, shape mismatches {shapes[:8]}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return len(state)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def available_cpus() -> int:
    """CPU cores this process may run on (the affinity mask, e.g. a container's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Runtime:
    """Resolved speed settings of a run (see :func:`resolve_runtime`).

    Attributes:
        amp_dtype: autocast dtype of the forward pass (bf16/fp16) or None (fp32).
        channels_last: NHWC weights and input images.
        compile: ``torch.compile`` mode for the network and the loss (None: eager); see
            :func:`compiled_forward_and_loss`.
        num_workers, prefetch_factor, pin_memory: DataLoader settings.
        fused_adam: the fused (single-kernel) AdamW, CUDA only.
    """

    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    compile: str | None = None
    num_workers: int = 0
    prefetch_factor: int | None = None
    pin_memory: bool = False
    fused_adam: bool = False

    def describe(self) -> str:
        """One line, e.g. ``amp bf16, channels_last, 12 workers (prefetch 4), pinned``."""
        amp = {None: "fp32", torch.bfloat16: "amp bf16", torch.float16: "amp fp16"}[self.amp_dtype]
        parts = [amp, "channels_last" if self.channels_last else "NCHW",
                 f"{self.num_workers} workers" + (f" (prefetch {self.prefetch_factor})" if self.num_workers else "")]
        parts += [p for p, on in (("pinned", self.pin_memory), ("fused AdamW", self.fused_adam),
                                  (f"compiled ({self.compile})", self.compile)) if on]
        return ", ".join(parts)


def resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    """``train.amp`` -> autocast dtype or None. auto: bf16 on CUDA, off on CPU.

    Raises:
        ValueError: ``fp16`` without CUDA (CPU autocast has no gradient scaler here; use bf16).
    """
    if name == "off" or (name == "auto" and device.type != "cuda"):
        return None
    if name == "fp16":
        if device.type != "cuda":
            raise ValueError("config 'train.amp' is 'fp16', which needs CUDA; use 'bf16' or 'off' on the CPU")
        return torch.float16
    return torch.bfloat16


def compile_mode(value) -> str | None:
    """``train.compile`` -> a ``torch.compile`` mode or None: false -> None, true -> "default",
    a mode name ("default", "reduce-overhead", "max-autotune", ...) -> itself."""
    if value is False or value is None:
        return None
    return "default" if value is True else str(value)


def resolve_num_workers(value, device: torch.device, local_procs: int = 1) -> int:
    """``data.num_workers`` -> a number. ``auto``: on CUDA ``min(12, CPUs - 2)`` shared by the
    GPU processes of this machine (at least 1 each), on CPU ``min(4, CPUs // 4)`` (at least 1),
    which leaves the cores to the compute threads."""
    if value != "auto":
        return int(value)
    cpus = available_cpus()
    if device.type == "cuda":
        return max(1, min(12, cpus - 2) // max(1, local_procs))
    return max(1, min(4, cpus // 4))


def resolve_runtime(cfg: dict, device: torch.device) -> Runtime:
    """The speed settings a configuration asks for on ``device`` (see the module docstring)."""
    t, d = cfg["train"], cfg["data"]
    cuda = device.type == "cuda"
    local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    workers = resolve_num_workers(d["num_workers"], device, local_procs)
    prefetch = d.get("prefetch_factor") or (4 if cuda else 2)
    cl = t.get("channels_last", "auto")
    return Runtime(amp_dtype=resolve_amp(t.get("amp", "auto"), device),
                   channels_last=cuda if cl == "auto" else bool(cl), compile=compile_mode(t.get("compile", False)),
                   num_workers=workers, prefetch_factor=prefetch if workers > 0 else None,
                   pin_memory=cuda, fused_adam=cuda)


def _loader_worker_init(_worker_id: int) -> None:
    """One OpenCV thread per DataLoader worker (torch already uses one): the workers are the
    parallelism, and OpenCV's own threads would oversubscribe the cores."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


def make_loader(dataset, batch_size: int, rt: Runtime, sampler=None) -> DataLoader:
    """The training DataLoader: shuffled (or ``sampler``), last partial batch dropped, workers
    persistent, host memory pinned when ``rt.pin_memory``.

    Workers are spawned, not forked: a process that has already used OpenCV's thread pool (any
    process that decoded or warped an image before training, a test session for one) hands a
    forked child a locked pool, and the child's first OpenCV call waits forever. Spawning costs a
    few seconds once (persistent workers).
    """
    extra = {"prefetch_factor": rt.prefetch_factor, "persistent_workers": True,
             "worker_init_fn": _loader_worker_init,
             "multiprocessing_context": "spawn"} if rt.num_workers > 0 else {}
    return DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                      num_workers=rt.num_workers, drop_last=True, pin_memory=rt.pin_memory, **extra)


def prepare_model(model: torch.nn.Module, rt: Runtime, device: torch.device) -> None:
    """Apply the device-wide and model settings of ``rt`` (in place): NHWC weights, cuDNN
    autotuning on CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)


def make_optimizer(model: torch.nn.Module, t_cfg: dict, rt: Runtime) -> torch.optim.Optimizer:
    """AdamW on every trainable parameter (fused kernel when ``rt.fused_adam``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    kwargs = {"fused": True} if rt.fused_adam else {}
    return torch.optim.AdamW(params, lr=float(t_cfg["lr"]), weight_decay=float(t_cfg["weight_decay"]), **kwargs)


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter optimiser tensor its parameter's memory layout, in place (a run
    resumed with another ``channels_last`` setting would otherwise mix layouts)."""
    for p, state in optimizer.state.items():
        for k, v in state.items():
            if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                state[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def forward_and_loss(net: torch.nn.Module, images: torch.Tensor, batch: dict, mesh: dict, weights: LossWeights,
                     amp_dtype: torch.dtype | None) -> tuple[torch.Tensor, dict]:
    """The forward pass (under autocast when ``amp_dtype``) and the fp32 loss.

    Args:
        images: (B, 3, S, S) on the network's device; batch: the collated targets.
    Returns:
        ``(loss, logs)`` of ``dir_loss_terms``.
    """
    with torch.autocast(device_type=images.device.type, dtype=amp_dtype or torch.bfloat16,
                        enabled=amp_dtype is not None):
        pred = net(images)
    return dir_loss_terms(pred, batch, mesh, weights)  # fp32, autocast off inside


def compiled_forward_and_loss(distributed: bool, mode: str = "default"):
    """``forward_and_loss`` for ``train.compile``: compiled whole (network and loss, so the
    many small loss and hand-model kernels are fused too) in a single process; under DDP only
    the network is compiled (:func:`train` wraps it), as DDP's graph splitting expects.

    With mode "reduce-overhead" (CUDA graphs) the returned logs are copied out of the graph's
    memory, which the next step overwrites (one ``stack``)."""
    if distributed:
        return forward_and_loss
    compiled = torch.compile(forward_and_loss, mode=mode)
    if mode != "reduce-overhead":
        return compiled

    def step_fn(*args):
        torch.compiler.cudagraph_mark_step_begin()
        loss, logs = compiled(*args)
        return loss, dict(zip(logs.keys(), torch.stack(list(logs.values())).unbind()))

    return step_fn


def train_step(net: torch.nn.Module, batch: dict, mesh: dict, weights: LossWeights, optimizer, scheduler,
               scaler, rt: Runtime, grad_clip: float | None, step_fn=forward_and_loss) -> tuple[torch.Tensor, dict]:
    """One optimisation step; reads nothing back to the host.

    Args:
        net: the network (maybe DDP-wrapped or compiled); batch: collated tensors on its device,
            ``image`` (B, 3, S, S); mesh, weights: loss inputs (``dir_loss_terms``); scaler: a
            ``torch.amp.GradScaler`` (disabled unless fp16); grad_clip: max gradient norm or None;
            step_fn: :func:`forward_and_loss` or its compiled form.
    Returns:
        ``(loss, logs)``: the () loss and its detached per-term () tensors.
    """
    images = batch["image"]
    if rt.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    loss, logs = step_fn(net, images, batch, mesh, weights, rt.amp_dtype)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], float(grad_clip))
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss, logs


class Throughput:
    """Samples per second and the share of wall time spent waiting for data, over a window.

    Call :meth:`add` once per step with the seconds spent waiting for the batch and the
    step's whole wall time (waiting included); :meth:`read` returns the window's figures and
    starts a new window.
    """

    def __init__(self, samples_per_step: int) -> None:
        self.samples_per_step = samples_per_step
        self.steps, self.wait, self.wall = 0, 0.0, 0.0

    def add(self, wait_s: float, wall_s: float) -> None:
        self.steps += 1
        self.wait += wait_s
        self.wall += wall_s

    def read(self) -> dict[str, float]:
        """``{"samples_per_s", "data_wait_frac"}`` of the window so far; resets the window."""
        wall = max(self.wall, 1e-9)
        out = {"samples_per_s": round(self.steps * self.samples_per_step / wall, 1),
               "data_wait_frac": round(self.wait / wall, 4)}
        self.steps, self.wait, self.wall = 0, 0.0, 0.0
        return out


def replicas_in_sync(model: torch.nn.Module) -> bool:
    """True when every DDP rank holds bit-identical parameters (compared by checksum)."""
    flat = torch.cat([p.detach().double().flatten().cpu() for p in model.parameters()])
    mine = torch.stack([flat.sum(), (flat * torch.arange(flat.numel(), dtype=flat.dtype)).sum()])
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def train(cfg: dict, resume: bool = False, quiet: bool = False) -> dict:
    """Train DIR as configured.

    Args:
        cfg: a validated run configuration (``training.config.load_run_config``).
        resume: continue from ``out_dir/last.safetensors`` + ``train_state.pt``.
        quiet: no progress bar (logs still written).
    Returns:
        Summary dict: steps, final loss, evaluation, paths, ``replicas_in_sync`` (DDP only).
    """
    t_cfg = cfg["train"]
    rank, world, device = setup_distributed(t_cfg["device"])
    if t_cfg.get("threads"):
        torch.set_num_threads(int(t_cfg["threads"]))
    torch.manual_seed(int(t_cfg["seed"]) + rank)
    rt = resolve_runtime(cfg, device)
    out_dir = Path(t_cfg["out_dir"])
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    model, hand_models = build_model(cfg, device)
    if not resume and t_cfg.get("init_from"):
        n = init_weights(model, t_cfg["init_from"])
        if rank == 0 and not quiet:
            print(f"init: {n} tensors from {t_cfg['init_from']}")
    if not resume and cfg["model"].get("backbone_weights"):
        report = load_backbone_weights(model, cfg["model"]["backbone_weights"])
        if rank == 0 and not quiet:
            print(f"backbone: {report.summary()} from {cfg['model']['backbone_weights']}")
    prepare_model(model, rt, device)
    mesh = mesh_tensors(hand_models, device)
    weights = LossWeights.from_dict(cfg["loss"])
    train_set = build_train_set(cfg, hand_models)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                 seed=int(t_cfg["seed"])) if world > 1 else None
    batch_size = int(t_cfg["batch_size"])
    loader = make_loader(train_set, batch_size, rt, sampler)
    if len(loader) == 0:
        raise ValueError(f"batch_size {t_cfg['batch_size']} x {world} ranks exceeds the {len(train_set)} training samples")
    steps_per_epoch = len(loader)
    total_steps = int(t_cfg["max_steps"] or steps_per_epoch * int(t_cfg["epochs"]))
    optimizer = make_optimizer(model, t_cfg, rt)
    budget_s = float(t_cfg["max_minutes"]) * 60 if t_cfg["max_minutes"] else None
    clock = None
    if t_cfg.get("lr_schedule", "steps") == "time":
        if budget_s is None or world > 1:
            raise ValueError("train.lr_schedule 'time' needs train.max_minutes and a single process "
                             "(ranks' clocks differ); use 'steps'")
        clock = lambda: (time.monotonic() - started) / budget_s  # noqa: E731
    started = time.monotonic()
    scheduler = cosine_with_warmup(optimizer, int(t_cfg["warmup_steps"]), total_steps, clock)
    scaler = torch.amp.GradScaler(device.type, enabled=rt.amp_dtype == torch.float16)

    step, epoch, history = 0, 0, []
    if resume:
        state, _info = read_checkpoint(out_dir / "last.safetensors")
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        ts = load_train_state(out_dir / "train_state.pt")
        optimizer.load_state_dict(ts["optimizer"])
        match_state_layout(optimizer)
        scheduler.load_state_dict(ts["scheduler"])
        if scaler.is_enabled() and ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        step, epoch, history = ts["step"], ts["epoch"], ts["history"]

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    step_fn = forward_and_loss
    if rt.compile:
        step_fn = compiled_forward_and_loss(world > 1, rt.compile)
        if world > 1:
            net = torch.compile(net, mode=rt.compile)

    test_set = build_test_set(cfg, hand_models, limit=int(t_cfg["eval_samples"])) if rank == 0 else None
    started = time.monotonic()
    log_every = int(t_cfg["log_every"])
    log_f = open(out_dir / "log.jsonl", "a") if rank == 0 else None
    # with the clock-driven schedule the step count is open-ended: no misleading total or ETA
    bar = tqdm(total=None if clock is not None else total_steps, initial=step, disable=quiet or rank != 0,
               desc="train", unit="step", dynamic_ncols=True)
    if rank == 0 and not quiet:
        plan = (f"lr cosine over {budget_s / 60:g} min of wall time" if clock is not None
                else f"{total_steps} steps")
        bar.write(f"train: {device}, {rt.describe()}; {plan}")
    meter = Throughput(batch_size * world)
    last_logs: dict = {}
    summary: dict = {}
    stop = False
    nonfinite = None  # () bool on the device: a non-finite loss since the last check
    checked_step = step  # the last step whose losses were checked

    def read_logs() -> dict[str, float]:
        """The last step's loss terms as floats, and the finiteness check of every step since
        the previous read (one device-to-host copy)."""
        nonlocal nonfinite, checked_step
        values = logs_to_floats({**last_logs, "_nonfinite": nonfinite if nonfinite is not None
                                 else torch.zeros((), device=device)})
        if values.pop("_nonfinite") > 0:
            raise FloatingPointError(f"non-finite loss between steps {checked_step + 1} and {step}: {values}")
        nonfinite, checked_step = None, step
        return values

    def checkpoint(final: bool = False) -> None:
        if last_logs and checked_step != step:
            read_logs()  # never write weights trained on a non-finite loss
        if rank != 0:
            return
        save_checkpoint(out_dir / "last.safetensors", model, cfg, step=step, hand_models=hand_models)
        if final and t_cfg["save_half"]:  # small fp16 copy for shipping; last.safetensors stays fp32
            save_checkpoint(out_dir / "model_fp16.safetensors", model, cfg, step=step,
                            hand_models=hand_models, half=True, extra={"eval": summary.get("eval", {})})
        save_train_state(out_dir / "train_state.pt", optimizer, scheduler, step, epoch, history,
                         scaler=scaler.state_dict() if scaler.is_enabled() else None)
        plot_curves(history, out_dir / "curves.png")

    def evaluate_now() -> dict:
        from ..evaluation.evaluate import evaluate_model

        res = evaluate_model(model, test_set, batch_size=int(t_cfg["batch_size"]), device=device,
                             with_iv=False, progress=False)
        model.train()
        return res

    def log_step(values: dict[str, float]) -> None:
        """Write the log record of this step (rank 0): losses, lr and the window's throughput."""
        speed = meter.read()
        lr = scheduler.get_last_lr()[0]
        rec = {"step": step, "epoch": epoch, "time_s": round(time.monotonic() - started, 1), "lr": lr,
               **{k: round(v, 5) for k, v in values.items()}, **speed}
        history.append(rec)
        log_f.write(json.dumps(rec) + "\n")
        log_f.flush()
        bar.set_postfix(loss=f"{values['total']:.3f}", lr=f"{lr:.1e}",
                        sps=f"{speed['samples_per_s']:.0f}", data_wait=f"{100 * speed['data_wait_frac']:.0f}%")

    model.train()
    grad_clip = float(t_cfg["grad_clip"]) if t_cfg["grad_clip"] else None
    while step < total_steps and not stop:
        if sampler is not None:
            sampler.set_epoch(epoch)
        mark = time.perf_counter()
        for i, batch in enumerate(loader):
            got = time.perf_counter()
            batch = to_device(batch, device)
            loss, last_logs = train_step(net, batch, mesh, weights, optimizer, scheduler, scaler, rt, grad_clip,
                                         step_fn)
            bad = ~torch.isfinite(loss.detach())
            nonfinite = bad if nonfinite is None else nonfinite | bad
            step += 1
            bar.update(1)
            log_now = step % log_every == 0
            values = read_logs() if log_now else None  # the only sync with the GPU
            meter.add(got - mark, time.perf_counter() - mark)
            if log_now and rank == 0:
                log_step(values)
            if rank == 0 and step % int(t_cfg["eval_every"]) == 0:
                res = evaluate_now()
                rec = {"step": step, "eval": res["summary"]}
                history.append(rec)
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
            if step % int(t_cfg["ckpt_every"]) == 0:
                checkpoint()
            out_of_time = budget_s is not None and time.monotonic() - started > budget_s
            if world > 1:  # every rank must stop at the same step: vote at the log steps only
                out_of_time = out_of_time and step % log_every == 0
                if budget_s is not None and step % log_every == 0:
                    flag = torch.tensor([1.0 if out_of_time else 0.0], device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    out_of_time = bool(flag.item() > 0)
            mark = time.perf_counter()
            if step >= total_steps or out_of_time:
                stop = True
                if i + 1 == steps_per_epoch:  # epoch complete: count it, so a resume starts the next one
                    epoch += 1
                break
        else:
            epoch += 1
    bar.close()

    final_logs = read_logs() if last_logs else {}
    summary.update({"steps": step, "epochs": epoch, "world_size": world, "last_loss": final_logs.get("total"),
               "minutes": round((time.monotonic() - started) / 60, 2), "out_dir": str(out_dir)})
    if world > 1:
        summary["replicas_in_sync"] = replicas_in_sync(model)
    if rank == 0:
        res = evaluate_now()
        history.append({"step": step, "eval": res["summary"]})
        summary["eval"] = res["summary"]
        checkpoint(final=True)
        log_f.write(json.dumps({"summary": summary}) + "\n")
        log_f.close()
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary
