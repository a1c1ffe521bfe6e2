"""End-to-end training runs on a tiny network (CPU): files, learning, resume and DDP."""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from interhand_perception.hand_model.joints import SIDES
from interhand_perception.training.checkpoint import load_train_state
from interhand_perception.dir_net.checkpoint import read_checkpoint
from interhand_perception.training.config import load_run_config
from interhand_perception.dir_net.build import build_hand_models, build_model
from interhand_perception.training.trainer import train
from tiny_config import TINY_MODEL

TINY = {
    "model": dict(TINY_MODEL),
    "data": {"kind": "synthetic", "train_samples": 16, "test_samples": 8, "num_workers": 0},
    "train": {"device": "cpu", "batch_size": 4, "max_steps": 4, "log_every": 2, "ckpt_every": 2,
              "eval_every": 4, "eval_samples": 4, "warmup_steps": 1, "threads": 1},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_config(path: Path, out_dir: Path, **sections) -> Path:
    """The tiny config with ``sections`` merged in, as a YAML file."""
    cfg = copy.deepcopy(TINY)
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    cfg["train"]["out_dir"] = str(out_dir)
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_log(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One 4-step training run shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("tiny_run")
    cfg = load_run_config(write_config(root / "tiny.yaml", root / "run"))
    summary = train(cfg, quiet=True)
    return cfg, summary, root / "run"


def test_short_run_writes_every_file(tiny_run):
    cfg, summary, out = tiny_run
    assert summary["steps"] == 4 and summary["world_size"] == 1
    assert summary["epochs"] == 1  # 16 samples at batch 4: the 4 steps are one complete epoch
    assert math.isfinite(summary["last_loss"]) and summary["last_loss"] > 0
    for name in ("config.yaml", "last.safetensors", "train_state.pt", "log.jsonl", "curves.png", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not (out / "model_fp16.safetensors").exists()  # save_half is off by default
    assert yaml.safe_load((out / "config.yaml").read_text()) == cfg

    log = read_log(out)
    losses = [r for r in log if "total" in r]
    assert [r["step"] for r in losses] == [2, 4]
    assert all(math.isfinite(r["total"]) and r["total"] > 0 for r in losses)
    assert {"joints3d", "verts3d", "joints2d", "offset", "seg", "dense", "stage0", "stage2", "lr"} <= set(losses[0])
    evals = [r for r in log if "eval" in r]
    assert evals and evals[0]["step"] == 4
    assert log[-1]["summary"]["steps"] == 4

    png = (out / "curves.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 5000

    written = json.loads((out / "summary.json").read_text())
    assert written["steps"] == 4
    for key in ("mpjpe_stage0", "mpjpe_stage1", "mpjpe_stage2", "mpjpe", "mpvpe", "mrrpe", "auc_0_50"):
        value = written["eval"][key]
        assert math.isfinite(value) and value >= 0, key
    assert written["eval"]["mpjpe"] == written["eval"]["mpjpe_stage2"]  # the headline is the last stage
    assert "mpjpe_stage3" not in written["eval"]


def test_checkpoint_embeds_config_and_hand_models(tiny_run):
    cfg, _summary, out = tiny_run
    state, info = read_checkpoint(out / "last.safetensors")
    assert info["config"] == cfg
    assert info["step"] == 4
    expected = {s: m.fingerprint for s, m in build_hand_models(cfg).items()}
    assert info["hand_models"] == expected
    assert all(info["hand_models"][s].startswith(f"builtin-{s}-") for s in SIDES)
    # the checkpoint rebuilds the network from its own config; hand-model arrays are not stored
    model, _ = build_model(info["config"], torch.device("cpu"))
    assert set(state) == set(model.state_dict())
    assert not any(k.startswith("hand_models.") for k in state)
    model.load_state_dict(state)
    ts = load_train_state(out / "train_state.pt")
    assert ts["step"] == 4 and ts["scheduler"]["last_epoch"] == 4


def test_training_overfits_a_tiny_fixed_set(tmp_path):
    """Four fixed samples, no augmentation, every step sees the same batch: the loss must fall."""
    out = tmp_path / "run"
    cfg = load_run_config(write_config(
        tmp_path / "c.yaml", out, data={"train_samples": 4, "augment": False},
        train={"max_steps": 30, "lr": 1.0e-3, "log_every": 1, "ckpt_every": 1000, "eval_every": 1000,
               "eval_samples": 2}))
    summary = train(cfg, quiet=True)
    totals = [r["total"] for r in read_log(out) if "total" in r]
    assert len(totals) == 30 and all(math.isfinite(t) for t in totals)
    first, end = totals[0], sum(totals[-3:]) / 3
    assert end < 0.35 * first, f"loss did not fall enough: first {first:.3f}, last three {totals[-3:]}"
    assert summary["last_loss"] == pytest.approx(totals[-1], abs=1e-4)


def _assert_same_state(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_continues_weights_optimizer_and_history(tiny_run, tmp_path):
    cfg, _summary, src = tiny_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    saved_state, _ = read_checkpoint(out / "last.safetensors")
    saved_ts = load_train_state(out / "train_state.pt")
    log_before = read_log(out)

    def resumed_cfg(max_steps: int) -> dict:
        c = copy.deepcopy(cfg)
        c["train"].update(out_dir=str(out), max_steps=max_steps)
        return c

    # resuming at the step already reached trains nothing: the weights written at the end are
    # exactly the loaded ones (a fresh initialisation would differ from the trained weights)
    summary = train(resumed_cfg(4), resume=True, quiet=True)
    assert summary["steps"] == 4
    state_again, info = read_checkpoint(out / "last.safetensors")
    assert info["step"] == 4
    _assert_same_state(state_again, saved_state)

    # two more steps
    summary = train(resumed_cfg(6), resume=True, quiet=True)
    assert summary["steps"] == 6 and math.isfinite(summary["last_loss"])
    state6, info6 = read_checkpoint(out / "last.safetensors")
    assert info6["step"] == 6
    assert any(not torch.equal(state6[k], saved_state[k]) for k in saved_state if saved_state[k].is_floating_point())

    ts = load_train_state(out / "train_state.pt")
    assert ts["step"] == 6 and ts["scheduler"]["last_epoch"] == 6
    assert saved_ts["epoch"] == 1 and ts["epoch"] == 1  # steps 5-6 are half of the second epoch
    adam_steps = {float(s["step"]) for s in ts["optimizer"]["state"].values()}
    old_steps = {float(s["step"]) for s in saved_ts["optimizer"]["state"].values()}
    assert old_steps == {4.0} and adam_steps == {6.0}  # AdamW moments continued, not restarted
    assert ts["history"][: len(saved_ts["history"])] == saved_ts["history"]
    assert [h["step"] for h in ts["history"] if "total" in h] == [2, 4, 6]

    log = read_log(out)
    assert log[: len(log_before)] == log_before  # appended, not rewritten
    assert [r["step"] for r in log if "total" in r] == [2, 4, 6]
    assert [r["summary"]["steps"] for r in log if "summary" in r] == [4, 4, 6]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "run"
    config = write_config(tmp_path / "ddp.yaml", out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "interhand_perception.cli", "train", "--config", str(config),
           "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["replicas_in_sync"] is True
    assert summary["steps"] == 4
    # 16 samples over 2 ranks at batch 4 = 2 steps per epoch: 4 steps are two full epochs
    assert summary["epochs"] == 2
    assert math.isfinite(summary["eval"]["mpjpe_stage2"])
    _state, info = read_checkpoint(out / "last.safetensors")
    assert info["step"] == 4
    assert [r["step"] for r in read_log(out) if "total" in r] == [2, 4]  # rank 0 alone writes the log
