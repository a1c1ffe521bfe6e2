"""Reduced precision against fp32 (evaluation/precision.py, issue 13 item 2), on a tiny DIRNet
with random weights and the first synthetic test samples.

* fp32 against fp32 through the same function: exactly 0 everywhere (the CPU forward is
  deterministic, so any nonzero number would be a bug in the comparison, not rounding).
* bf16 autocast: finite, nonzero and small. Bounds of about two bf16 steps at the scale of each
  output: bf16 keeps 8 significant bits, so one step at a 0.1 m hand size is 0.5 mm -> 1 mm on
  joints and vertices; one step of a 0.15 m offset (1.0 in the network's unit) is 1.2 mm -> 3 mm;
  0.5 px on the projected joints of a 64 px crop. Rounding inside the network lands far below
  that (this random network measures about 0.02 mm, 0.5 mm on the offset and 0.05 px), so a
  failure means something other than rounding (a wrong unit, outputs left in bf16).
* The hand models stay float32 under autocast: every floating-point tensor an operator makes
  inside ``DIRNet._decode`` is float32, and the vertices come out float32, while the pixel
  heads do run in bf16 (autocast is on).
* A dtype that CPU autocast refuses (float64) is reported as unsupported, not a crash; a hand
  with a non-finite output is left out of the comparison (and counted), not raised; the CLI
  prints the table.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_leaves
from torch.utils._python_dispatch import TorchDispatchMode

from interhand_perception import cli
from interhand_perception.data.splits import build_test_set
from interhand_perception.dir_net.build import build_model
from interhand_perception.dir_net.checkpoint import save_checkpoint
from interhand_perception.evaluation.precision import (SPREAD_KEYS, compare, finite_hands, format_precision_table,
                                                       lr_changes, parse_dtypes, precision_error, spread)
from interhand_perception.training.config import load_run_config
from tiny_config import TINY_MODEL

BOUNDS = {"joints_mm": 1.0, "verts_mm": 1.0, "offset_mm": 3.0, "joints2d_px": 0.5}


@pytest.fixture(scope="module")
def tiny():
    cfg = load_run_config(None, {"model": dict(TINY_MODEL), "data": {"num_workers": 0}, "train": {"device": "cpu"}})
    torch.manual_seed(0)
    model, hand_models = build_model(cfg, torch.device("cpu"))
    return cfg, model.eval(), hand_models, build_test_set(cfg, limit=6)


@pytest.fixture(scope="module")
def result(tiny):
    _, model, _, ds = tiny
    return precision_error(model, ds, dtypes=(torch.float32, torch.bfloat16, torch.float64), batch_size=4,
                           progress=False)


def test_fp32_against_fp32_is_exactly_zero(result):
    r = result["dtypes"]["fp32"]
    assert r["supported"] and r["nonfinite_samples"] == 0
    for key in SPREAD_KEYS:
        assert r[key] == {"median": 0.0, "p99": 0.0, "max": 0.0}, key
    assert all(s["max"] == 0.0 for s in r["stage_joints_mm"]) and len(r["stage_joints_mm"]) == 3
    assert r["worst_joint_mm"] == 0.0 and r["lr_seg_changed"] == 0.0 and r["lr_seg_pixels"] > 0
    assert r["mpjpe_mm"] == r["mpjpe_fp32_mm"] == result["mpjpe_fp32_mm"]


def test_bf16_error_is_finite_nonzero_and_small(result):
    r = result["dtypes"]["bf16"]
    assert r["supported"] and r["problem"] is None and r["nonfinite_samples"] == 0
    for key, bound in BOUNDS.items():
        s = r[key]
        assert all(np.isfinite(v) for v in s.values()), key
        assert 0.0 < s["median"] <= s["p99"] <= s["max"] < bound, (key, s)
    assert all(0.0 < s["max"] < BOUNDS["joints_mm"] for s in r["stage_joints_mm"])
    assert np.isfinite(r["mpjpe_mm"]) and abs(r["mpjpe_mm"] - r["mpjpe_fp32_mm"]) < BOUNDS["joints_mm"]
    assert 0.0 <= r["lr_seg_changed"] <= 1.0
    assert r["verts_dtype"] == "float32" and r["seg_dtype"] == "bfloat16"
    assert result["nonfinite_fp32"] == 0 and result["num_samples"] == 6


def test_unsupported_dtype_is_reported_not_raised(result):
    r = result["dtypes"]["float64"]
    assert r == {"supported": False, "problem": r["problem"]} and "not supported" in r["problem"]
    text = format_precision_table({**result, "data": "synthetic", "split": "test"})
    assert "| float64 | not supported on cpu" in text and "| bf16 | " in text and "stand-in" in text


class FloatOutputs(TorchDispatchMode):
    """The dtypes of the floating-point tensors every operator run under it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.dtypes.update(t.dtype for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point())
        return out


def test_hand_models_run_in_float32_under_autocast(tiny, monkeypatch):
    _, model, _, ds = tiny
    inner, seen = model._decode, set()

    def spying(params, offset):
        with FloatOutputs() as mode:
            out = inner(params, offset)
        seen.update(mode.dtypes)
        return out

    monkeypatch.setattr(model, "_decode", spying)
    images = torch.randn(2, 3, 64, 64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model(images)
    assert seen == {torch.float32}
    assert pred["seg"].dtype == torch.bfloat16  # autocast was on around the decoder
    for st in pred["stages"]:
        assert st["verts"]["left"].dtype == st["joints2d"]["right"].dtype == st["offset"].dtype == torch.float32
        assert all(torch.isfinite(st["verts"][s]).all() for s in ("left", "right"))


def test_helpers():
    assert parse_dtypes("bf16, fp16") == (torch.bfloat16, torch.float16)
    with pytest.raises(ValueError, match="bf16"):
        parse_dtypes("fp8")
    assert spread(np.array([np.nan, 1.0, 3.0])) == {"median": 2.0, "p99": pytest.approx(2.98), "max": 3.0}
    logits = np.zeros((1, 3, 1, 3))
    logits[0, 2] = [[1.0, -1.0, 1.0]]  # right, left, right
    other = logits.copy()
    other[0, 2, 0, 0] = -1.0  # first pixel flips to left
    assert lr_changes(other, logits, np.array([[[2, 0, 2]]])) == (1, 2)  # background pixel not counted


def test_a_non_finite_hand_is_left_out_not_raised():
    rng = np.random.default_rng(0)
    ref = [{"joints": rng.normal(size=(2, 2, 21, 3)) * 0.05, "verts": rng.normal(size=(2, 2, 30, 3)) * 0.05,
            "joints2d": rng.normal(size=(2, 2, 21, 2)), "verts2d": rng.normal(size=(2, 2, 30, 2)),
            "offset": rng.normal(size=(2, 3))}]
    test = [{k: v + 1e-3 for k, v in ref[0].items()}]  # a shift of every point: 0 once wrist-relative
    test[0]["joints"][:, :, 8, 0] += 1e-3  # and one joint of every hand 1 mm further
    test[0]["verts"][1, 0, 4] = np.nan  # sample 1, left hand
    ok = finite_hands(test)
    assert ok.tolist() == [[True, True], [False, True]]
    c = compare(test, ref, ok)
    assert all(np.isfinite(c[k][0]) for k in SPREAD_KEYS)
    assert np.isnan(c["offset_mm"][1]) and c["offset_mm"][0] == pytest.approx(0.0, abs=1e-9)  # needs both hands
    assert c["joints_mm"] == pytest.approx([1.0 / 21, 1.0 / 21], rel=1e-6)
    assert c["worst_joint_mm"] == pytest.approx([1.0, 1.0], rel=1e-6)


def test_cli_prints_the_table(tiny, tmp_path, capsys):
    cfg, model, hand_models, _ = tiny
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", model, cfg, hand_models=hand_models)
    out = tmp_path / "precision.json"
    rc = cli.main(["eval", "--checkpoint", str(ckpt), "--precision-check", "bf16", "--samples", "2",
                   "--batch-size", "2", "--device", "cpu", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "reduced precision against fp32: 2 samples of synthetic/test" in text and "| bf16 | " in text
    assert json.loads(out.read_text())["dtypes"]["bf16"]["supported"] is True
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--precision-check", "fp8", "--device", "cpu"]) == 2
