"""The shipped demo weights are real, trained and self-describing.

They were trained on the synthetic data (generator version 2) with the built-in hand model
(configs/demo_r18_128.yaml);
this checks them on held-out synthetic test samples the way a user would load them.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from interhand_perception.evaluation.evaluate import evaluate_model
from interhand_perception.network import HandReconstructor
from interhand_perception.dir_net.checkpoint import read_checkpoint
from interhand_perception.data.splits import build_test_set

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "demo_r18_128.safetensors"
RESULTS = ROOT / "weights" / "demo_r18_128.eval.json"


@pytest.fixture(scope="module")
def rec():
    return HandReconstructor.from_checkpoint(WEIGHTS, device="cpu")


def test_weights_are_small_fp16_and_embed_their_config():
    assert WEIGHTS.stat().st_size <= 50 * 2**20
    state, info = read_checkpoint(WEIGHTS)
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype.itemsize == 2 for v in floats)
    assert info["config"]["model"]["backbone"] == "resnet18"
    assert all(fp.startswith("builtin-") for fp in info["hand_models"].values())
    assert info["step"] > 0


def test_demo_weights_beat_the_untrained_network_and_match_the_published_numbers(rec):
    import torch

    from interhand_perception.dir_net.build import build_model

    published = json.loads(RESULTS.read_text())["summary"]
    test_set = build_test_set(rec.config, rec.hand_models, limit=48)
    trained = evaluate_model(rec.model, test_set, batch_size=16, with_iv=False, progress=False)["summary"]
    torch.manual_seed(0)
    untrained_model, _ = build_model(rec.config, torch.device("cpu"))
    untrained = evaluate_model(untrained_model, test_set, batch_size=16, with_iv=False, progress=False)["summary"]
    # the same network before training (its initial mean guess) is worse on every error; measured
    # on these 48 samples: MPJPE 64 vs 138 mm, MIAA 17 vs 47 px, MPJPE-M 43 vs 75, MRRPE 105 vs 210
    for key in ("mpjpe", "mpvpe", "miaa_px"):
        assert trained[key] < 0.9 * untrained[key], (key, trained[key], untrained[key])
    for key in ("mpjpe_m", "mrrpe"):
        assert trained[key] < untrained[key], (key, trained[key], untrained[key])
    # and it tells the hands apart (measured: left/right pixels 0.85 vs 0.54, palm-normal error
    # 47 deg vs 81 for a constant guess; the weights shipped before this were at 0.54 and 94 deg)
    assert trained["lr_seg_acc"] > 0.75, trained["lr_seg_acc"]
    assert trained["palm_normal_err_deg"] < trained["palm_normal_err_const_deg"] - 20.0, trained
    # 48 of the 500 samples: within a generous band of the published full-split number
    assert abs(trained["mpjpe"] - published["mpjpe"]) < 0.25 * published["mpjpe"]
    assert np.isfinite([trained[k] for k in ("mpvpe", "mrrpe", "miaa_px")]).all()


def test_demo_weights_on_one_crop_as_a_user_would(rec):
    sample = build_test_set(rec.config, rec.hand_models, limit=1)[0]
    res = rec(sample["image"])
    for hand in (res.left, res.right):
        assert np.isfinite(hand.vertices).all() and hand.joints.shape == (21, 3)
        assert hand.vertices.shape == (rec.hand_models[hand.side].num_verts, 3)
        assert 0.0 <= hand.confidence <= 1.0
        assert np.allclose(hand.joints[0], 0.0, atol=1e-6)  # wrist-relative
