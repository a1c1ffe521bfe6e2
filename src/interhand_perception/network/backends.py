"""One interface for the network runtime: PyTorch, ONNX Runtime or TensorRT behind the same API.

Why: the ROS node, ``interhand infer`` and the benchmarks drive the network through
``FrameProcessor``, which only needs ``img_size`` and ``__call__(crop) -> TwoHandResult``. Every
backend made by :func:`make_backend` offers exactly what ``HandReconstructor`` offers there
(``img_size``, ``hand_models``, ``faces``, ``device``, ``hand_model_ids``, ``__call__`` on one
crop (H, W, 3) or a batch (B, H, W, 3) of RGB uint8 images), so the choice of runtime is one
parameter and the post-processing is shared (``HandReconstructor.postprocess``).

* ``"pytorch"``: ``HandReconstructor`` (CPU, CUDA, FP16 on CUDA) with the inference fast paths
  of ``fast_inference`` and, on the CPU, channels-last convolutions (same results to float
  rounding, ~15-20 % less CPU time than plain eager).
* ``"onnxruntime"``: the ONNX export of the checkpoint (``export_onnx``; exported and cached on
  first use), on the CPUExecutionProvider, or CUDA / TensorRT execution providers when ONNX
  Runtime has them. The fastest CPU path (docs/cpu_speed.md).
* ``"tensorrt"``: ``TensorRTBackend`` of ``network.tensorrt_engine`` (imported only when asked).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..dir_net.inputs import IMAGENET_MEAN, IMAGENET_STD
from .reconstructor import as_batch, pack, unpack
from ..dir_net.checkpoint import file_sha256
from .export_onnx import DEFAULT_OPSET, INPUT_NAME, ONNX_FORMAT, ensure_onnx, onnx_outputs_to_pred

BACKENDS = ("pytorch", "onnxruntime", "tensorrt")
ORT_HINT = "install it with `pip install 'interhand_perception[onnx]'` (onnx + onnxruntime)"
_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)[:, None, None]  # (3, 1, 1)
_SHIFT = (IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)[:, None, None]


class BackendUnavailable(RuntimeError):
    """A backend cannot run here (package, provider or GPU missing); the message says why."""


def normalise_images(images: np.ndarray) -> np.ndarray:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 ImageNet-normalised, in two passes.

    The same numbers as ``data.dataset.normalise_batch`` (to 5e-7) at a quarter of its cost:
    the channel transpose happens on the uint8 bytes, then one fused cast/scale/shift.
    """
    planar = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    out = planar.astype(np.float32)
    out *= _SCALE
    out -= _SHIFT
    return out


class NetworkBackend:
    """What every backend offers (the API ``FrameProcessor`` and the node use).

    Attributes:
        kind: "pytorch" | "onnxruntime" | "tensorrt".
        img_size: S, the network's square input side.
        hand_models: {side: HandModel}; faces: {side: (F, 3) int64}; hand_model_ids: {side: fingerprint}.
        device: torch.device the network runs on.
        precision: "fp32" | "fp16".
        checkpoint_path: the weights it was built from.
    """

    kind = "?"

    def __init__(self, reconstructor, precision: str) -> None:
        self.reconstructor = reconstructor  # does the shared post-processing
        self.precision = precision
        self.img_size = reconstructor.img_size
        self.hand_models = reconstructor.hand_models
        self.faces = reconstructor.faces
        self.hand_model_ids = reconstructor.hand_model_ids
        self.config = reconstructor.config
        self.checkpoint_path = getattr(reconstructor, "checkpoint_path", None)
        self.checkpoint_info = getattr(reconstructor, "checkpoint_info", {})
        self.device = torch.device("cpu")

    def forward_raw(self, images: np.ndarray) -> dict:
        """Network output dict (at least what ``postprocess`` reads) for RGB uint8 crops."""
        raise NotImplementedError

    def postprocess(self, pred: dict) -> list:
        """Network output dict -> list of ``TwoHandResult`` (shared by all backends)."""
        with torch.inference_mode():
            return self.reconstructor.postprocess(pred)

    def __call__(self, images: np.ndarray):
        """Reconstruct both hands in one crop (H, W, 3) -> TwoHandResult, or a batch -> list."""
        single = np.asarray(images).ndim == 3
        results = self.postprocess(self.forward_raw(images))
        return results[0] if single else results

    def describe(self) -> str:
        """One line for logs: runtime, device, precision."""
        return f"{self.kind} on {self.device} ({self.precision})"


# ----------------------------------------------------------------------------- PyTorch
class PyTorchBackend(NetworkBackend):
    """``HandReconstructor`` with the ``fast_inference`` paths installed (unless ``fast=False``).

    Per frame: the uint8 crops cross to the device once (``network.upload.CropUpload``, from
    pinned memory on CUDA), and ``HandReconstructor.network`` normalises them there and runs
    the forward (under fp16 / bf16 autocast with those precisions).

    ``channels_last`` (default: on the CPU only, where it was measured ~7 % faster; results
    unchanged to float rounding) stores the network's conv weights and input NHWC.

    ``cuda_graph`` (default: on a CUDA device): capture a frame's device work (:meth:`frame_outputs`:
    normalisation, forward, hand models, the post-processing's tensor work, packed into one
    tensor) once per batch size in ``graph_batch_sizes`` at start-up and replay it per call
    (``network.cuda_graph.CudaGraphRunner``; ``graph_api`` replaces its CUDA calls in tests);
    where capture is impossible (a CPU device, a capture error) it warns once and runs eager,
    and so does a batch size that was not captured. ``False`` is the eager forward (the fallback
    parameter).
    """

    kind = "pytorch"

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", precision: str = "fp32",
                 threads: int | None = None, mano_dir: str | None = None, fast: bool = True,
                 channels_last: bool | None = None, cuda_graph: bool | None = None,
                 graph_batch_sizes: tuple[int, ...] = (1,), graph_api=None) -> None:
        from .fast_inference import optimise_for_inference
        from .reconstructor import HandReconstructor
        from .upload import CropUpload

        if threads:
            torch.set_num_threads(int(threads))  # process-wide: torch has one CPU thread pool
        rec = HandReconstructor.from_checkpoint(checkpoint, device=device, mano_dir=mano_dir, precision=precision)
        self.channels_last = rec.device.type == "cpu" if channels_last is None else bool(channels_last)
        if self.channels_last:
            rec.model = rec.model.to(memory_format=torch.channels_last)
            rec.memory_format = torch.channels_last
        self.fast_paths = optimise_for_inference(rec.model) if fast else []
        super().__init__(rec, precision)
        self.model = rec.model
        self.device = rec.device
        self.upload = CropUpload(self.device)
        self.graph_runner = None
        if rec.device.type == "cuda" if cuda_graph is None else cuda_graph:
            from .cuda_graph import CudaGraphRunner

            self._layout = None  # of the packed results, set by the first run of frame_outputs
            self.graph_runner = CudaGraphRunner(self.frame_outputs, (self.img_size, self.img_size, 3),
                                                graph_batch_sizes, device=self.device, dtype=torch.uint8,
                                                api=graph_api)

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 crops -> (B, 3, S, S) normalised tensor on the device (``HandReconstructor``'s)."""
        return self.reconstructor.preprocess(images)

    def forward_raw(self, images: np.ndarray) -> dict:
        """The network's output dict (eager: the graph, when there is one, ends in packed results)."""
        with torch.inference_mode():
            return self.reconstructor.network(self.upload(as_batch(images, self.img_size)))

    def frame_outputs(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 crops on the device -> every result array, packed (B, N) float32
        (``reconstructor.pack``): normalise, network, hand models and the post-processing's
        tensor work, what the CUDA graph captures."""
        rec = self.reconstructor
        flat, self._layout = pack(rec.result_tensors(rec.network(crops)))
        return flat

    def __call__(self, images: np.ndarray):
        """As every backend's; with CUDA graphs: the crops copied into the static input, one
        replay, one copy of the packed results back."""
        if self.graph_runner is None:
            return super().__call__(images)
        single = np.asarray(images).ndim == 3
        crops = as_batch(images, self.img_size)
        batch = crops.shape[0]
        with torch.inference_mode():
            static_in = self.graph_runner.input_buffer(batch)
            x = self.upload(crops, out=static_in)
            flat = self.graph_runner.replay(batch) if static_in is not None else self.graph_runner.eager(x)
            results = self.reconstructor.results(unpack(flat.cpu().numpy(), self._layout))
        return results[0] if single else results

    def describe(self) -> str:
        line = super().describe()
        return line if self.graph_runner is None else f"{line}, {self.graph_runner.describe()}"


# ----------------------------------------------------------------------------- ONNX Runtime
def import_onnxruntime():
    """``import onnxruntime`` or :class:`BackendUnavailable` saying how to install it."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime is not installed: {ORT_HINT}") from exc
    return ort


def cuda_index(device: str) -> int:
    """GPU index of "cuda" / "cuda:N"."""
    return int(device.split(":", 1)[1]) if ":" in device else 0


def select_providers(device: str, precision: str, available: list[str]) -> tuple[list, str | None]:
    """ONNX Runtime execution providers for a device/precision, and a fallback note (or None).

    cpu -> CPU (fp32 only); cuda[:N] -> CUDA (+ CPU for unsupported nodes), fp16 through
    TensorRT's provider; auto -> CUDA when available, else CPU. A missing CUDA provider falls
    back to the CPU with a note; fp16 without the TensorRT provider is an error.
    """
    if device == "auto":
        device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if device == "cpu":
        if precision != "fp32":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' on the CPU")
        return ["CPUExecutionProvider"], None
    if not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    gpu = {"device_id": cuda_index(device)}
    if precision == "fp16":
        if "TensorrtExecutionProvider" not in available:
            raise BackendUnavailable(
                f"fp16 with onnxruntime needs the TensorrtExecutionProvider, and this onnxruntime has {available}; "
                "use backend 'tensorrt' or 'pytorch' for fp16, or precision 'fp32'")
        trt = ("TensorrtExecutionProvider", {**gpu, "trt_fp16_enable": True})
        return [trt, ("CUDAExecutionProvider", gpu), "CPUExecutionProvider"], None
    if "CUDAExecutionProvider" not in available:
        note = (f"onnxruntime has no CUDAExecutionProvider (available: {available}; install onnxruntime-gpu "
                "for CUDA): running on the CPU instead")
        return ["CPUExecutionProvider"], note
    return [("CUDAExecutionProvider", gpu), "CPUExecutionProvider"], None


def session_options(ort, threads: int | None):
    """CPU-friendly session options: all graph optimisations, sequential execution, memory
    pattern + arena, ``threads`` intra-op threads (None: ONNX Runtime's default, one per
    physical core) and no busy-waiting between operators (spinning steals the cores that the
    rest of the node, and whatever else runs on the robot, need; measured no faster here)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_mem_pattern = True
    so.enable_cpu_mem_arena = True
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: provider fallbacks are reported by this module
    return so


def check_onnx_matches(meta: dict, onnx_path, checkpoint_sha: str, hand_model_ids: dict, img_size: int) -> None:
    """ValueError unless the ONNX file was exported from this checkpoint with these hand models."""
    import json

    if meta.get("format") != ONNX_FORMAT:
        raise ValueError(f"{onnx_path} is not an interhand_perception ONNX export (format={meta.get('format')!r})")
    if meta.get("checkpoint_sha256") != checkpoint_sha:
        raise ValueError(f"{onnx_path} was exported from another checkpoint (sha256 "
                         f"{meta.get('checkpoint_sha256', '?')[:12]}, this one {checkpoint_sha[:12]}); "
                         "export it again with `interhand export onnx` or leave onnx_path unset")
    if json.loads(meta.get("hand_models", "{}")) != dict(hand_model_ids):
        raise ValueError(f"{onnx_path} embeds other hand models ({meta.get('hand_models')}) than the ones "
                         f"loaded now ({dict(hand_model_ids)}); pass the same mano_dir as at export")
    if int(meta.get("img_size", -1)) != img_size:
        raise ValueError(f"{onnx_path} takes {meta.get('img_size')} px crops, the checkpoint {img_size} px")


def open_session(ort, path: Path, device: str, precision: str, threads: int | None,
                 providers: list[str] | None) -> tuple:
    """(InferenceSession, fallback note or None). Explicit ``providers`` must all be available;
    otherwise :func:`select_providers` picks them. ONNX Runtime silently drops a provider whose
    libraries fail to load (CUDA, cuDNN, TensorRT): that becomes the note too."""
    available = ort.get_available_providers()
    note = None
    if providers:
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendUnavailable(f"execution provider(s) {missing} not available in this onnxruntime "
                                     f"(available: {available})")
        chosen = list(providers)
    else:
        chosen, note = select_providers(device, precision, available)
    session = ort.InferenceSession(str(path), session_options(ort, threads), providers=chosen)
    dropped = [p for p in (c if isinstance(c, str) else c[0] for c in chosen) if p not in session.get_providers()]
    if dropped and note is None:
        note = (f"onnxruntime could not start {dropped} (CUDA/cuDNN/TensorRT libraries?); "
                f"running on {session.get_providers()} instead")
    return session, note


class _ConfigOnly(torch.nn.Module):
    """Stands in for the network inside a post-processing-only ``HandReconstructor``: postprocess
    reads nothing of the model but its configuration, so the weights need not stay in memory."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config


class OnnxRuntimeBackend(NetworkBackend):
    """The checkpoint's ONNX export run by ONNX Runtime.

    Args:
        checkpoint: ``.safetensors`` weights (for the configuration, hand models and cache key).
        onnx_path: an export of that checkpoint; None exports it once into the cache.
        device: "cpu", "cuda[:N]" or "auto"; precision: "fp32" (fp16 needs TensorRT's provider).
        threads: intra-op CPU threads (None: ONNX Runtime's default).
        providers: explicit execution providers (names), overriding device/precision.
        cache_dir: ONNX cache folder (default ~/.cache/interhand_perception/onnx).
    """

    kind = "onnxruntime"

    def __init__(self, checkpoint: str | os.PathLike, onnx_path: str | os.PathLike | None = None,
                 device: str = "cpu", precision: str = "fp32", threads: int | None = None,
                 providers: list[str] | None = None, mano_dir: str | None = None,
                 cache_dir: str | os.PathLike | None = None, opset: int = DEFAULT_OPSET, progress=None) -> None:
        from .export_onnx import read_metadata
        from .reconstructor import HandReconstructor

        ort = import_onnxruntime()
        rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu", mano_dir=mano_dir)
        rec.model = _ConfigOnly(rec.model.config)  # post-processing only: free the weights
        super().__init__(rec, precision)
        sha = file_sha256(checkpoint)
        if onnx_path is None:
            onnx_path = ensure_onnx(checkpoint, opset=opset, directory=cache_dir, mano_dir=mano_dir, progress=progress)
        self.onnx_path = Path(onnx_path)
        self.metadata = read_metadata(self.onnx_path)
        check_onnx_matches(self.metadata, self.onnx_path, sha, self.hand_model_ids, self.img_size)
        self.threads = threads
        self.session, self.fallback_note = open_session(ort, self.onnx_path, device, precision, threads, providers)
        if self.fallback_note:
            warnings.warn(self.fallback_note, RuntimeWarning, stacklevel=2)
        on_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        self.device = torch.device("cpu") if on_cpu else torch.device("cuda", cuda_index(device))
        self.output_names = [o.name for o in self.session.get_outputs()]

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """RGB uint8 crops -> (B, 3, S, S) float32 normalised array."""
        return normalise_images(as_batch(images, self.img_size))

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """The graph on a normalised batch (B, 3, S, S) -> outputs in ``output_names`` order."""
        return self.session.run(None, {INPUT_NAME: x})

    def forward_raw(self, images: np.ndarray) -> dict:
        return onnx_outputs_to_pred(self.run(self.preprocess(images)), self.output_names)

    def describe(self) -> str:
        threads = self.threads or "default"
        return f"onnxruntime {self.session.get_providers()[0]} ({self.precision}, {threads} threads)"
