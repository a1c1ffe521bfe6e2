"""The ``interhand`` console command, run as a real subprocess."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from interhand_perception.dir_net.checkpoint import save_checkpoint
from interhand_perception.training.config import load_run_config
from interhand_perception.dir_net.build import build_model

_SCRIPT = Path(sys.executable).parent / "interhand"
INTERHAND = [str(_SCRIPT)] if _SCRIPT.is_file() else (
    [shutil.which("interhand")] if shutil.which("interhand") else [sys.executable, "-m", "interhand_perception.cli"])


def run_cli(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*INTERHAND, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)


def test_top_level_help():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for word in ("train", "eval", "bench", "gen-data", "torchrun", "--mano-dir"):
        assert word in proc.stdout, word


@pytest.mark.parametrize("command,options", [
    ("train", ["--config", "--resume", "--set", "--quiet", "train.out_dir", "torchrun"]),
    ("eval", ["--checkpoint", "--data", "--root", "--split", "--samples", "--iv-samples", "--mano-dir",
              "--device", "--batch-size", "--out", "interhand26m", "--precision-check", "autocast"]),
    ("bench", ["--backbones", "--stages", "--img-size", "--repeats", "--devices", "--threads", "--train",
               "--config", "--steps", "--warmup", "--batch", "--compile"]),
    ("gen-data", ["--out", "--num", "--split", "--img-size", "--seed", "--shard-size", "--workers", "--mano-dir"]),
    ("eval-placement", ["--edges", "--frames", "--single", "--seed", "--settings", "--focal", "--hfov", "--legacy",
                        "--out", "--save-frames", "known", "assumed", "depth"]),
])
def test_subcommand_help(command, options):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: interhand {command}")
    for opt in options:
        assert opt in proc.stdout, opt
    assert proc.stderr == ""


def test_no_command_is_a_usage_error():
    proc = run_cli()
    assert proc.returncode == 2
    assert "usage: interhand" in proc.stderr


def _one_line_error(proc: subprocess.CompletedProcess, prefix: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


def test_eval_missing_checkpoint_is_a_one_line_error(tmp_path):
    proc = run_cli("eval", "--checkpoint", tmp_path / "missing.safetensors", "--device", "cpu", cwd=tmp_path)
    line = _one_line_error(proc, "interhand eval: error: checkpoint not found")
    assert "missing.safetensors" in line and "interhand train" in line  # and how to get weights
    assert proc.stdout == ""


def test_train_unknown_config_key_names_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {backbone: resnet18}\ntrain: {epocs: 3}\n")
    proc = run_cli("train", "--config", bad, "--quiet", cwd=tmp_path)
    line = _one_line_error(proc, "interhand train: error: ")
    assert "'train.epocs'" in line and "epochs" in line
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_train_other_config_errors(tmp_path):
    line = _one_line_error(run_cli("train", "--config", tmp_path / "nope.yaml", cwd=tmp_path),
                           "interhand train: error: ")
    assert "config file not found" in line
    good = tmp_path / "c.yaml"
    good.write_text("model: {backbone: resnet18}\n")
    line = _one_line_error(run_cli("train", "--config", good, "--set", "train.lr", cwd=tmp_path), "interhand train: error: ")
    assert "section.key=value" in line
    line = _one_line_error(run_cli("train", "--config", good, "--set", "train.device=gpu", cwd=tmp_path),
                           "interhand train: error: ")
    assert "train.device" in line


def test_bench_prints_a_table(tmp_path):
    proc = run_cli("bench", "--backbones", "resnet18", "--stages", "0,1", "--img-size", "64", "--repeats", "2",
                   "--devices", "cpu", "--threads", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("DIR forward latency, batch 1, 64x64, 2 runs each")
    header = next(i for i, ln in enumerate(lines) if "params (M)" in ln)
    assert "median ms" in lines[header] and set(lines[header + 1]) == {"-"}
    rows = [ln.split() for ln in lines[header + 2:]]
    assert len(rows) == 2
    assert [r[:3] for r in rows] == [["cpu", "resnet18", "0"], ["cpu", "resnet18", "1"]]
    params = [float(r[3]) for r in rows]
    assert 11.0 < params[0] < params[1] < 200.0  # ResNet-18 alone has 11.2 M; a stage adds more
    for r in rows:
        median, p90, fps, ratio = map(float, r[4:8])
        assert median > 0 and p90 > 0 and fps == pytest.approx(1000.0 / median, rel=0.02)
    assert float(rows[0][7]) == 1.0


def test_bench_train_compares_old_and_new_paths(tmp_path):
    from tiny_config import TINY_MODEL

    cfg = {"model": dict(TINY_MODEL), "data": {"kind": "synthetic", "train_samples": 8, "num_workers": 0},
           "train": {"device": "cpu", "batch_size": 4}}
    (tmp_path / "tiny.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    proc = run_cli("bench", "--train", "--config", "tiny.yaml", "--steps", "2", "--warmup", "1", "--batch", "2",
                   "--devices", "cpu", "--threads", "1", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("DIR training throughput: tiny.yaml (resnet18, 64 px, T = 2), batch 2, 2 timed steps")
    assert "generated on the fly" in lines[0]
    header = next(i for i, ln in enumerate(lines) if "samples/s" in ln)
    assert "data_wait %" in lines[header] and "step ms" in lines[header] and set(lines[header + 1]) == {"-"}
    rows = [ln.split() for ln in lines[header + 2:]]
    assert [r[:2] for r in rows] == [["cpu", "old"], ["cpu", "new"]]
    for r in rows:
        sps, wait, step_ms, ratio = map(float, r[2:6])
        assert sps > 0 and 0 <= wait <= 100 and step_ms == pytest.approx(2000.0 / sps, rel=0.02)
    assert float(rows[0][5]) == 1.0
    assert "fp32" in lines[header + 2] and "0 workers" in lines[header + 2]  # old: the config's workers
    assert "0 workers" not in lines[header + 3]  # new: auto workers (at least 1)


def test_gen_data_writes_a_shard_and_meta(tmp_path):
    out = tmp_path / "syn"
    proc = run_cli("gen-data", "--out", out, "--num", 3, "--img-size", 64, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"wrote 3 train samples \(64px, generator version 2\)", proc.stdout)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["img_size"] == 64 and meta["config"]["seed"] == 0
    shards = sorted(out.glob("*.npz"))
    assert [p.name for p in shards] == ["train-00000.npz"]
    with np.load(shards[0]) as d:
        assert d["image"].shape == (3, 64, 64, 3) and d["image"].dtype == np.uint8
        assert d["joints3d"].shape == (3, 2, 21, 3) and np.isfinite(d["joints3d"]).all()
        assert d["image"].std() > 0


def test_eval_end_to_end_writes_json(tmp_path):
    cfg = load_run_config(None, {"model": {"backbone": "resnet18", "img_size": 64, "num_stages": 1, "width": 32,
                                           "mfp_kernel": 1, "gcn_node_weights": False},
                                 "data": {"num_workers": 0}, "train": {"device": "cpu"}})
    model, hand_models = build_model(cfg, torch.device("cpu"))
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", model, cfg, hand_models=hand_models)
    out = tmp_path / "res.json"
    proc = run_cli("eval", "--checkpoint", ckpt, "--samples", 2, "--iv-samples", 0, "--device", "cpu",
                   "--batch-size", 2, "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "evaluation on synthetic/test: 2 samples" in proc.stdout
    assert "refine 1" in proc.stdout and f"wrote {out}" in proc.stdout
    res = json.loads(out.read_text())
    assert res["num_samples"] == 2 and len(res["stages"]) == 2
    assert {"mpjpe_stage0", "mpjpe_stage1", "mpjpe", "mrrpe"} <= set(res["summary"])
    assert "iv_cm3" not in res["summary"]  # --iv-samples 0 skips interpenetration
