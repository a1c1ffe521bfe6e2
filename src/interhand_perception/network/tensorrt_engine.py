"""TensorRT engines for DIR: build from ONNX, cache on disk, rebuild when stale.

Why a cache, and why this key: building an engine takes minutes (the builder times kernels on
the GPU), and a serialized engine is only valid for the TensorRT version and GPU model it was
built on, its precision and its network. The cached file's name carries all of them (SHA-256
prefix of the ONNX bytes, precision, TensorRT version, GPU name and compute capability, largest
batch), so a retrained checkpoint, a TensorRT upgrade or another GPU gets a new file instead of
a wrong one. A cached file that still fails to deserialize (corrupt, truncated, another build of
the same version) is deleted and rebuilt, with a message. Engines are written atomically (temp
file + ``os.replace``): an interrupted build never leaves half an engine under the final name.

TensorRT is imported lazily, and only this backend needs it (with an NVIDIA GPU and driver).
Supported: TensorRT 8.6 to 10.x; TensorRT 11 builds strongly typed networks only (no FP16/INT8
flags, no implicit INT8 calibration), so there only ``fp32`` builds and the error says so.
``TensorRTBackend`` (I/O through torch CUDA tensors) lives in ``tensorrt_backend`` and is also
importable from here, lazily.
"""
from __future__ import annotations

import functools
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from ..dir_net.checkpoint import file_sha256
from typing import Any, Callable

import numpy as np

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_CACHE_DIR = Path("~/.cache/interhand_perception/engines")
INSTALL_HINT = ("TensorRT is not installed or cannot be loaded: `pip install tensorrt-cu12` (or `pip install "
                "tensorrt`) in this environment, matching the CUDA major version of torch; on Jetson it comes with "
                "JetPack (python3-libnvinfer). TensorRT needs an NVIDIA GPU and its driver.")
#: Images used for INT8 calibration when none are given (synthetic DIR crops).
DEFAULT_CALIBRATION_IMAGES = 64
CALIBRATION_BATCH = 8

Progress = Callable[[str], Any]


# ----------------------------------------------------------------------------- TensorRT import

def import_tensorrt():
    """``import tensorrt``, or a RuntimeError that says how to get it."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the wheel is there but libnvinfer does not load
        raise RuntimeError(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})") from exc
    return trt


@functools.lru_cache(maxsize=1)
def trt_logger():
    """One process-wide TensorRT logger (warnings and errors)."""
    trt = import_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


def trt_major(version: str) -> int:
    """Major version of a TensorRT version string ("10.3.0.26" -> 10)."""
    return int(str(version).split(".")[0])


def current_gpu_name(device_index: int = 0) -> str:
    """The GPU's name and compute capability, e.g. "NVIDIA GeForce RTX 4090 sm89" (via torch)."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("TensorRT needs a CUDA GPU, and torch sees none (CUDA build of torch, NVIDIA driver, "
                           "`docker run --gpus all` / `--runtime nvidia`?)")
    major, minor = torch.cuda.get_device_capability(device_index)
    return f"{torch.cuda.get_device_name(device_index)} sm{major}{minor}"


# ----------------------------------------------------------------------------- cache keys and files


def _slug(text: str, max_len: int = 48) -> str:
    """Lower-case letters, digits, dots; anything else becomes one '-'."""
    s = re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-.")
    return s[:max_len].rstrip("-.") or "unknown"


def engine_cache_key(onnx_path: str | os.PathLike, precision: str, trt_version: str, gpu_name: str,
                     extra: str = "") -> str:
    """File-system safe name of an engine: model hash, precision, TensorRT version, GPU (+ extra).

    Example: ``3f2a9c41d07be815-fp16-trt10.3.0.30-nvidia-geforce-rtx-4090-sm89-b4``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    parts = [file_sha256(onnx_path)[:16], precision, "trt" + _slug(trt_version, 24), _slug(gpu_name)]
    if extra:
        parts.append(_slug(extra, 32))
    return "-".join(parts)


def engine_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """Where the engine of ``key`` lives in ``cache_dir``."""
    return Path(cache_dir).expanduser() / f"{key}.engine"


def calibration_cache_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """Where the INT8 calibration table of ``key`` lives (reused by rebuilds of the same model)."""
    return Path(cache_dir).expanduser() / f"{key}.calib"


def atomic_write_bytes(path: str | os.PathLike, data) -> Path:
    """Write ``data`` (bytes-like, e.g. TensorRT's IHostMemory) to ``path`` via a temporary file
    in the same folder and ``os.replace``: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def engine_location(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike, precision: str, max_batch: int = 1,
                    trt_version: str | None = None, gpu_name: str | None = None) -> tuple[str, Path]:
    """(key, path) of the engine for this model and machine (TensorRT version / GPU asked if not given)."""
    version = trt_version if trt_version is not None else import_tensorrt().__version__
    gpu = gpu_name if gpu_name is not None else current_gpu_name()
    key = engine_cache_key(onnx_path, precision, version, gpu, extra=f"b{int(max_batch)}")
    return key, engine_path(cache_dir, key)


# ----------------------------------------------------------------------------- calibration data

def calibration_images(count: int, img_size: int, seed: int = 0) -> np.ndarray:
    """(count, S, S, 3) uint8 synthetic DIR crops (the training generator, its own seed)."""
    from ..data.synthetic import SyntheticConfig, generate_sample, load_models

    cfg = SyntheticConfig(img_size=int(img_size), seed=seed)
    models = load_models()
    return np.stack([generate_sample(i, "train", cfg, models)["image"] for i in range(int(count))])


def images_to_input(images: np.ndarray) -> np.ndarray:
    """RGB uint8 (B, S, S, 3) -> the graph input ``images``: (B, 3, S, S) float32, ImageNet-
    normalised (``export_onnx``'s interface; the same numbers as at run time)."""
    from .backends import normalise_images

    return normalise_images(np.asarray(images))


class CalibrationFeed:
    """The batches TensorRT's INT8 calibrator asks for, and its calibration table file.

    Kept apart from the TensorRT base class so that batching and the cache file are plain
    Python. ``next_batch`` returns None when the images are used up (TensorRT then stops).
    """

    def __init__(self, inputs: np.ndarray, batch_size: int, cache_file: str | os.PathLike):
        self.inputs = inputs
        self.batch_size = int(batch_size)
        self.cache_file = Path(cache_file)
        self.index = 0

    def next_batch(self) -> np.ndarray | None:
        if self.index + self.batch_size > len(self.inputs):
            return None
        batch = self.inputs[self.index:self.index + self.batch_size]
        self.index += self.batch_size
        return batch

    def read_cache(self) -> bytes | None:
        return self.cache_file.read_bytes() if self.cache_file.is_file() else None

    def write_cache(self, data) -> None:
        atomic_write_bytes(self.cache_file, data)


def make_int8_calibrator(trt, feed: CalibrationFeed, progress: Progress):
    """An ``IInt8EntropyCalibrator2`` reading ``feed`` through one torch CUDA buffer."""
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind11 trampolines need the explicit call
            shape = (feed.batch_size, *feed.inputs.shape[1:])
            self.device_buffer = torch.empty(shape, dtype=torch.from_numpy(feed.inputs[:1]).dtype, device="cuda")

        def get_batch_size(self) -> int:
            return feed.batch_size

        def get_batch(self, names, *args):
            batch = feed.next_batch()
            if batch is None:
                return None
            self.device_buffer.copy_(torch.from_numpy(batch))
            torch.cuda.current_stream().synchronize()
            progress(f"  calibration: {feed.index}/{len(feed.inputs)} images")
            return [int(self.device_buffer.data_ptr())]

        def read_calibration_cache(self, *args):
            return feed.read_cache()

        def write_calibration_cache(self, cache, *args) -> None:
            feed.write_cache(cache)

    return EntropyCalibrator()


# ----------------------------------------------------------------------------- progress reporting

class PhaseReporter:
    """Turns TensorRT builder phase callbacks into a few lines of progress.

    Prints the start and end (with duration) of the outer two levels of phases and, at most
    every ``every_s`` seconds, the step count of a running phase. Thread-safe (TensorRT calls
    it from its own threads); never raises into TensorRT.
    """

    def __init__(self, progress: Progress, every_s: float = 5.0, max_depth: int = 1):
        self.progress, self.every_s, self.max_depth = progress, every_s, max_depth
        self.lock = threading.Lock()
        self.phases: dict[str, tuple[int, int, float]] = {}  # name -> (depth, steps, start time)
        self.last_print = 0.0

    def start(self, name: str, parent: str | None, num_steps: int) -> None:
        with self.lock:
            depth = self.phases[parent][0] + 1 if parent in self.phases else 0
            self.phases[name] = (depth, int(num_steps), time.monotonic())
            if depth <= self.max_depth:
                self.progress(f"  {'  ' * depth}{name} ({num_steps} steps)")

    def step(self, name: str, step: int) -> bool:
        with self.lock:
            now = time.monotonic()
            depth, steps, _ = self.phases.get(name, (0, 0, now))
            if depth <= self.max_depth and now - self.last_print >= self.every_s:
                self.last_print = now
                self.progress(f"  {'  ' * depth}{name}: step {step + 1}/{steps}")
        return True  # False would cancel the build

    def finish(self, name: str) -> None:
        with self.lock:
            depth, _, t0 = self.phases.pop(name, (0, 0, time.monotonic()))
            if depth <= self.max_depth:
                self.progress(f"  {'  ' * depth}{name} done ({time.monotonic() - t0:.1f} s)")


def make_progress_monitor(trt, progress: Progress):
    """An ``IProgressMonitor`` (TensorRT >= 10.0) printing through :class:`PhaseReporter`, or None."""
    if not hasattr(trt, "IProgressMonitor"):
        return None
    reporter = PhaseReporter(progress)

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            try:
                reporter.start(phase_name, parent_phase, num_steps)
            except Exception:  # noqa: BLE001 - a progress message must never break the build
                pass

        def step_complete(self, phase_name, step):
            try:
                return reporter.step(phase_name, step)
            except Exception:  # noqa: BLE001
                return True

        def phase_finish(self, phase_name):
            try:
                reporter.finish(phase_name)
            except Exception:  # noqa: BLE001
                pass

    return Monitor()


# ----------------------------------------------------------------------------- building

def _parse_onnx(trt, builder, onnx_path: Path):
    """(network, parser) for an ONNX file; parser errors as one RuntimeError."""
    flags = 0
    if trt_major(trt.__version__) < 10:  # explicit batch is the only mode (and the flag deprecated) from 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger())
    if not parser.parse_from_file(str(onnx_path)):  # from the file: resolves external weight files too
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n{errors}")
    return network, parser


def _set_precision(trt, config, precision: str) -> None:
    if precision == "fp32":
        return
    flag = getattr(trt.BuilderFlag, precision.upper(), None)
    if flag is None:
        raise RuntimeError(f"TensorRT {trt.__version__} has no {precision.upper()} builder flag (TensorRT 11 builds "
                           "strongly typed networks only): use --precision fp32, or install TensorRT 10 "
                           "(pip install 'tensorrt-cu12>=10,<11')")
    config.set_flag(flag)
    if precision == "int8" and hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)  # layers INT8 cannot take run in FP16 rather than FP32


def _batch_profile(builder, network, min_b: int, opt_b: int, max_b: int):
    """An optimisation profile with the batch axis of every input in [min_b, max_b]."""
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(int(d) for d in tensor.shape[1:])
        if any(d < 0 for d in rest):
            raise RuntimeError(f"input {tensor.name!r} has dynamic axes besides the batch: {tuple(tensor.shape)}")
        profile.set_shape(tensor.name, (min_b, *rest), (opt_b, *rest), (max_b, *rest))
    return profile


def _setup_int8(trt, builder, network, config, images, cache_file: Path, progress: Progress):
    """Calibrator (kept alive by the caller until the build ends) for an INT8 build."""
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise RuntimeError(f"TensorRT {trt.__version__} has no implicit INT8 calibration; use TensorRT 10 or fp16")
    size = int(network.get_input(0).shape[-1])  # (B, 3, S, S)
    if cache_file.is_file():  # TensorRT reads the table and asks for no batch: a placeholder suffices
        progress(f"reusing the calibration table {cache_file}")
        images = np.zeros((1, size, size, 3), np.uint8)
    elif images is None or isinstance(images, int):
        count = DEFAULT_CALIBRATION_IMAGES if images is None else int(images)
        progress(f"generating {count} synthetic {size}x{size} calibration images")
        images = calibration_images(count, size)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
        raise ValueError(f"calibration images must be uint8 (N, {size}, {size}, 3), got {images.dtype} {images.shape}")
    batch = max(1, min(CALIBRATION_BATCH, len(images)))
    feed = CalibrationFeed(images_to_input(images), batch, cache_file)
    calibrator = make_int8_calibrator(trt, feed, progress)
    config.int8_calibrator = calibrator
    config.set_calibration_profile(_batch_profile(builder, network, batch, batch, batch))
    return calibrator


def build_engine(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike, precision: str = "fp16",
                 max_batch: int = 1, workspace_gb: float = 2, int8_calibration_images=None,
                 progress: Progress = print, key: str | None = None) -> Path:
    """Build a TensorRT engine from an ONNX model and write it (atomically) into the cache.

    Args:
        onnx_path: the exported DIR network (dynamic batch axis).
        cache_dir: engine cache folder (created if missing).
        precision: "fp16", "int8" (entropy calibration; layers without INT8 in FP16) or "fp32".
        max_batch: largest batch of the optimisation profile (min 1, opt 1).
        workspace_gb: builder workspace memory pool limit.
        int8_calibration_images: INT8 only: None (64 synthetic crops), a count of synthetic
            crops, or RGB uint8 images (N, S, S, 3). The calibration table is cached beside the
            engine and reused by later builds of the same model.
        progress: callable receiving progress lines.
        key: cache key (default: :func:`engine_location` for this machine).
    Returns:
        The engine's path.
    """
    trt = import_tensorrt()
    onnx_path = Path(onnx_path)
    if key is None:
        key = engine_location(onnx_path, cache_dir, precision, max_batch, trt_version=trt.__version__)[0]
    builder = trt.Builder(trt_logger())
    progress(f"parsing {onnx_path} (TensorRT {trt.__version__})")
    network, _parser = _parse_onnx(trt, builder, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    _set_precision(trt, config, precision)
    config.add_optimization_profile(_batch_profile(builder, network, 1, 1, int(max_batch)))
    calibrator = None
    if precision == "int8":
        calibrator = _setup_int8(trt, builder, network, config, int8_calibration_images,
                                 calibration_cache_path(cache_dir, key), progress)
    monitor = make_progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor
    progress(f"building the {precision} engine (batch 1..{max_batch}); this takes a few minutes")
    t0 = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    del calibrator, monitor  # both must outlive the build
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path} (see the TensorRT errors above)")
    progress(f"built in {time.monotonic() - t0:.0f} s")
    path = engine_path(cache_dir, key)
    progress(f"saving {path}")
    return atomic_write_bytes(path, serialized)


# ----------------------------------------------------------------------------- loading

def deserialize_engine(data: bytes):
    """A TensorRT ICudaEngine from serialized bytes, or None when TensorRT rejects them."""
    trt = import_tensorrt()
    runtime = trt.Runtime(trt_logger())
    return runtime.deserialize_cuda_engine(data)  # the engine keeps the runtime alive


def _try_load(path: Path, deserialize: Callable[[bytes], Any]) -> tuple[Any, str]:
    """(engine or None, why not)."""
    try:
        engine = deserialize(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - any failure means: rebuild
        return None, f"{type(exc).__name__}: {exc}"
    return engine, "" if engine is not None else "TensorRT rejected it (other TensorRT build or GPU, or corrupt)"


def load_or_build(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                  precision: str = "fp16", max_batch: int = 1, workspace_gb: float = 2,
                  int8_calibration_images=None, progress: Progress = print, *,
                  builder: Callable[..., Path] | None = None, deserialize: Callable[[bytes], Any] | None = None,
                  trt_version: str | None = None, gpu_name: str | None = None):
    """The engine for ``onnx_path`` on this machine: from the cache, else built (and cached).

    A cached engine that fails to deserialize is deleted and rebuilt, with a message.
    ``builder`` (signature of :func:`build_engine`) and ``deserialize`` (bytes -> engine or
    None) default to TensorRT; tests inject stand-ins, with ``trt_version``/``gpu_name``.
    """
    builder = builder or build_engine
    deserialize = deserialize or deserialize_engine
    key, path = engine_location(onnx_path, cache_dir, precision, max_batch, trt_version, gpu_name)
    if path.is_file():
        engine, why = _try_load(path, deserialize)
        if engine is not None:
            progress(f"TensorRT engine: {path} (cached)")
            return engine
        progress(f"cached engine {path} could not be loaded ({why}); deleting it and rebuilding")
        path.unlink(missing_ok=True)
    else:
        progress(f"no cached TensorRT engine {key} in {path.parent}: building it")
    built = Path(builder(onnx_path, cache_dir, precision=precision, max_batch=max_batch, workspace_gb=workspace_gb,
                         int8_calibration_images=int8_calibration_images, progress=progress, key=key))
    engine, why = _try_load(built, deserialize)
    if engine is None:
        raise RuntimeError(f"the engine just built ({built}) does not load: {why}")
    return engine

