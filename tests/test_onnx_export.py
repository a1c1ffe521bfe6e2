"""ONNX export, the ONNX Runtime backend and the inference fast paths.

Parity is checked on rendered synthetic crops (not noise) for the tiny test model and the shipped
demo weights. The ONNX tests skip when onnx/onnxruntime are missing (the ``onnx`` extra installs
them; CI does).
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import time
import warnings

import numpy as np
import pytest
import torch

from interhand_perception.dir_net.inputs import normalise_batch
from interhand_perception.dir_net import build_dir_net
from interhand_perception.hand_model.joints import SIDES
from interhand_perception.paths import DEMO_WEIGHTS
from interhand_perception.network.export_onnx import (ExportWrapper, cached_onnx_path, ensure_onnx, export_checkpoint,
                                                       onnx_outputs_to_pred, output_names, read_metadata)
from interhand_perception.network.parity import PARITY_TOLERANCE, parity_images, parity_report
from interhand_perception.network.fast_inference import optimise_for_inference
from interhand_perception.network.backends import BackendUnavailable, normalise_images, select_providers
from interhand_perception.network.factory import make_backend
from interhand_perception.network.reconstructor import HandReconstructor
from interhand_perception.dir_net.checkpoint import save_checkpoint
from interhand_perception.training.config import load_run_config
from interhand_perception.dir_net.build import build_model

from tiny_config import TINY_MODEL

HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="onnx/onnxruntime not installed (pip install '.[onnx]')")
S = TINY_MODEL["img_size"]


def make_checkpoint(path, seed: int = 0):
    """A tiny DIRNet with random (non-zero) refinement updates, saved like the trainer does."""
    cfg = load_run_config(None, {"model": dict(TINY_MODEL), "data": {"num_workers": 0}, "train": {"device": "cpu"}})
    torch.manual_seed(seed)
    model, hands = build_model(cfg, torch.device("cpu"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".update." in name:  # zero-initialised: make the stages actually move the hands
                p.normal_(0.0, 1e-3)
    save_checkpoint(path, model, cfg, step=1, hand_models=hands)
    return path


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def tiny_onnx(tiny_ckpt, tmp_path_factory):
    if not HAVE_ONNX:
        pytest.skip("onnx/onnxruntime not installed")
    return export_checkpoint(tiny_ckpt, tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory):
    if not HAVE_ONNX:
        pytest.skip("onnx/onnxruntime not installed")
    return export_checkpoint(DEMO_WEIGHTS, tmp_path_factory.mktemp("demo_onnx") / "demo.onnx")


@pytest.fixture(scope="module")
def tiny_images():
    return parity_images(3, S)


def max_abs(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# ----------------------------------------------------------------------------- fast paths (no ONNX)
@pytest.mark.parametrize("mfp_mode", ["bone", "joint", "single"])
def test_fast_paths_match_the_network(mfp_mode):
    """Batched hand models + factorised 1x1 MFP: same stage outputs to float rounding."""
    torch.manual_seed(1)
    ref = build_dir_net({**TINY_MODEL, "mfp_mode": mfp_mode}).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0.0, 0.05)
    fast = copy.deepcopy(ref)
    applied = optimise_for_inference(fast)
    assert "batched_decode" in applied and ("factorised_mfp" in applied) == (mfp_mode != "single")
    assert fast.state_dict().keys() == ref.state_dict().keys()  # checkpoint format untouched
    x = torch.randn(2, 3, S, S)
    with torch.inference_mode():
        a, b = ref(x), fast(x)
    for sa, sb in zip(a["stages"], b["stages"]):
        for k in ("verts", "joints", "params", "camera"):
            for s in SIDES:
                assert max_abs(sa[k][s], sb[k][s]) < 2e-6, (k, s)
    assert max_abs(a["seg"], b["seg"]) < 1e-4 and max_abs(a["dense"], b["dense"]) < 1e-5
    clone = copy.deepcopy(fast)  # the installed paths follow the copy, not the original
    assert clone.hand_pair is not None and clone.hand_pair is not fast.hand_pair
    if mfp_mode != "single":
        assert all(st.mfp.forward.args[0] is st.mfp for st in clone.stages)
    with torch.inference_mode():
        c = clone(x)
    assert max_abs(c["stages"][-1]["verts"]["left"], b["stages"][-1]["verts"]["left"]) == 0.0


@pytest.mark.parametrize("variant", ["project", "release"])
def test_batched_hand_layer_on_extreme_parameters(variant):
    """Large rotations / poses / shapes (not just what a trained net outputs): the batched pair
    of hand models (``decode_pair``) agrees with the models called one side at a time."""
    cfg = TINY_MODEL if variant == "project" else {"variant": "release", "backbone": "resnet18", "img_size": 64,
                                                   "width": 32, "joint_dim": 32}
    net = build_dir_net(cfg).eval()
    assert net.hand_pair is not None
    g = torch.Generator().manual_seed(0)
    params = {s: torch.randn(5, net.config.num_params, generator=g) * 3.0 for s in SIDES}
    offset = torch.randn(5, 3, generator=g)
    with torch.inference_mode():
        a, b = net.decode_each(params, offset), net.decode(params, offset)
    for k in ("verts", "joints"):
        for s in SIDES:
            assert max_abs(a[k][s], b[k][s]) < 1e-6
    assert sorted(a) == sorted(b)


def test_normalise_images_matches_normalise_batch(tiny_images):
    ref = normalise_batch(tiny_images).numpy()
    out = normalise_images(tiny_images)
    assert out.dtype == np.float32 and out.shape == ref.shape and out.flags.c_contiguous
    assert max_abs(out, ref) < 1e-6


def test_output_names_layout():
    names = output_names(2)
    assert len(names) == len(set(names)) == 2 * 6 + 2 + 2 * 2
    assert names[:2] == ["left_verts", "left_joints"] and "seg" in names and names[-1] == "stage1_right_joints"


def test_adapter_rebuilds_what_postprocess_reads(tiny_ckpt, tiny_images):
    """Flat outputs -> pred dict -> postprocess gives the PyTorch results exactly."""
    rec = HandReconstructor.from_checkpoint(tiny_ckpt, device="cpu")
    x = rec.preprocess(tiny_images)
    with torch.inference_mode():
        flat = ExportWrapper(rec.model)(x)
        ref = rec.postprocess(rec.model(x))
    pred = onnx_outputs_to_pred([t.numpy() for t in flat], output_names(rec.model.config.num_stages))
    out = rec.postprocess(pred)
    rep = parity_report(ref, out)
    assert max(rep.values()) == 0.0, rep
    with pytest.raises(ValueError, match="output names"):
        onnx_outputs_to_pred([t.numpy() for t in flat])


# ----------------------------------------------------------------------------- export + parity
@needs_onnx
def test_tiny_export_parity_and_dynamic_batch(tiny_ckpt, tiny_onnx, tiny_images):
    rec = HandReconstructor.from_checkpoint(tiny_ckpt, device="cpu")
    ort_b = make_backend("onnxruntime", tiny_ckpt, device="cpu", onnx_path=tiny_onnx, threads=1)
    ref = rec(tiny_images)
    batch = ort_b(tiny_images)  # B = 3
    singles = [ort_b(img) for img in tiny_images]  # B = 1 each
    rep = parity_report(ref, batch)
    print("tiny model, max |PyTorch - ONNX Runtime|:", json.dumps({k: f"{v:.1e}" for k, v in rep.items()}))
    assert all(rep[k] <= tol for k, tol in PARITY_TOLERANCE.items()), rep
    rep_b = parity_report(batch, singles)
    print("tiny model, max |B=3 - B=1|:", json.dumps({k: f"{v:.1e}" for k, v in rep_b.items()}))
    assert rep_b["vertices"] < 1e-5 and rep_b["joints"] < 1e-5 and rep_b["confidence"] < 1e-5


@needs_onnx
def test_demo_export_parity(demo_onnx):
    """The shipped model on rendered crops: vertices/joints agree to ~1e-5 m or better."""
    rec = HandReconstructor.from_checkpoint(DEMO_WEIGHTS, device="cpu")
    ort_b = make_backend("onnxruntime", DEMO_WEIGHTS, device="cpu", onnx_path=demo_onnx, threads=1)
    images = parity_images(4, rec.img_size)
    rep = parity_report(rec(images), ort_b(images))
    print("demo model, max |PyTorch - ONNX Runtime|:", json.dumps({k: f"{v:.1e}" for k, v in rep.items()}))
    assert rep["vertices"] < 1e-5 and rep["joints"] < 1e-5 and rep["offset"] < 1e-5
    assert rep["confidence"] < 1e-5 and rep["joints2d_px"] < 1e-3
    assert all(rep[k] <= tol for k, tol in PARITY_TOLERANCE.items()), rep


@needs_onnx
def test_metadata_present(tiny_ckpt, tiny_onnx):
    from interhand_perception.dir_net.checkpoint import file_sha256

    meta = read_metadata(tiny_onnx)
    assert meta["format"] == "interhand_perception/dir-onnx-v1"
    assert meta["checkpoint_sha256"] == file_sha256(tiny_ckpt)
    assert int(meta["img_size"]) == S and int(meta["opset"]) >= 17
    assert json.loads(meta["config"])["model"]["width"] == TINY_MODEL["width"]
    assert set(json.loads(meta["hand_models"])) == set(SIDES)
    assert json.loads(meta["outputs"]) == output_names(TINY_MODEL["num_stages"])
    assert meta["torch"] == torch.__version__ and meta["onnx"] and meta["export_version"]
    import onnx

    model = onnx.load(str(tiny_onnx))
    assert model.opset_import[0].version >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@needs_onnx
def test_cache_reuses_the_file_and_reexports_a_changed_checkpoint(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors", seed=0)
    cache = tmp_path / "cache"
    messages = []
    first = ensure_onnx(ckpt, directory=cache, progress=messages.append)
    assert first == cached_onnx_path(ckpt, directory=cache) and any("exporting" in m for m in messages)
    stamp = first.stat().st_mtime_ns
    messages.clear()
    assert ensure_onnx(ckpt, directory=cache, progress=messages.append) == first
    assert first.stat().st_mtime_ns == stamp and not messages  # reused, not re-exported
    time.sleep(0.01)
    make_checkpoint(ckpt, seed=1)  # same file name, other weights
    second = ensure_onnx(ckpt, directory=cache)
    assert second != first and second.is_file()
    from interhand_perception.dir_net.checkpoint import file_sha256

    assert read_metadata(second)["checkpoint_sha256"] == file_sha256(ckpt)
    second.write_bytes(b"truncated")  # a broken cache entry is exported again
    assert read_metadata(ensure_onnx(ckpt, directory=cache))["checkpoint_sha256"] == file_sha256(ckpt)
    # the backend finds the cached file by itself
    backend = make_backend("onnxruntime", ckpt, device="cpu", threads=1, cache_dir=cache)
    assert backend.onnx_path == second


@needs_onnx
def test_onnx_of_another_checkpoint_is_rejected(tmp_path, tiny_onnx):
    other = make_checkpoint(tmp_path / "other.safetensors", seed=3)
    with pytest.raises(ValueError, match="another checkpoint"):
        make_backend("onnxruntime", other, device="cpu", onnx_path=tiny_onnx)


# ----------------------------------------------------------------------------- backends
@needs_onnx
def test_frame_processor_gives_the_same_placed_hands(demo_onnx):
    """make_backend("onnxruntime") drops into FrameProcessor unchanged and agrees with "pytorch"."""
    from interhand_perception.pipeline.frame import FrameProcessor
    from interhand_perception.pipeline.placement import Intrinsics

    pt = make_backend("pytorch", DEMO_WEIGHTS, device="cpu")
    ob = make_backend("onnxruntime", DEMO_WEIGHTS, device="cpu", onnx_path=demo_onnx, threads=1)
    for attr in ("img_size", "hand_model_ids"):
        assert getattr(pt, attr) == getattr(ob, attr)
    assert all(np.array_equal(pt.faces[s], ob.faces[s]) for s in SIDES) and set(ob.hand_models) == set(SIDES)
    crop = parity_images(1, pt.img_size)[0]
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[56:184, 96:224] = crop  # the centre square crop of this frame is the rendered crop
    intr = Intrinsics(fx=300.0, fy=300.0, cx=160.0, cy=120.0, width=320, height=240)
    a = FrameProcessor(pt, crop_mode="center")(frame, intr)
    b = FrameProcessor(ob, crop_mode="center")(frame, intr)
    for name in ("joints", "vertices", "wrist", "right_minus_left"):
        diff = max_abs(getattr(a.placed, name), getattr(b.placed, name))
        print(f"placed {name}: max |pytorch - onnxruntime| = {diff:.1e} m")
        assert diff < 1e-4, name
    assert max_abs(a.placed.wrist_quaternion, b.placed.wrist_quaternion) < 1e-4
    assert max_abs(a.confidence, b.confidence) < 1e-5 and max_abs(a.pose, b.pose) < 1e-4


@needs_onnx
def test_missing_provider_falls_back_or_fails_clearly(tiny_ckpt, tiny_onnx):
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        with pytest.warns(RuntimeWarning, match="no CUDAExecutionProvider"):
            backend = make_backend("onnxruntime", tiny_ckpt, device="cuda", onnx_path=tiny_onnx)
        assert backend.device.type == "cpu" and "CPU" in backend.describe()
    with pytest.raises(BackendUnavailable, match="not available in this onnxruntime"):
        make_backend("onnxruntime", tiny_ckpt, onnx_path=tiny_onnx, providers=["NoSuchExecutionProvider"])
    with pytest.raises(ValueError, match="fp16"):
        make_backend("onnxruntime", tiny_ckpt, device="cpu", precision="fp16", onnx_path=tiny_onnx)


def test_provider_selection():
    cpu_only = ["CPUExecutionProvider"]
    assert select_providers("auto", "fp32", cpu_only) == (cpu_only, None)
    providers, note = select_providers("cuda:1", "fp32", cpu_only)
    assert providers == cpu_only and "onnxruntime-gpu" in note
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    providers, note = select_providers("cuda:1", "fp16", gpu)
    assert providers[0][0] == "TensorrtExecutionProvider" and providers[0][1]["trt_fp16_enable"] and note is None
    assert select_providers("auto", "fp32", gpu)[0][0] == ("CUDAExecutionProvider", {"device_id": 0})
    with pytest.raises(BackendUnavailable, match="TensorrtExecutionProvider"):
        select_providers("cuda", "fp16", gpu[1:])
    with pytest.raises(ValueError, match="device"):
        select_providers("tpu", "fp32", gpu)


def test_tensorrt_and_unknown_backends_fail_clearly(monkeypatch, tiny_ckpt):
    from interhand_perception.network import factory as ib

    def unavailable():
        raise BackendUnavailable("the TensorRT backend is not available (test)")

    monkeypatch.setattr(ib, "import_tensorrt_backend", unavailable)
    with pytest.raises(BackendUnavailable, match="TensorRT"):
        make_backend("tensorrt", tiny_ckpt, device="cuda")

    class Failing:
        def __init__(self, checkpoint, **kwargs):
            raise RuntimeError("no CUDA GPU")

    monkeypatch.setattr(ib, "import_tensorrt_backend", lambda: Failing)
    with pytest.raises(BackendUnavailable, match="cannot run here: no CUDA GPU"):
        make_backend("tensorrt", tiny_ckpt, device="cuda", onnx_path="unused.onnx")
    with pytest.raises(ValueError, match="backend must be one of"):
        make_backend("tflite", tiny_ckpt)


def test_pytorch_backend_is_the_reconstructor_with_fast_paths(tiny_ckpt, tiny_images):
    rec = HandReconstructor.from_checkpoint(tiny_ckpt, device="cpu")
    pt = make_backend("pytorch", tiny_ckpt, device="cpu")
    assert pt.fast_paths == ["batched_decode", "factorised_mfp"] and pt.device.type == "cpu"
    rep = parity_report(rec(tiny_images), pt(tiny_images))
    assert rep["vertices"] < 1e-6 and rep["joints"] < 1e-6, rep
    assert len(pt(tiny_images[0]).stage_joints) == TINY_MODEL["num_stages"] + 1


@needs_onnx
def test_cli_export_with_check(tmp_path, tiny_ckpt, capsys):
    from interhand_perception.cli import main

    out = tmp_path / "cli.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["export", "onnx", "--checkpoint", str(tiny_ckpt), "--out", str(out), "--check", "--samples", "2"])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file() and os.access(out, os.R_OK)
    assert "wrote" in text and "parity OK" in text and "max |diff| vertices" in text


@needs_onnx
def test_release_variant_export_parity(tmp_path):
    """The release variant exported with both hands in one HandPair (issue 13) on MANO-topology
    models (the left middle tip at vertex 445): ONNX Runtime gives PyTorch's stages."""
    import onnxruntime as ort

    from interhand_perception.network.export_onnx import INPUT_NAME, export_model
    from release_fixtures import synthetic_hand_models

    torch.manual_seed(0)
    net = build_dir_net({"variant": "release", "backbone": "resnet18", "img_size": S, "width": 32, "joint_dim": 32},
                        synthetic_hand_models()).eval()
    path = export_model(net, tmp_path / "release.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, S, S, generator=torch.Generator().manual_seed(2))
    pred = onnx_outputs_to_pred(sess.run(None, {INPUT_NAME: x.numpy()}), [o.name for o in sess.get_outputs()])
    with torch.inference_mode():
        ref = net(x)
    last, ort_last = ref["stages"][-1], pred["stages"][-1]  # the graph has every stage's joints, the last in full
    for s in SIDES:
        for key in ("verts", "joints", "camera"):
            assert max_abs(last[key][s], ort_last[key][s]) < 1e-5, (key, s)
        assert max_abs(last["joints2d"][s], ort_last["joints2d"][s]) < 1e-4
        for t in range(len(ref["stages"]) - 1):
            assert max_abs(ref["stages"][t]["joints"][s], pred["stages"][t]["joints"][s]) < 1e-5, (t, s)
