"""Speed settings of the training loop (amp, channels_last, workers), throughput logging, the
deferred finiteness check, backbone weights and the attention loss, on a tiny CPU network."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from interhand_perception.dir_net.resnet import ResNetEncoder
from interhand_perception.training import trainer as trainer_mod
from interhand_perception.dir_net.checkpoint import read_checkpoint
from interhand_perception.training.config import load_run_config
from interhand_perception.dir_net.build import build_model
from interhand_perception.data.splits import build_train_set
from interhand_perception.training.data_setup import load_backbone_weights, mesh_tensors
from interhand_perception.training.losses import LossWeights, dir_loss_terms
from interhand_perception.training.trainer import resolve_num_workers, resolve_runtime, train
from tiny_config import TINY_MODEL

TINY = {
    "model": dict(TINY_MODEL),
    "data": {"kind": "synthetic", "train_samples": 16, "test_samples": 8, "num_workers": 0},
    "train": {"device": "cpu", "batch_size": 4, "max_steps": 4, "log_every": 2, "ckpt_every": 2,
              "eval_every": 100, "eval_samples": 4, "warmup_steps": 1, "threads": 1},
}


def tiny_cfg(out_dir: Path | None = None, **sections) -> dict:
    cfg = copy.deepcopy(TINY)
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    if out_dir is not None:
        cfg["train"]["out_dir"] = str(out_dir)
    return cfg


def load(tmp_path: Path, cfg: dict) -> dict:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return load_run_config(p)


def test_runtime_defaults_per_device(tmp_path):
    cfg = load(tmp_path, tiny_cfg(data={"num_workers": "auto"}))
    cpu = resolve_runtime(cfg, torch.device("cpu"))
    assert cpu.amp_dtype is None and not cpu.channels_last and not cpu.pin_memory and not cpu.fused_adam
    assert cpu.num_workers >= 1 and cpu.prefetch_factor == 2
    cuda = resolve_runtime(cfg, torch.device("cuda"))  # only reads the device type: no GPU needed
    assert cuda.amp_dtype == torch.bfloat16 and cuda.channels_last and cuda.pin_memory and cuda.fused_adam
    assert 1 <= cuda.num_workers <= 12 and cuda.prefetch_factor == 4
    off = load(tmp_path, tiny_cfg(train={"amp": "off", "channels_last": False}, data={"prefetch_factor": 3}))
    cuda_off = resolve_runtime(off, torch.device("cuda"))
    assert cuda_off.amp_dtype is None and not cuda_off.channels_last
    assert resolve_runtime(load(tmp_path, tiny_cfg(train={"amp": "bf16"})), torch.device("cpu")).amp_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16"):
        resolve_runtime(load(tmp_path, tiny_cfg(train={"amp": "fp16"})), torch.device("cpu"))
    assert resolve_num_workers(3, torch.device("cuda")) == 3


@pytest.mark.parametrize("section,values,match", [
    ("train", {"amp": "fp8"}, "train.amp"),
    ("train", {"channels_last": "yes"}, "train.channels_last"),
    ("train", {"compile": "fast"}, "train.compile"),
    ("data", {"num_workers": -1}, "data.num_workers"),
    ("data", {"num_workers": "many"}, "data.num_workers"),
    ("data", {"prefetch_factor": 0}, "data.prefetch_factor"),
    ("model", {"backbone_weights": 3}, "model.backbone_weights"),
    ("loss", {"atention": 1.0}, "unknown loss weights"),
])
def test_speed_keys_are_validated(tmp_path, section, values, match):
    with pytest.raises(ValueError, match=match):
        load(tmp_path, tiny_cfg(**{section: values}))


def test_bf16_forward_keeps_hand_models_and_losses_fp32(tmp_path):
    cfg = load(tmp_path, tiny_cfg())
    torch.manual_seed(0)
    model, hands = build_model(cfg, torch.device("cpu"))
    mesh = mesh_tensors(hands, torch.device("cpu"))
    data = build_train_set(cfg)
    batch = torch.utils.data.default_collate([data[i] for i in range(2)])
    weights = LossWeights(attention=0.5)
    model.eval()  # same BatchNorm statistics for both passes
    with torch.no_grad():
        ref, ref_logs = dir_loss_terms(model(batch["image"]), batch, mesh, weights)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = model(batch["image"])
            low, low_logs = dir_loss_terms(pred, batch, mesh, weights)
    assert pred["seg"].dtype == torch.bfloat16  # the convolutions did run in bf16
    for stage in pred["stages"]:  # ... but the hand models and camera in fp32
        for key in ("joints", "verts", "joints2d", "camera"):
            assert all(v.dtype == torch.float32 for v in stage[key].values()), key
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert set(low_logs) == set(ref_logs) and "attention" in low_logs
    assert float(low) == pytest.approx(float(ref), rel=0.05)


def _torchvision_names(encoder: ResNetEncoder) -> dict:
    """A torchvision-style ResNet state dict: the encoder's tensors (same names) plus ``fc``."""
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    state["fc.weight"] = torch.randn(1000, 512)
    state["fc.bias"] = torch.randn(1000)
    return state


def test_backbone_weights_load_from_pth_and_safetensors(tmp_path):
    cfg = load(tmp_path, tiny_cfg())
    torch.manual_seed(1)
    source = ResNetEncoder("resnet18")
    with torch.no_grad():
        source.bn1.running_mean.uniform_(-1, 1)  # buffers travel too
    state = _torchvision_names(source)
    torch.save(state, tmp_path / "r18.pth")
    save_file(state, str(tmp_path / "r18.safetensors"))
    for name in ("r18.pth", "r18.safetensors"):
        model, _ = build_model(cfg, torch.device("cpu"))
        assert not torch.equal(model.backbone.conv1.weight, source.conv1.weight)
        report = load_backbone_weights(model, tmp_path / name)
        assert sorted(report.ignored) == ["fc.bias", "fc.weight"] and report.ok
        for k, v in source.state_dict().items():
            assert torch.equal(model.backbone.state_dict()[k], v), k


def test_backbone_weights_refuse_a_wrong_depth_naming_the_keys(tmp_path):
    cfg = load(tmp_path, tiny_cfg())
    torch.save(_torchvision_names(ResNetEncoder("resnet34")), tmp_path / "r34.pth")
    model, _ = build_model(cfg, torch.device("cpu"))
    before = model.backbone.conv1.weight.clone()
    with pytest.raises(ValueError, match=r"r34\.pth.*unexpected: layer1\.2\.conv1\.weight"):
        load_backbone_weights(model, tmp_path / "r34.pth")
    assert torch.equal(model.backbone.conv1.weight, before)  # nothing half-loaded
    odd = _torchvision_names(ResNetEncoder("resnet18"))
    odd["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    del odd["layer4.1.bn2.bias"]
    torch.save(odd, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match=r"missing: layer4\.1\.bn2\.bias.*mismatched: conv1\.weight"):
        load_backbone_weights(model, tmp_path / "odd.pth")
    with pytest.raises(FileNotFoundError, match="backbone_weights"):
        load_backbone_weights(model, tmp_path / "none.pth")


def test_amp_run_logs_throughput_and_starts_from_backbone_weights(tmp_path):
    """bf16 autocast + channels_last + auto workers on the CPU, the attention loss on, and the
    backbone initialised from a file (lr ~0, so the final conv weights are still the file's)."""
    torch.manual_seed(2)
    source = ResNetEncoder("resnet18")
    torch.save(_torchvision_names(source), tmp_path / "r18.pth")
    out = tmp_path / "run"
    cfg = load(tmp_path, tiny_cfg(out, model={"backbone_weights": str(tmp_path / "r18.pth")},
                                  train={"amp": "bf16", "channels_last": True, "lr": 1e-12},
                                  data={"num_workers": "auto"}, loss={"attention": 0.1}))
    summary = train(cfg, quiet=True)
    assert summary["steps"] == 4 and summary["last_loss"] > 0
    records = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    losses = [r for r in records if "total" in r]
    assert [r["step"] for r in losses] == [2, 4]
    for r in losses:
        assert r["samples_per_s"] > 0 and 0.0 <= r["data_wait_frac"] <= 1.0
        assert r["attention"] > 0
    state, _ = read_checkpoint(out / "last.safetensors")
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight"):
        assert torch.allclose(state[f"backbone.{k}"], source.state_dict()[k], atol=1e-6), k


@pytest.mark.parametrize("log_every", [4, 100])  # found at the log step 4, or at the checkpoint of step 4
def test_nonfinite_loss_is_caught_at_the_next_check_and_never_saved(tmp_path, monkeypatch, log_every):
    real = trainer_mod.dir_loss_terms
    calls = {"n": 0}

    def poisoned(pred, batch, mesh, weights):
        loss, logs = real(pred, batch, mesh, weights)
        calls["n"] += 1
        if calls["n"] == 3:  # step 3: nothing is read back there
            loss = loss * float("nan")
        return loss, logs

    monkeypatch.setattr(trainer_mod, "dir_loss_terms", poisoned)
    out = tmp_path / "run"
    cfg = load(tmp_path, tiny_cfg(out, train={"log_every": log_every, "ckpt_every": 2}))
    with pytest.raises(FloatingPointError, match="between steps 3 and 4"):
        train(cfg, quiet=True)
    _state, info = read_checkpoint(out / "last.safetensors")
    assert info["step"] == 2  # the checkpoint of step 4 was not written
