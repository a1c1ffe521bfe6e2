"""The clock-driven learning-rate schedule, starting from another checkpoint, and the generator
version in the run config (training/trainer.py, training/config.py)."""
import math

import pytest
import torch
from tiny_config import TINY_MODEL

from interhand_perception.dir_net.checkpoint import save_checkpoint
from interhand_perception.training.config import load_run_config
from interhand_perception.dir_net.build import build_model
from interhand_perception.training.trainer import cosine_with_warmup, init_weights


def _opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_time_schedule_follows_the_clock_not_the_steps():
    now = {"t": 0.0}
    opt = _opt()
    sched = cosine_with_warmup(opt, warmup=2, total=10 ** 6, clock=lambda: now["t"])
    lrs = []
    for t in (0.0, 0.0, 0.25, 0.5, 1.0, 1.7):  # progress by wall time
        now["t"] = t
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    # after warm-up (steps 1, 2) the factor is the cosine of the clock's progress
    assert lrs[1] == pytest.approx(1.0)
    assert lrs[2] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lrs[3] == pytest.approx(0.5)
    assert lrs[4] == pytest.approx(0.0, abs=1e-12) and lrs[5] == pytest.approx(0.0, abs=1e-12)


def test_step_schedule_unchanged():
    opt = _opt()
    sched = cosine_with_warmup(opt, warmup=0, total=4)
    lrs = []
    for _ in range(4):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)])


def test_time_schedule_needs_a_time_budget(tmp_path):
    from interhand_perception.training.trainer import train

    cfg = load_run_config(None, {"model": TINY_MODEL, "data": {"train_samples": 4, "test_samples": 2},
                                 "train": {"out_dir": str(tmp_path), "device": "cpu", "batch_size": 2,
                                           "lr_schedule": "time"}})
    with pytest.raises(ValueError, match="max_minutes"):
        train(cfg, quiet=True)


def test_init_from_loads_every_tensor_and_refuses_another_network(tmp_path):
    cfg = load_run_config(None, {"model": TINY_MODEL})
    a, hands = build_model(cfg, torch.device("cpu"))
    with torch.no_grad():
        for p in a.parameters():
            p.normal_()
    path = tmp_path / "a.safetensors"
    save_checkpoint(path, a, cfg, step=7, hand_models=hands)
    b, _ = build_model(cfg, torch.device("cpu"))
    n = init_weights(b, str(path))
    assert n == len(a.state_dict())
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)
    other = load_run_config(None, {"model": dict(TINY_MODEL, width=48)})
    c, _ = build_model(other, torch.device("cpu"))
    with pytest.raises(ValueError, match="does not fit"):
        init_weights(c, str(path))


def test_generator_version_is_checked():
    assert load_run_config(None)["data"]["generator_version"] == 2
    assert load_run_config(None, {"data": {"generator_version": 1}})["data"]["generator_version"] == 1
    with pytest.raises(ValueError, match="generator_version"):
        load_run_config(None, {"data": {"generator_version": 3}})


def test_overrides_read_exponent_numbers_as_numbers():
    from interhand_perception.training.config import parse_overrides

    o = parse_overrides(["train.lr=8e-4", "train.weight_decay=1E-5", "train.out_dir=runs/e5", "data.seed=3"])
    assert o["train"]["lr"] == pytest.approx(8e-4) and o["train"]["weight_decay"] == pytest.approx(1e-5)
    assert o["train"]["out_dir"] == "runs/e5" and o["data"]["seed"] == 3
    assert load_run_config(None, o)["train"]["lr"] == pytest.approx(8e-4)


LOADER_AFTER_OPENCV = """
import cv2, numpy as np, torch
from interhand_perception.training.trainer import Runtime, make_loader

class Warp(torch.utils.data.Dataset):
    def __len__(self):
        return 8
    def __getitem__(self, i):
        img = np.full((256, 256, 3), i, np.uint8)
        return torch.from_numpy(cv2.warpAffine(img, np.eye(2, 3), (128, 128)))

if __name__ == "__main__":
    big = np.zeros((2000, 2000, 3), np.uint8)
    for _ in range(20):  # the parent's OpenCV thread pool is busy and initialised
        cv2.resize(big, (1000, 1000))
    loader = make_loader(Warp(), 4, Runtime(num_workers=1, prefetch_factor=2))
    print("batches", sum(1 for _ in loader))
"""


def test_loader_workers_start_after_opencv_was_used(tmp_path):
    """A process that used OpenCV's thread pool before training (a test session did) must not
    hand its workers a locked pool: with forked workers this hung for good."""
    import subprocess
    import sys

    script = tmp_path / "loader_after_opencv.py"
    script.write_text(LOADER_AFTER_OPENCV)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "batches 2" in proc.stdout, proc.stderr[-2000:]
