"""TensorRT engine cache: keys, atomic writes, rebuild of stale engines, the missing-TensorRT error.

This machine has no NVIDIA GPU and no TensorRT, so nothing here builds or runs a real engine.
What can be tested without them is tested for real: the cache key, the file handling, the
INT8 calibration feed, the progress reporter and the input conversion. The load-or-rebuild
logic is driven through its injection seam (``builder`` / ``deserialize``) with stand-ins that
mimic TensorRT (a deserializer returning None for bytes it does not accept, as
``IRuntime.deserialize_cuda_engine`` does): that is mocking what cannot exist here, not a test
of TensorRT itself.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest

from interhand_perception.network import tensorrt_engine as te

GOOD = b"ENGINE:"


@pytest.fixture()
def onnx_file(tmp_path: Path) -> Path:
    p = tmp_path / "dir.onnx"
    p.write_bytes(b"fake onnx model bytes")
    return p


def _key(path: Path, **kw) -> str:
    args = {"precision": "fp16", "trt_version": "10.3.0.30", "gpu_name": "Orin sm87"} | kw
    return te.engine_cache_key(path, args["precision"], args["trt_version"], args["gpu_name"], args.get("extra", ""))


# ----------------------------------------------------------------------------- cache key

def test_key_is_stable(onnx_file: Path) -> None:
    assert _key(onnx_file) == _key(onnx_file)
    copy = onnx_file.with_name("renamed.onnx")
    copy.write_bytes(onnx_file.read_bytes())
    assert _key(copy) == _key(onnx_file)  # the bytes count, not the name


@pytest.mark.parametrize("change", [{"precision": "int8"}, {"precision": "fp32"}, {"trt_version": "10.9.0.34"},
                                    {"gpu_name": "NVIDIA GeForce RTX 4090 sm89"}, {"extra": "b4"}])
def test_key_changes_with_each_component(onnx_file: Path, change: dict) -> None:
    assert _key(onnx_file, **change) != _key(onnx_file)


def test_key_changes_with_model_bytes(onnx_file: Path) -> None:
    before = _key(onnx_file)
    onnx_file.write_bytes(b"fake onnx model bytes, retrained")
    assert _key(onnx_file) != before


def test_key_is_filesystem_safe(onnx_file: Path, tmp_path: Path) -> None:
    key = _key(onnx_file, gpu_name="NVIDIA RTX A6000 / (PCIe) 48GB: \"ws\"\\ sm86", trt_version="10.3.0+cuda12.6",
               extra="b 4/x")
    assert re.fullmatch(r"[a-z0-9.-]+", key), key
    assert ".." not in key and len(key) < 160
    assert te.engine_path(tmp_path, key).parent == tmp_path
    te.atomic_write_bytes(te.engine_path(tmp_path, key), b"x")  # a valid file name here


def test_key_names_its_parts(onnx_file: Path) -> None:
    key = _key(onnx_file, gpu_name="NVIDIA GeForce RTX 4090 sm89", extra="b4")
    digest = te.file_sha256(onnx_file)[:16]
    assert key == f"{digest}-fp16-trt10.3.0.30-nvidia-geforce-rtx-4090-sm89-b4"


def test_key_rejects_unknown_precision(onnx_file: Path) -> None:
    with pytest.raises(ValueError, match="precision"):
        _key(onnx_file, precision="bf16")


def test_engine_path_expands_home() -> None:
    assert te.engine_path("~/cache", "k") == Path.home() / "cache" / "k.engine"


# ----------------------------------------------------------------------------- atomic write

def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.engine"
    te.atomic_write_bytes(target, b"old")
    te.atomic_write_bytes(target, bytearray(b"new engine"))
    assert target.read_bytes() == b"new engine"
    assert os.listdir(target.parent) == ["a.engine"]  # no temporary files left


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.engine"
    target.write_bytes(b"old")

    class Broken:  # not a buffer: memoryview() fails half-way through the write
        pass

    with pytest.raises(TypeError):
        te.atomic_write_bytes(target, Broken())
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.engine"]


# ----------------------------------------------------------------------------- load or rebuild

class FakeTensorRT:
    """Stand-ins for build_engine and IRuntime.deserialize_cuda_engine (see the module docstring)."""

    def __init__(self) -> None:
        self.builds: list[dict] = []
        self.loads = 0

    def builder(self, onnx_path, cache_dir, *, key, **kw) -> Path:
        self.builds.append({"key": key, **kw})
        return te.atomic_write_bytes(te.engine_path(cache_dir, key), GOOD + Path(onnx_path).read_bytes())

    def deserialize(self, data: bytes):
        self.loads += 1
        return {"engine": data} if data.startswith(GOOD) else None


def _load(onnx_file: Path, cache: Path, fake: FakeTensorRT, messages: list, **kw):
    args = {"precision": "fp16", "max_batch": 2, "trt_version": "10.3.0.30", "gpu_name": "Orin sm87"} | kw
    return te.load_or_build(onnx_file, cache, progress=messages.append, builder=fake.builder,
                            deserialize=fake.deserialize, **args)


def test_builds_when_missing_then_reuses(onnx_file: Path, tmp_path: Path) -> None:
    fake, msgs, cache = FakeTensorRT(), [], tmp_path / "engines"
    engine = _load(onnx_file, cache, fake, msgs)
    assert engine["engine"].startswith(GOOD) and len(fake.builds) == 1
    assert fake.builds[0]["max_batch"] == 2 and fake.builds[0]["precision"] == "fp16"
    assert any("building" in m for m in msgs)
    msgs.clear()
    _load(onnx_file, cache, fake, msgs)
    assert len(fake.builds) == 1 and any("cached" in m for m in msgs)


@pytest.mark.parametrize("stale", [b"garbage", b""])
def test_rejected_engine_is_deleted_and_rebuilt(onnx_file: Path, tmp_path: Path, stale: bytes) -> None:
    fake, msgs, cache = FakeTensorRT(), [], tmp_path / "engines"
    key, path = te.engine_location(onnx_file, cache, "fp16", 2, "10.3.0.30", "Orin sm87")
    te.atomic_write_bytes(path, stale)
    engine = _load(onnx_file, cache, fake, msgs)
    assert engine is not None and len(fake.builds) == 1 and fake.builds[0]["key"] == key
    assert path.read_bytes().startswith(GOOD)
    assert any("could not be loaded" in m and "rebuilding" in m for m in msgs)


def test_deserializer_exception_also_rebuilds(onnx_file: Path, tmp_path: Path) -> None:
    fake, msgs, cache = FakeTensorRT(), [], tmp_path / "engines"
    _, path = te.engine_location(onnx_file, cache, "fp16", 2, "10.3.0.30", "Orin sm87")
    te.atomic_write_bytes(path, GOOD + b"x")
    calls = []

    def flaky(data: bytes):
        calls.append(data)
        if len(calls) == 1:
            raise RuntimeError("engine plan from another TensorRT version")
        return fake.deserialize(data)

    assert te.load_or_build(onnx_file, cache, "fp16", 2, progress=msgs.append, builder=fake.builder,
                            deserialize=flaky, trt_version="10.3.0.30", gpu_name="Orin sm87") is not None
    assert len(fake.builds) == 1 and any("another TensorRT version" in m for m in msgs)


def test_other_gpu_or_version_gets_its_own_engine(onnx_file: Path, tmp_path: Path) -> None:
    fake, cache = FakeTensorRT(), tmp_path / "engines"
    _load(onnx_file, cache, fake, [])
    _load(onnx_file, cache, fake, [], gpu_name="NVIDIA GeForce RTX 4090 sm89")
    _load(onnx_file, cache, fake, [], trt_version="10.9.0.34")
    _load(onnx_file, cache, fake, [], precision="int8")
    assert len(fake.builds) == 4 and len(list(cache.glob("*.engine"))) == 4


def test_fresh_engine_that_does_not_load_is_an_error(onnx_file: Path, tmp_path: Path) -> None:
    fake = FakeTensorRT()
    with pytest.raises(RuntimeError, match="just built"):
        te.load_or_build(onnx_file, tmp_path, "fp16", progress=lambda m: None, builder=fake.builder,
                         deserialize=lambda data: None, trt_version="10.3.0.30", gpu_name="Orin sm87")


# ----------------------------------------------------------------------------- helpers around the build

def test_calibration_feed_batches_and_cache(tmp_path: Path) -> None:
    feed = te.CalibrationFeed(np.arange(20, dtype=np.float32).reshape(10, 2), 4, tmp_path / "k.calib")
    batches = [feed.next_batch(), feed.next_batch(), feed.next_batch()]
    assert batches[0].shape == (4, 2) and batches[1][0, 0] == 8 and batches[2] is None  # a partial batch is dropped
    assert feed.read_cache() is None
    feed.write_cache(memoryview(b"table"))
    assert feed.read_cache() == b"table"


def test_images_to_input_matches_the_model_normalisation() -> None:
    import torch

    from interhand_perception.dir_net.inputs import normalise_batch

    imgs = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = te.images_to_input(imgs)
    assert x.shape == (2, 3, 8, 8) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, normalise_batch(imgs, torch.device("cpu")).numpy(), atol=1e-5)


def test_phase_reporter_prints_outer_phases() -> None:
    lines: list[str] = []
    rep = te.PhaseReporter(lines.append, every_s=0.0, max_depth=1)
    rep.start("Building engine", None, 3)
    rep.start("Tactic timing", "Building engine", 10)
    rep.start("inner detail", "Tactic timing", 5)
    assert rep.step("Tactic timing", 0) is True
    rep.finish("inner detail")
    rep.finish("Tactic timing")
    rep.finish("Building engine")
    assert lines[0] == "  Building engine (3 steps)" and "  Tactic timing: step 1/10" in "\n".join(lines)
    assert not any("inner detail" in ln for ln in lines)
    assert lines[-1].startswith("  Building engine done (")


def test_trt_major() -> None:
    assert te.trt_major("10.3.0.30") == 10 and te.trt_major("8.6.1") == 8


# ----------------------------------------------------------------------------- without TensorRT

@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_missing_tensorrt_says_how_to_install(onnx_file: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"pip install tensorrt") as info:
        te.import_tensorrt()
    assert "NVIDIA GPU" in str(info.value) and "driver" in str(info.value)
    with pytest.raises(RuntimeError, match=r"pip install tensorrt"):
        te.build_engine(onnx_file, tmp_path)
    with pytest.raises(RuntimeError, match=r"pip install tensorrt"):
        te.load_or_build(onnx_file, tmp_path, progress=lambda m: None)  # no version given: asks TensorRT


# ----------------------------------------------------------------------------- the backend, without a GPU

def test_backend_without_tensorrt_says_how_to_install(tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    from interhand_perception.paths import DEMO_WEIGHTS
    from interhand_perception.network.tensorrt_backend import TensorRTBackend

    with pytest.raises(RuntimeError, match=r"pip install tensorrt"):
        TensorRTBackend(checkpoint=DEMO_WEIGHTS, onnx_path=tmp_path / "unused.onnx")


def test_cli_export_tensorrt_without_tensorrt(capsys) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    from interhand_perception.cli import main

    assert main(["export", "tensorrt", "--precision", "int8", "--max-batch", "2"]) == 2
    err = capsys.readouterr().err
    assert "interhand export tensorrt:" in err and "pip install tensorrt" in err


def test_cuda_device_rules() -> None:
    import torch

    from interhand_perception.network.tensorrt_backend import cuda_device

    with pytest.raises(ValueError, match="CUDA GPU only"):
        cuda_device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            cuda_device("auto")


def test_torch_dtype_of_tensorrt_types() -> None:
    import types

    import torch

    from interhand_perception.network.tensorrt_backend import torch_dtype

    fake_trt = types.SimpleNamespace(float32="FLOAT", float16="HALF", int32="INT32", bool="BOOL")  # no int64 (TRT 8)
    assert torch_dtype(fake_trt, "FLOAT") is torch.float32 and torch_dtype(fake_trt, "HALF") is torch.float16
    with pytest.raises(TypeError):
        torch_dtype(fake_trt, "INT64")


def test_forward_raw_runs_large_batches_in_chunks() -> None:
    """``run`` (the engine call, which needs a GPU) is replaced; chunking, merging and the ONNX
    output adapter around it are real."""
    from interhand_perception.network.export_onnx import output_names
    from interhand_perception.network.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend.img_size, backend.max_batch = 8, 2
    backend.output_names = output_names(num_stages=1)
    seen: list[int] = []

    def fake_run(x):
        seen.append(x.shape[0])
        assert tuple(x.shape[1:]) == (3, 8, 8) and str(x.dtype) == "torch.float32"
        first = float(x[0, 0, 0, 0])  # identifies the chunk's first image
        return {n: np.full((x.shape[0], 2), first, np.float32) for n in backend.output_names}

    backend.run = fake_run
    imgs = np.stack([np.full((8, 8, 3), 40 * i, np.uint8) for i in range(5)])
    pred = backend.forward_raw(imgs)
    assert seen == [2, 2, 1]
    left = pred["stages"][-1]["verts"]["left"].numpy()
    assert left.shape == (5, 2) and len(pred["stages"]) == 2 and pred["seg"].shape == (5, 2)
    assert left[0, 0] == left[1, 0] < left[2, 0] == left[3, 0] < left[4, 0]  # chunk order kept


def test_bind_io_reads_names_and_types() -> None:
    import types

    import torch

    from interhand_perception.network.tensorrt_backend import TensorRTBackend

    trt = types.SimpleNamespace(TensorIOMode=types.SimpleNamespace(INPUT="IN", OUTPUT="OUT"),
                                float32="FLOAT", float16="HALF")
    names = ["images", "left_verts", "seg"]
    engine = types.SimpleNamespace(num_io_tensors=3, get_tensor_name=names.__getitem__,
                                   get_tensor_mode=lambda n: "IN" if n == "images" else "OUT",
                                   get_tensor_dtype=lambda n: "HALF" if n == "seg" else "FLOAT")
    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend.engine = engine
    backend._bind_io(trt)
    assert backend.input_name == "images" and backend.output_names == ["left_verts", "seg"]
    assert backend.dtypes["seg"] is torch.float16 and backend.dtypes["images"] is torch.float32
    engine.get_tensor_mode = lambda n: "IN"
    with pytest.raises(RuntimeError, match="inputs"):
        backend._bind_io(trt)


# ----------------------------------------------------------------------------- build_engine against a strict stand-in

def _fake_tensorrt(version: str, with_fp16: bool = True):
    """A ``tensorrt`` module stand-in with only the names of the TensorRT 10 Python bindings that
    build_engine may use (python/src/infer/pyCore.cpp, parsers/pyOnnx.cpp); ``__slots__`` make
    any other attribute an error. It records the calls; it builds nothing."""
    import types

    calls: list = []

    class Logger:
        WARNING = "WARNING"

        def __init__(self, severity):
            calls.append(("Logger", severity))

    class Tensor:
        __slots__ = ("name", "shape", "dtype")

        def __init__(self):
            self.name, self.shape, self.dtype = "images", (-1, 3, 64, 64), "FLOAT"

    class Network:
        __slots__ = ()
        num_inputs = 1

        def get_input(self, i):
            return Tensor()

    class Profile:
        __slots__ = ()

        def set_shape(self, name, mn, opt, mx):
            calls.append(("set_shape", name, mn, opt, mx))

    class Config:
        __slots__ = ("progress_monitor",)

        def set_memory_pool_limit(self, pool, size):
            calls.append(("pool", pool, size))

        def set_flag(self, flag):
            calls.append(("flag", flag))

        def add_optimization_profile(self, profile):
            calls.append(("profile",))

    class Builder:
        __slots__ = ()

        def __init__(self, logger):
            pass

        def create_network(self, flags=0):
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build", type(config.progress_monitor).__name__))
            return bytearray(b"PLAN")

    class OnnxParser:
        __slots__ = ()
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            calls.append(("parse_from_file", path))
            return True

    class IProgressMonitor:
        def __init__(self):
            pass

    flags = {"TF32": "TF32"} | ({"FP16": "FP16", "INT8": "INT8"} if with_fp16 else {})
    trt = types.SimpleNamespace(
        __version__=version, Logger=Logger, Builder=Builder, OnnxParser=OnnxParser, IProgressMonitor=IProgressMonitor,
        BuilderFlag=types.SimpleNamespace(**flags), MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0))
    return trt, calls


@pytest.fixture()
def fake_trt(monkeypatch):
    def install(version: str = "10.3.0.30", with_fp16: bool = True):
        trt, calls = _fake_tensorrt(version, with_fp16)
        monkeypatch.setitem(__import__("sys").modules, "tensorrt", trt)
        te.trt_logger.cache_clear()
        return calls

    yield install
    te.trt_logger.cache_clear()


def test_build_engine_call_sequence(fake_trt, onnx_file: Path, tmp_path: Path) -> None:
    calls = fake_trt()
    lines: list[str] = []
    path = te.build_engine(onnx_file, tmp_path / "engines", precision="fp16", max_batch=4, workspace_gb=1,
                           progress=lines.append, key="k")
    assert path == tmp_path / "engines" / "k.engine" and path.read_bytes() == b"PLAN"
    assert ("create_network", 0) in calls and ("parse_from_file", str(onnx_file)) in calls
    assert ("pool", "WORKSPACE", 1 << 30) in calls and ("flag", "FP16") in calls
    assert ("set_shape", "images", (1, 3, 64, 64), (1, 3, 64, 64), (4, 3, 64, 64)) in calls
    assert ("build", "Monitor") in calls  # the IProgressMonitor was attached
    text = "\n".join(lines)
    assert "parsing" in text and "building the fp16 engine (batch 1..4)" in text and "built in" in text
    assert "saving" in text


def test_build_engine_tensorrt8_sets_explicit_batch(fake_trt, onnx_file: Path, tmp_path: Path) -> None:
    calls = fake_trt("8.6.1")
    te.build_engine(onnx_file, tmp_path, precision="fp32", progress=lambda m: None, key="k")
    assert ("create_network", 1) in calls and not [c for c in calls if c[0] == "flag"]


def test_build_engine_tensorrt11_fp16_says_why(fake_trt, onnx_file: Path, tmp_path: Path) -> None:
    fake_trt("11.4.0.106", with_fp16=False)
    with pytest.raises(RuntimeError, match="strongly typed"):
        te.build_engine(onnx_file, tmp_path, precision="fp16", progress=lambda m: None, key="k")
    assert te.build_engine(onnx_file, tmp_path, precision="fp32", progress=lambda m: None, key="k").is_file()
