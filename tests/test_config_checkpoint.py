"""Run configuration validation and checkpoint round trips."""
import pytest
import torch

from interhand_perception.dir_net.checkpoint import read_checkpoint, save_checkpoint
from interhand_perception.training.config import DEFAULTS, load_run_config, parse_overrides


def test_defaults_validate():
    cfg = load_run_config(None)
    assert cfg["model"]["backbone"] == DEFAULTS["model"]["backbone"]


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {backbone: resnet18, img_size: 128}\ntrain: {epochs: 3}\n")
    cfg = load_run_config(p, parse_overrides(["train.batch_size=4", "data.kind=synthetic"]))
    assert cfg["model"]["backbone"] == "resnet18" and cfg["train"]["epochs"] == 3
    assert cfg["train"]["batch_size"] == 4


@pytest.mark.parametrize("yaml_text,match", [
    ("train: {epocs: 3}\n", "unknown config key 'train.epocs'"),
    ("train: {device: gpu}\n", "train.device"),
    ("train: {lr: -1}\n", "train.lr"),
    ("data: {kind: interhand26m}\n", "data.root"),
    ("model: {backbone: resnet99}\n", "resnet99"),
])
def test_invalid_configs_say_what_to_fix(tmp_path, yaml_text, match):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ValueError, match=match):
        load_run_config(p)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_run_config(tmp_path / "nope.yaml")


def test_checkpoint_round_trip_fp32_and_fp16(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    cfg = {"model": {"backbone": "resnet18"}, "train": {"lr": 1e-3}}
    p = save_checkpoint(tmp_path / "a.safetensors", net, cfg, step=7, extra={"note": "x"})
    state, info = read_checkpoint(p)
    assert info["config"] == cfg and info["step"] == 7 and info["extra"] == {"note": "x"}
    for k, v in net.state_dict().items():
        assert torch.equal(state[k], v)
    p16 = save_checkpoint(tmp_path / "b.safetensors", net, cfg, half=True)
    state16, _ = read_checkpoint(p16)
    assert state16["0.weight"].dtype == torch.float16
    assert state16["1.num_batches_tracked"].dtype == torch.int64  # integers stay integers


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="interhand train"):
        read_checkpoint(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="not an interhand_perception checkpoint"):
        read_checkpoint(tmp_path / "foreign.safetensors")
