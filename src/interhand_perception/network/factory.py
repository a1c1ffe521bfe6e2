"""Which network backend runs a checkpoint, built by name (ROS-free).

``make_backend(backend, checkpoint, device, ...)``: ``pytorch``, ``onnxruntime`` or ``tensorrt``
(:mod:`.backends`, :mod:`.tensorrt_backend`), and ``auto`` resolved by :func:`resolve_backend`
to the fastest one installed for the device.
"""
from __future__ import annotations

import importlib.util
import os

import torch

from ..paths import DEMO_WEIGHTS
from .backends import BACKENDS, BackendUnavailable, NetworkBackend, OnnxRuntimeBackend, PyTorchBackend


def import_tensorrt_backend():
    """``network.tensorrt_backend.TensorRTBackend``, imported lazily (it needs TensorRT's bindings
    only when used, but the ONNX export always)."""
    try:
        from .tensorrt_backend import TensorRTBackend
    except ImportError as exc:
        raise BackendUnavailable(f"the TensorRT backend is not available ({exc})") from exc
    return TensorRTBackend


def make_tensorrt(checkpoint, device: str, precision: str, onnx_path, **options) -> NetworkBackend:
    """``TensorRTBackend(checkpoint, onnx_path=, device=, precision=, **options)`` (it exports the
    ONNX file into the cache itself when ``onnx_path`` is None), with ImportError/RuntimeError
    turned into :class:`BackendUnavailable`."""
    backend_cls = import_tensorrt_backend()
    try:
        return backend_cls(checkpoint, onnx_path=onnx_path, device=device, precision=precision, **options)
    except (ImportError, RuntimeError) as exc:
        raise BackendUnavailable(f"the TensorRT backend cannot run here: {exc}") from exc


def resolve_backend(backend: str, device: str = "auto", precision: str = "fp32") -> str:
    """``"auto"`` -> on a CUDA GPU: "tensorrt" when TensorRT is installed (and the precision is
    not bf16), else "pytorch" (CUDA graphs, autocast); on the CPU: "onnxruntime" when it is
    installed (the fastest CPU path, docs/cpu_speed.md), else "pytorch". Any other name is
    returned as is."""
    if backend != "auto":
        return backend

    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        trt = importlib.util.find_spec("tensorrt") is not None
        return "tensorrt" if trt and precision != "bf16" else "pytorch"
    if importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None:
        return "onnxruntime"
    return "pytorch"


def make_backend(backend: str = "pytorch", checkpoint: str | os.PathLike | None = None, device: str = "auto",
                 precision: str = "fp32", onnx_path: str | os.PathLike | None = None, threads: int | None = None,
                 **options) -> NetworkBackend:
    """The network backend ``backend`` for a checkpoint.

    Args:
        backend: "pytorch", "onnxruntime" or "tensorrt".
        checkpoint: ``.safetensors`` weights; None is the shipped demo model.
        device: "auto", "cpu", "cuda" or "cuda:N".
        precision: "fp32", "fp16" (CUDA only) or "bf16" (pytorch only); tensorrt also "int8".
        onnx_path: ONNX export to use (onnxruntime, tensorrt); None exports into the cache.
        threads: CPU threads of the runtime (None: its default).
        options: per backend: ``mano_dir``; pytorch ``fast``, ``channels_last``, ``cuda_graph``,
            ``graph_batch_sizes``; onnxruntime
            ``providers``, ``cache_dir``, ``opset``, ``progress``; tensorrt: passed on to
            ``TensorRTBackend`` (``cache_dir``, ``max_batch``, ``onnx_cache_dir``, ...).
    Raises:
        BackendUnavailable: the runtime, provider or GPU is missing (the message says how to fix it).
        ValueError: unknown backend, bad device/precision, or an ONNX file of another checkpoint.
    """
    checkpoint = checkpoint or DEMO_WEIGHTS
    if backend == "pytorch":
        return PyTorchBackend(checkpoint, device=device, precision=precision, threads=threads, **options)
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(checkpoint, onnx_path=onnx_path, device=device, precision=precision,
                                  threads=threads, **options)
    if backend == "tensorrt":
        return make_tensorrt(checkpoint, device, precision, onnx_path, **options)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
