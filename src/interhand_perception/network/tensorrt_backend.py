"""``TensorRTBackend``: the DIR network as a TensorRT engine, behind the common backend API.

Why TensorRT: on NVIDIA GPUs (desktop and Jetson) a TensorRT engine, in FP16, runs the network
and both hand-model layers several times faster than PyTorch eager, and needs no PyTorch
kernels at run time. The engine comes from the checkpoint's ONNX export (``export_onnx``,
cached) and is cached per GPU / TensorRT version / precision (``tensorrt_engine``).

I/O goes through torch CUDA tensors: TensorRT 10's ``execute_async_v3`` reads and writes
device addresses set with ``set_tensor_address``, and ``tensor.data_ptr()`` is one. So no
pycuda or cuda-python is needed, and the engine runs on a torch CUDA stream. Outputs come back
as the ONNX graph's named outputs and go through ``onnx_outputs_to_pred`` and
``HandReconstructor.postprocess``, the same post-processing as the other backends.

Not run in this repository's tests: they have no GPU and no TensorRT (docs/tensorrt.md).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..dir_net.checkpoint import file_sha256
from .export_onnx import INPUT_NAME, ensure_onnx, onnx_outputs_to_pred, read_metadata
from .reconstructor import to_host
from .backends import NetworkBackend, _ConfigOnly, as_batch, check_onnx_matches, cuda_index, normalise_images
from .tensorrt_engine import (DEFAULT_CACHE_DIR, PRECISIONS, Progress, current_gpu_name, engine_location,
                              import_tensorrt, load_or_build)


def torch_dtype(trt, data_type) -> torch.dtype:
    """The torch dtype of a TensorRT ``DataType``."""
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8,
             "uint8": torch.uint8, "int32": torch.int32, "int64": torch.int64, "bool": torch.bool}
    for name, dtype in table.items():
        if hasattr(trt, name) and data_type == getattr(trt, name):
            return dtype
    raise TypeError(f"no torch dtype for TensorRT {data_type}")


def cuda_device(device: str) -> torch.device:
    """The CUDA device of "auto" / "cuda" / "cuda:N"; ValueError for anything else."""
    if device == "auto":
        device = "cuda"
    if not str(device).startswith("cuda"):
        raise ValueError(f"backend 'tensorrt' runs on a CUDA GPU only, got device {device!r}")
    if not torch.cuda.is_available():
        raise RuntimeError("backend 'tensorrt' needs a CUDA GPU, and torch sees none (NVIDIA driver, CUDA build "
                           "of torch, `docker run --gpus all` / `--runtime nvidia`?)")
    return torch.device("cuda", cuda_index(str(device)))


class PreparedEngine(NamedTuple):
    """A loaded engine and where it came from."""

    engine: Any
    key: str
    path: Path
    onnx_path: Path
    gpu_name: str


def prepare_engine(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike | None = None, precision: str = "fp16",
                   cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, max_batch: int = 1, mano_dir: str | None = None,
                   device: str = "cuda", workspace_gb: float = 2, int8_calibration_images=None,
                   progress: Progress = print, onnx_cache_dir: str | os.PathLike | None = None) -> PreparedEngine:
    """The checkpoint's engine for this GPU, loaded from the cache or built into it.

    Checks for TensorRT and the GPU before exporting anything; exports the ONNX file into its
    cache first when ``onnx_path`` is None (``export_onnx.ensure_onnx``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    version = import_tensorrt().__version__
    dev = cuda_device(device)
    gpu = current_gpu_name(dev.index or 0)
    if onnx_path is None:
        onnx_path = ensure_onnx(checkpoint, directory=onnx_cache_dir, mano_dir=mano_dir, progress=progress)
    with torch.cuda.device(dev):
        engine = load_or_build(onnx_path, cache_dir, precision, max_batch, workspace_gb, int8_calibration_images,
                               progress, trt_version=version, gpu_name=gpu)
    key, path = engine_location(onnx_path, cache_dir, precision, max_batch, version, gpu)
    return PreparedEngine(engine, key, path, Path(onnx_path), gpu)


class TensorRTBackend(NetworkBackend):
    """The checkpoint's TensorRT engine (built on first use, then cached).

    Args:
        checkpoint: ``.safetensors`` weights (configuration, hand models, ONNX cache key).
        onnx_path: an ONNX export of that checkpoint; None exports it into the ONNX cache.
        device: "cuda", "cuda:N" or "auto" (= "cuda").
        precision: "fp16" (default), "fp32" or "int8" (calibrated on synthetic crops).
        mano_dir: MANO folder when the checkpoint was trained with MANO.
        cache_dir: engine cache folder (default ~/.cache/interhand_perception/engines).
        max_batch: largest batch the engine takes (larger batches are run in chunks).
        workspace_gb: builder workspace limit; int8_calibration_images: see ``build_engine``.
        progress: receives the build/cache messages.
        onnx_cache_dir: ONNX cache folder (default: ``export_onnx``'s).
    """

    kind = "tensorrt"

    def __init__(self, checkpoint: str | os.PathLike, onnx_path: str | os.PathLike | None = None,
                 device: str = "cuda", precision: str = "fp16", mano_dir: str | None = None,
                 cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, max_batch: int = 1, workspace_gb: float = 2,
                 int8_calibration_images=None, progress: Progress | None = print,
                 onnx_cache_dir: str | os.PathLike | None = None) -> None:
        from .reconstructor import HandReconstructor

        trt = import_tensorrt()  # first: the clear errors before any work
        dev = cuda_device(device)
        rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu", mano_dir=mano_dir)
        rec.model = _ConfigOnly(rec.model.config)  # post-processing only: the weights are in the engine
        super().__init__(rec, precision)
        self.device = dev
        prepared = prepare_engine(checkpoint, onnx_path, precision, cache_dir, max_batch, mano_dir, str(dev),
                                  workspace_gb, int8_calibration_images, progress or (lambda msg: None),
                                  onnx_cache_dir)
        self.engine, self.engine_key, self.engine_path = prepared.engine, prepared.key, prepared.path
        self.onnx_path, self.gpu_name = prepared.onnx_path, prepared.gpu_name
        check_onnx_matches(read_metadata(self.onnx_path), self.onnx_path, file_sha256(checkpoint),
                           self.hand_model_ids, self.img_size)
        self.max_batch = int(max_batch)
        self._bind_io(trt)
        with torch.cuda.device(self.device):
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.device)

    def _bind_io(self, trt) -> None:
        """Input/output names and dtypes of the engine."""
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [INPUT_NAME]:
            raise RuntimeError(f"the engine's inputs are {inputs}, expected [{INPUT_NAME!r}]")
        self.input_name = INPUT_NAME
        self.output_names = [n for n in names if n not in inputs]
        self.dtypes = {n: torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 crops -> (B, 3, S, S) normalised float32 tensor (host)."""
        return torch.from_numpy(normalise_images(as_batch(images, self.img_size)))

    def run(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """The engine on one normalised batch (B <= max_batch, 3, S, S) -> {output name: array}."""
        ctx = self.context
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            x = x.to(self.device, self.dtypes[self.input_name]).contiguous()
            if not ctx.set_input_shape(self.input_name, tuple(x.shape)):
                raise RuntimeError(f"input shape {tuple(x.shape)} is outside the engine's profile "
                                   f"(batch 1..{self.max_batch})")
            ctx.set_tensor_address(self.input_name, x.data_ptr())
            outputs = {}
            for name in self.output_names:
                shape = tuple(ctx.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
                ctx.set_tensor_address(name, outputs[name].data_ptr())
            if not ctx.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT could not run the engine (see the TensorRT errors above)")
            return to_host(outputs)  # one copy to the host for all outputs; waits for the stream

    def forward_raw(self, images: np.ndarray) -> dict:
        x = self.preprocess(images)
        parts = [self.run(chunk) for chunk in x.split(self.max_batch)]
        merged = {n: np.concatenate([p[n] for p in parts]) if len(parts) > 1 else parts[0][n]
                  for n in self.output_names}
        return onnx_outputs_to_pred(merged)

    def describe(self) -> str:
        return f"tensorrt on {self.gpu_name} ({self.precision}, batch <= {self.max_batch})"
