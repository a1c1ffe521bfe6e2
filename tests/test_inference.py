"""Inference on a tiny (untrained) checkpoint: HandReconstructor, evaluation and overlays."""
from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from interhand_perception.evaluation.evaluate import evaluate_checkpoint, evaluate_model, format_report
from interhand_perception.hand_model import load_hand_model
from interhand_perception.hand_model.joints import SIDES
from interhand_perception.network.reconstructor import (HandReconstructor, HandResult, TwoHandResult,
                                                        hand_confidence)
from interhand_perception.dir_net.checkpoint import save_checkpoint
from interhand_perception.training.config import load_run_config
from interhand_perception.dir_net.build import build_model
from interhand_perception.data.splits import build_test_set
from interhand_perception.dir_net.inputs import UNIT
from interhand_perception.visualization.overlay import (SIDE_COLOURS, overlay_two_hands, side_view,
                                                        weak_perspective_to_pixels)

from tiny_config import TINY_MODEL

S = TINY_MODEL["img_size"]


def make_checkpoint(path, **model_overrides):
    """An untrained tiny DIRNet saved the way the trainer saves it; returns (path, cfg)."""
    cfg = load_run_config(None, {"model": {**TINY_MODEL, **model_overrides},
                                 "data": {"train_samples": 8, "test_samples": 8, "num_workers": 0},
                                 "train": {"device": "cpu"}})
    torch.manual_seed(0)
    model, hand_models = build_model(cfg, torch.device("cpu"))
    save_checkpoint(path, model, cfg, step=3, hand_models=hand_models)
    return path, cfg


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def rec(ckpt):
    return HandReconstructor.from_checkpoint(ckpt[0], device="cpu")


@pytest.fixture(scope="module")
def samples(ckpt):
    ds = build_test_set(ckpt[1], limit=2)
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def result(rec, samples):
    return rec(samples[0]["image"])


# ---- HandReconstructor ------------------------------------------------------------------------
def test_from_checkpoint_reads_the_embedded_config(rec, ckpt):
    path, cfg = ckpt
    assert rec.img_size == S and rec.device.type == "cpu" and rec.dtype == torch.float32
    assert rec.checkpoint_info["step"] == 3 and rec.checkpoint_info["config"]["model"] == cfg["model"]
    assert rec.model.config.num_stages == 2 and not rec.model.training
    for s in SIDES:
        assert rec.faces[s].ndim == 2 and rec.faces[s].shape[1] == 3
        assert rec.hand_model_ids[s] == rec.hand_models[s].fingerprint


def test_single_crop_result_shapes_and_ranges(rec, result):
    assert isinstance(result, TwoHandResult) and result.crop_size == S
    num_stages = rec.model.config.num_stages
    assert len(result.stage_joints) == num_stages + 1
    for s in SIDES:
        h = result.hand(s)
        assert isinstance(h, HandResult) and h.side == s
        nv = rec.hand_models[s].num_verts
        shapes = {"vertices": (nv, 3), "joints": (21, 3), "joints2d": (21, 2), "global_orient": (3,),
                  "hand_pose": (45,), "pose_pca": (rec.model.config.num_pca,), "betas": (10,), "camera": (3,)}
        for name, shape in shapes.items():
            arr = getattr(h, name)
            assert arr.shape == shape, (s, name, arr.shape)
            assert np.isfinite(arr).all(), (s, name)
        assert isinstance(h.confidence, float) and 0.0 <= h.confidence <= 1.0
        assert h.camera[0] > 0
        np.testing.assert_allclose(h.joints[0], 0.0, atol=1e-6)  # wrist-relative
        # a plausible hand size: wrist to middle fingertip 5..40 cm
        assert 0.05 < np.linalg.norm(h.joints[12] - h.joints[0]) < 0.4
        # joints2d are the weak-perspective projection in pixels of the network crop
        np.testing.assert_allclose(h.joints2d, weak_perspective_to_pixels(h.joints, h.camera, S), atol=1e-3)
        for st in result.stage_joints:
            assert st[s].shape == (21, 3)
        np.testing.assert_array_equal(result.stage_joints[-1][s], h.joints)
    assert result.offset.shape == (3,) and np.isfinite(result.offset).all()


def test_offset_and_stages_match_the_raw_network_output(rec, samples, result):
    raw = rec.forward_raw(samples[0]["image"])
    last = raw["stages"][-1]
    np.testing.assert_allclose(result.offset, last["offset"][0].numpy() * UNIT, atol=1e-6)  # metres
    for t, st in enumerate(raw["stages"]):
        for s in SIDES:
            np.testing.assert_allclose(result.stage_joints[t][s], st["joints"][s][0].numpy(), atol=1e-6)


def test_batch_equals_single_calls(rec, samples, result):
    batch = np.stack([s["image"] for s in samples])
    out = rec(batch)
    assert isinstance(out, list) and len(out) == len(samples)
    assert all(isinstance(r, TwoHandResult) for r in out)
    for s in SIDES:
        np.testing.assert_allclose(out[0].hand(s).vertices, result.hand(s).vertices, atol=1e-5)
        assert out[0].hand(s).confidence == pytest.approx(result.hand(s).confidence, abs=1e-5)
    single1 = rec(samples[1]["image"])
    np.testing.assert_allclose(out[1].right.joints, single1.right.joints, atol=1e-5)
    assert not np.allclose(out[0].right.joints, out[1].right.joints)  # different images, different hands


def test_other_crop_sizes_are_resized(rec, samples):
    img = samples[0]["image"]
    big = cv2.resize(img, (96, 96), interpolation=cv2.INTER_LINEAR)
    r_big = rec(big)
    r_same = rec(cv2.resize(big, (S, S), interpolation=cv2.INTER_AREA))
    assert r_big.crop_size == S
    np.testing.assert_allclose(r_big.left.vertices, r_same.left.vertices, atol=1e-6)
    wide = rec(np.ascontiguousarray(np.zeros((40, 100, 3), np.uint8)))  # non-square: squashed to S x S
    assert wide.right.joints2d.shape == (21, 2) and np.isfinite(wide.right.vertices).all()
    flipped = rec(img[:, ::-1])  # negative strides are fine
    assert np.isfinite(flipped.left.joints).all()


@pytest.mark.parametrize("num_pca", [45, 12])
def test_returned_parameters_reproduce_the_vertices(tmp_path, samples, num_pca):
    """global_orient + hand_pose (axis-angle, hands mean included) + betas give the same mesh."""
    path, _cfg = make_checkpoint(tmp_path / "m.safetensors", num_pca=num_pca)
    r = HandReconstructor.from_checkpoint(path, device="cpu")
    res = r(samples[0]["image"])
    for s in SIDES:
        h = res.hand(s)
        assert h.pose_pca.shape == (num_pca,) and h.betas.shape == (10,)
        go = torch.from_numpy(h.global_orient)[None]
        pose = torch.from_numpy(h.hand_pose)[None]
        betas = torch.from_numpy(h.betas)[None]
        # hand_pose already contains the mean pose: a flat-mean model must not add it again
        flat = load_hand_model(s, flat_hand_mean=True)
        out = flat(go, pose, betas, pose_type="axis_angle", rot_type="axis_angle").root_relative()
        np.testing.assert_allclose(out.vertices[0].numpy(), h.vertices, atol=1e-4)
        np.testing.assert_allclose(out.joints[0].numpy(), h.joints, atol=1e-4)
        # the same with the network's own (mean-adding) model and the mean taken out
        hm = r.hand_models[s]
        assert not hm.flat_hand_mean
        out2 = hm(go, pose - hm.hands_mean, betas, pose_type="axis_angle").root_relative()
        np.testing.assert_allclose(out2.vertices[0].numpy(), h.vertices, atol=1e-4)
        # and the PCA coefficients are the network's pose
        np.testing.assert_allclose(h.hand_pose, (torch.from_numpy(h.pose_pca) @ hm.hands_components[:num_pca]
                                                 + hm.hands_mean).numpy(), atol=1e-5)


def test_hand_confidence_extremes():
    verts = torch.zeros(1, 10, 2)  # all at the crop centre
    verts[0, 5:] = 3.0  # half of them outside the crop
    hands = torch.zeros(1, 3, 8, 8)
    hands[:, 2] = 1.0  # every pixel is "right hand"
    background = torch.zeros(1, 3, 8, 8)
    background[:, 0] = 1.0
    assert hand_confidence(hands, verts, 1).item() == pytest.approx(0.5)  # other hand's pixels count
    assert hand_confidence(background, verts, 2).item() == pytest.approx(0.0)


def test_the_normaliser_on_the_device_gives_the_training_input(rec, samples):
    """Inference normalises the uint8 crops after the copy (``ImageNormaliser``); the numbers
    are those the network was trained on (``normalise_batch``) to float rounding."""
    from interhand_perception.dir_net.inputs import ImageNormaliser, normalise_batch

    crops = np.stack([s["image"] for s in samples])
    got = ImageNormaliser()(torch.from_numpy(crops))
    assert got.shape == (len(crops), 3, S, S) and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)  # the NHWC bytes, not copied
    torch.testing.assert_close(got, normalise_batch(crops), atol=2e-6, rtol=0)
    torch.testing.assert_close(rec.preprocess(crops), normalise_batch(crops), atol=2e-6, rtol=0)


def test_bf16_autocast_keeps_the_hand_models_fp32_and_stays_close(ckpt, rec, samples, result):
    """precision bf16: the forward under autocast (the CPU runs it too), weights and hand-model
    layer in fp32. An untrained tiny network amplifies rounding more than a trained one; the
    bound here only says the path is the same function (measured on the demo weights:
    docs/performance.md)."""
    half = HandReconstructor.from_checkpoint(ckpt[0], device="cpu", precision="bf16")
    assert half.autocast == torch.bfloat16 and next(half.model.parameters()).dtype == torch.float32
    with torch.inference_mode():
        raw = half.forward_raw(samples[0]["image"])
    assert raw["seg"].dtype == torch.bfloat16  # the heads ran in bf16
    assert raw["stages"][-1]["verts"]["left"].dtype == torch.float32  # the hand models did not
    got = half(samples[0]["image"])
    for s in SIDES:
        err = np.linalg.norm(got.hand(s).joints - result.hand(s).joints, axis=-1)
        assert np.isfinite(err).all() and 0 < err.max() < 0.03, (s, err.max())


def test_bad_inputs_raise_clear_errors(rec, tmp_path, ckpt):
    with pytest.raises(ValueError, match="uint8"):
        rec(np.zeros((S, S, 3), np.float32))
    with pytest.raises(ValueError, match=r"RGB images \(H, W, 3\)"):
        rec(np.zeros((S, S, 4), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        rec(np.zeros((S, S), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        rec(np.zeros((2, 3, S, S), np.uint8))  # channels first
    with pytest.raises(FileNotFoundError, match="demo weights.*interhand train"):
        HandReconstructor.from_checkpoint(tmp_path / "missing.safetensors", device="cpu")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        HandReconstructor.from_checkpoint(ckpt[0], device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, bf16"):
        HandReconstructor.from_checkpoint(ckpt[0], device="cpu", precision="int8")


def test_mano_checkpoint_needs_mano_dir(tmp_path, ckpt):
    _path, cfg = ckpt
    fake_mano = {s: SimpleNamespace(fingerprint=f"mano-{s}-0123456789ab") for s in SIDES}
    p = save_checkpoint(tmp_path / "mano.safetensors", torch.nn.Linear(1, 1), cfg, hand_models=fake_mano)
    with pytest.raises(FileNotFoundError, match="mano_dir"):
        HandReconstructor.from_checkpoint(p, device="cpu")


# ---- evaluation -------------------------------------------------------------------------------
SUMMARY_KEYS = {"mpjpe_stage0", "mpjpe_stage1", "mpjpe_stage2", "mpjpe", "mpvpe", "mpjpe_ms", "mpvpe_ms",
                "mpjpe_m", "mpvpe_m", "mrrpe", "miaa_px", "auc_0_50", "pck_20mm",
                # handedness diagnostics (evaluation.handedness; tests/test_handedness_diagnostics.py)
                "lr_seg_acc", "seg_acc", "lr_centre_dist_px", "lr_centre_dist_gt_px", "offset_spread",
                "offset_spread_gt", "palm_normal_err_deg", "palm_normal_err_deg_left",
                "palm_normal_err_deg_right", "palm_normal_err_const_deg", "palm_normal_err_const_deg_left",
                "palm_normal_err_const_deg_right"}


@pytest.fixture(scope="module")
def eval_result(rec, ckpt):
    ds = build_test_set(ckpt[1], limit=4)
    return evaluate_model(rec.model, ds, batch_size=2, device=rec.device, with_iv=False, progress=False)


def test_evaluate_model_metrics(eval_result):
    res = eval_result
    assert res["num_samples"] == 4
    s = res["summary"]
    assert set(s) == SUMMARY_KEYS  # no interpenetration without with_iv
    for k, v in s.items():
        assert math.isfinite(v), k
    for k in ("mpjpe", "mpvpe", "mrrpe", "miaa_px"):
        assert s[k] > 0, k
    assert 0.0 <= s["auc_0_50"] <= 1.0 and 0.0 <= s["pck_20mm"] <= 1.0
    assert s["mpjpe"] == s["mpjpe_stage2"]
    assert len(res["stages"]) == 3
    for rep in res["stages"]:
        assert {"wrist_scaled", "mcp_scaled", "mcp", "mrrpe"} <= set(rep)
        assert math.isfinite(rep["wrist_scaled"]["mpvpe"])
    pck = np.asarray(res["pck"]["pck"])
    assert len(res["pck"]["thresholds_mm"]) == len(pck) == 101
    assert (np.diff(pck) >= 0).all() and 0.0 <= pck[0] <= pck[-1] <= 1.0


def test_format_report(eval_result):
    text = format_report(eval_result)
    lines = text.splitlines()
    assert lines[0].startswith("evaluation on ") and "4 samples" in lines[0]
    assert "MPJPE" in text and "MRRPE" in text and "AUC(0-50 mm)" in text
    rows = [ln for ln in lines if ln.startswith(("initial", "refine"))]
    assert [r.split()[0] + (r.split()[1] if r.startswith("refine") else "") for r in rows] == [
        "initial", "refine1", "refine2"]
    assert f"{eval_result['stages'][2]['wrist_scaled']['mpjpe']:.2f}" in rows[2]
    assert f"MIAA {eval_result['summary']['miaa_px']:.2f} px" in text
    assert "interpenetration" not in text


def test_evaluate_checkpoint_end_to_end(ckpt, eval_result):
    res = evaluate_checkpoint(str(ckpt[0]), num_samples=4, iv_samples=2, device="cpu", batch_size=2)
    s = res["summary"]
    assert res["num_samples"] == 4 and res["data"] == "synthetic" and res["split"] == "test"
    assert res["config"]["model"]["backbone"] == "resnet18"
    assert SUMMARY_KEYS | {"iv_cm3", "iv_gt_cm3"} == set(s)
    assert math.isfinite(s["iv_cm3"]) and s["iv_cm3"] >= 0
    assert math.isfinite(s["iv_gt_cm3"]) and s["iv_gt_cm3"] >= 0
    # same weights, same deterministic test samples: the same numbers as evaluate_model
    assert s["mpjpe"] == pytest.approx(eval_result["summary"]["mpjpe"], rel=1e-6)
    assert "interpenetration volume" in format_report(res)


# ---- visualisation ----------------------------------------------------------------------------
def test_overlay_two_hands_draws_where_the_hands_are(rec, result):
    size = 2 * S  # overlay on a larger copy of the crop: points are rescaled
    image = np.full((size, size, 3), 128, np.uint8)
    out = overlay_two_hands(image, result, rec.faces, skeleton=False)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (image == 128).all()  # input untouched
    changed = (out != image).any(axis=-1)
    pix = np.concatenate([weak_perspective_to_pixels(result.hand(s).vertices, result.hand(s).camera, S) * 2
                          for s in SIDES])
    inside = ((pix >= 0) & (pix < size)).all(axis=1)
    assert inside.mean() > 0.5
    ij = np.floor(pix[inside]).astype(int)
    assert changed[ij[:, 1], ij[:, 0]].mean() > 0.8  # pixels under the mesh vertices are painted
    lo = np.clip(np.floor(pix.min(axis=0)).astype(int) - 2, 0, size)
    hi = np.clip(np.ceil(pix.max(axis=0)).astype(int) + 3, 0, size)
    box = np.zeros_like(changed)
    box[lo[1]:hi[1], lo[0]:hi[0]] = True
    assert not changed[~box].any()  # and nothing outside the hands' extent
    assert 0.02 < changed.mean() < 0.98
    with_skeleton = overlay_two_hands(image, result, rec.faces, skeleton=True)
    assert (with_skeleton != out).any()


def test_side_view_shows_both_hands(rec, result):
    img = side_view(result, rec.faces, size=96)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    bg = np.array([40, 40, 48], np.uint8)
    assert (img[0, 0] == bg).all() and (img[-1, -1] == bg).all()
    drawn = (img != bg).any(axis=-1)
    assert 0.05 < drawn.mean() < 0.95
    rgb = img.astype(int)
    assert SIDE_COLOURS["left"][2] > SIDE_COLOURS["left"][0] and SIDE_COLOURS["right"][0] > SIDE_COLOURS["right"][2]
    blueish = (rgb[..., 2] - rgb[..., 0] > 40).sum()
    orangeish = (rgb[..., 0] - rgb[..., 2] > 40).sum()
    assert blueish > 20 and orangeish > 20  # the left (blue) and the right (orange) hand are both there


def test_to_host_is_one_copy_that_keeps_every_array():
    """Post-processing (and the TensorRT backend's outputs) cross to the host as one flat array."""
    from interhand_perception.network.reconstructor import to_host

    tensors = {"a": torch.randn(2, 5, 3), "b": torch.arange(2 * 7, dtype=torch.float16).view(2, 7),
               "c": torch.tensor([0.25, 0.5]), "d": torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)}
    host = to_host(tensors)
    assert list(host) == list(tensors)
    for name, t in tensors.items():
        assert host[name].shape == tuple(t.shape) and host[name].dtype == np.float32
        np.testing.assert_array_equal(host[name], t.float().numpy())

    def root(a):
        while isinstance(a, np.ndarray) and a.base is not None:
            a = a.base
        return a
    assert len({id(root(v)) for v in host.values()}) == 1  # views into the one copied array
