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
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .checkpoint import load_train_state, read_checkpoint, save_checkpoint, save_train_state
from .curves import plot_curves
from .data_setup import build_model, build_test_set, build_train_set, mesh_tensors
from .losses import LossWeights, dir_loss


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available (torch.cuda.is_available() is False); use 'cpu' or 'auto'")
    return torch.device(name)


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


def cosine_with_warmup(optimizer, warmup: int, total: int):
    """Linear warm-up to the base lr, then cosine decay to 0 at ``total`` steps."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


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
    out_dir = Path(t_cfg["out_dir"])
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    model, hand_models = build_model(cfg, device)
    mesh = mesh_tensors(hand_models, device)
    weights = LossWeights.from_dict(cfg["loss"])
    train_set = build_train_set(cfg, hand_models)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                 seed=int(t_cfg["seed"])) if world > 1 else None
    loader = DataLoader(train_set, batch_size=int(t_cfg["batch_size"]), shuffle=sampler is None,
                        sampler=sampler, num_workers=int(cfg["data"]["num_workers"]), drop_last=True,
                        persistent_workers=int(cfg["data"]["num_workers"]) > 0)
    if len(loader) == 0:
        raise ValueError(f"batch_size {t_cfg['batch_size']} x {world} ranks exceeds the {len(train_set)} training samples")
    steps_per_epoch = len(loader)
    total_steps = int(t_cfg["max_steps"] or steps_per_epoch * int(t_cfg["epochs"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(t_cfg["lr"]), weight_decay=float(t_cfg["weight_decay"]))
    scheduler = cosine_with_warmup(optimizer, int(t_cfg["warmup_steps"]), total_steps)

    step, epoch, history = 0, 0, []
    if resume:
        state, _info = read_checkpoint(out_dir / "last.safetensors")
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        ts = load_train_state(out_dir / "train_state.pt")
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        step, epoch, history = ts["step"], ts["epoch"], ts["history"]

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    test_set = build_test_set(cfg, hand_models, limit=int(t_cfg["eval_samples"])) if rank == 0 else None
    started = time.monotonic()
    budget_s = float(t_cfg["max_minutes"]) * 60 if t_cfg["max_minutes"] else None
    log_f = open(out_dir / "log.jsonl", "a") if rank == 0 else None
    bar = tqdm(total=total_steps, initial=step, disable=quiet or rank != 0, desc="train", unit="step", dynamic_ncols=True)
    last_logs: dict = {}
    summary: dict = {}
    stop = False

    def checkpoint(final: bool = False) -> None:
        if rank != 0:
            return
        save_checkpoint(out_dir / "last.safetensors", model, cfg, step=step, hand_models=hand_models)
        if final and t_cfg["save_half"]:  # small fp16 copy for shipping; last.safetensors stays fp32
            save_checkpoint(out_dir / "model_fp16.safetensors", model, cfg, step=step,
                            hand_models=hand_models, half=True, extra={"eval": summary.get("eval", {})})
        save_train_state(out_dir / "train_state.pt", optimizer, scheduler, step, epoch, history)
        plot_curves(history, out_dir / "curves.png")

    def evaluate_now() -> dict:
        from ..evaluation.evaluate import evaluate_model

        res = evaluate_model(model, test_set, batch_size=int(t_cfg["batch_size"]), device=device,
                             with_iv=False, progress=False)
        model.train()
        return res

    model.train()
    while step < total_steps and not stop:
        if sampler is not None:
            sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            batch = to_device(batch, device)
            pred = net(batch["image"])
            loss, logs = dir_loss(pred, batch, mesh, weights)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t_cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(t_cfg["grad_clip"]))
            optimizer.step()
            scheduler.step()
            step += 1
            last_logs = logs
            bar.update(1)
            bar.set_postfix(loss=f"{logs['total']:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
            if rank == 0 and step % int(t_cfg["log_every"]) == 0:
                rec = {"step": step, "epoch": epoch, "time_s": round(time.monotonic() - started, 1),
                       "lr": scheduler.get_last_lr()[0], **{k: round(v, 5) for k, v in logs.items()}}
                history.append(rec)
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
            if rank == 0 and step % int(t_cfg["eval_every"]) == 0:
                res = evaluate_now()
                rec = {"step": step, "eval": res["summary"]}
                history.append(rec)
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
            if step % int(t_cfg["ckpt_every"]) == 0:
                checkpoint()
            out_of_time = budget_s is not None and time.monotonic() - started > budget_s
            if world > 1:  # every rank must stop at the same step
                flag = torch.tensor([1.0 if out_of_time else 0.0], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                out_of_time = bool(flag.item() > 0)
            if step >= total_steps or out_of_time:
                stop = True
                if i + 1 == steps_per_epoch:  # epoch complete: count it, so a resume starts the next one
                    epoch += 1
                break
        else:
            epoch += 1
    bar.close()

    summary.update({"steps": step, "epochs": epoch, "world_size": world, "last_loss": last_logs.get("total"),
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
