"""Replay the network's forward as captured CUDA graphs (issue 13 item 2).

At batch 1 on a fast GPU, DIR's eager forward is bound by kernel launches and host work (about
8 ms per refinement stage on an H200 whatever the batch). A CUDA graph records every kernel of
one forward once and replays them with a single launch. That needs a forward with no host round
trip and no tensor created from host data (dir_net since issue 13, tests/test_compile.py) and
fixed shapes and addresses: one graph per batch size, each with its own *static* input buffer
that every call copies the images into, and static outputs that every replay overwrites.

:class:`CudaGraphRunner` captures the graphs at start-up and falls back to the eager forward,
with a warning that says why, where capture is impossible (no CUDA device, a capture error) or
for a batch size that was not captured. The CUDA calls go through :class:`GraphAPI`, so the
buffer logic can be tested on a CPU with a stand-in (tests/test_cuda_graph.py).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterable

import torch
from torch.utils._pytree import tree_flatten, tree_map

#: Eager runs on a side stream before a capture (cuDNN/cuBLAS pick their kernels and allocate
#: their workspaces there, outside the graph).
WARMUP_RUNS = 3


class GraphAPI:
    """The CUDA-graph calls :class:`CudaGraphRunner` makes (``torch.cuda``'s)."""

    def available(self, device: torch.device) -> str | None:
        """None when graphs can be captured on ``device``, else why not (one sentence)."""
        if device.type != "cuda":
            return f"CUDA graphs need a CUDA device, the network runs on {device}"
        if not torch.cuda.is_available():
            return "CUDA is not available in this torch build or on this machine"
        return None

    def side_stream(self, device: torch.device):
        """A context running the warm-up and the capture off the default stream."""
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))

        @contextlib.contextmanager
        def ctx():
            with torch.cuda.stream(stream):
                yield
            torch.cuda.current_stream(device).wait_stream(stream)
        return ctx()

    def new_graph(self):
        return torch.cuda.CUDAGraph()

    def capture(self, graph, fn: Callable[[], object], pool) -> object:
        """Record ``fn()``'s kernels into ``graph``; returns its (static) outputs."""
        with torch.cuda.graph(graph, pool=pool):
            return fn()

    def pool(self, graph):
        """The memory pool of a captured graph, shared by the next capture."""
        return graph.pool()

    def replay(self, graph) -> None:
        graph.replay()

    def synchronize(self, device: torch.device) -> None:
        torch.cuda.synchronize(device)


class CudaGraphRunner:
    """The network's forward as one captured CUDA graph per batch size.

    Args:
        model: the network in eval mode, on its device, weights loaded (a capture records the
            weights' addresses: load weights before, never swap the parameters afterwards); or
            any tensor-only callable around it (the pytorch backend captures
            ``HandReconstructor.network``: uint8 crops -> normalise -> forward).
        input_shape: of one input: (3, S, S) normalised images, or (S, S, 3) uint8 crops.
        batch_sizes: batch sizes captured at construction (start-up).
        device, dtype: of the input buffers (float32 images, or torch.uint8 crops).
        memory_format: of the input buffers (``torch.channels_last`` if the model runs NHWC).
        autocast: None, or a dtype (torch.float16 / torch.bfloat16) to run the forward under
            CUDA autocast, inside the graph.
        clone_outputs: return copies of the static outputs (safe to keep across calls) instead
            of the static buffers themselves, which the next call overwrites.
        api: the CUDA-graph calls (:class:`GraphAPI`; tests pass a stand-in).
        warn: called with the reason when the runner falls back to eager.
    Call: images (B, *input_shape) -> the model's output for them (a replay when B was
        captured, else the eager forward). The images may be on the host (pinned memory for
        an asynchronous copy): the copy into the static input is the one host-to-device copy.
        Or write the static input yourself (:meth:`input_buffer`) and :meth:`replay`.
    Attributes:
        graphs: {batch size: (graph, static input, static output)}; empty after a fallback.
        fallback_reason: None, or why capture was impossible (then every call is eager).
    """

    def __init__(self, model: torch.nn.Module, input_shape: tuple[int, int, int], batch_sizes: Iterable[int] = (1,),
                 device: torch.device | str = "cuda", dtype: torch.dtype = torch.float32,
                 memory_format: torch.memory_format = torch.contiguous_format, autocast: torch.dtype | None = None,
                 clone_outputs: bool = False, api: GraphAPI | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.input_shape = tuple(int(s) for s in input_shape)
        self.device = torch.device(device)
        self.dtype, self.memory_format, self.autocast = dtype, memory_format, autocast
        self.clone_outputs = bool(clone_outputs)
        self.api = api or GraphAPI()
        self.warn = warn or (lambda msg: warnings.warn(msg, RuntimeWarning, stacklevel=3))
        self.graphs: dict[int, tuple] = {}
        self.fallback_reason: str | None = self.api.available(self.device)
        self._warned_sizes: set[int] = set()
        if self.fallback_reason is None:
            try:
                self.capture_all(sorted({int(b) for b in batch_sizes}))
            except Exception as exc:  # noqa: BLE001 - any capture failure means: run eager
                self.graphs.clear()
                self.fallback_reason = f"capturing the forward failed ({type(exc).__name__}: {exc})"
        if self.fallback_reason is not None:
            self.warn(f"CUDA graphs off, running the eager forward: {self.fallback_reason}")

    def eager(self, images: torch.Tensor):
        """The model's forward (under autocast when asked), no graph."""
        with torch.inference_mode(), self._autocast():
            return self.model(images)

    def _autocast(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast, cache_enabled=False)  # see HandReconstructor.network

    def static_input(self, batch: int) -> torch.Tensor:
        """(batch, *input_shape) zeros on the device: the buffer a graph reads its images from."""
        x = torch.zeros((batch, *self.input_shape), device=self.device, dtype=self.dtype)
        return x.contiguous(memory_format=self.memory_format)

    def capture_all(self, batch_sizes: list[int]) -> None:
        """Warm up and capture one graph per batch size (graphs share one memory pool)."""
        pool = None
        for batch in batch_sizes:
            static_in = self.static_input(batch)
            with self.api.side_stream(self.device):
                for _ in range(WARMUP_RUNS):
                    self.eager(static_in)
            self.api.synchronize(self.device)
            graph = self.api.new_graph()
            with torch.inference_mode():
                static_out = self.api.capture(graph, lambda x=static_in: self._forward_for_capture(x), pool)
            pool = self.api.pool(graph)
            self.graphs[batch] = (graph, static_in, static_out)
        self.api.synchronize(self.device)

    def _forward_for_capture(self, x: torch.Tensor):
        with self._autocast():
            return self.model(x)

    def input_buffer(self, batch: int) -> torch.Tensor | None:
        """The static input the graph of ``batch`` reads (write the images into it, then
        :meth:`replay`), or None when that batch size runs eager (warned once)."""
        entry = self.graphs.get(int(batch))
        if entry is None:
            if self.fallback_reason is None and batch not in self._warned_sizes:
                self._warned_sizes.add(batch)
                self.warn(f"no CUDA graph for batch size {batch} (captured: {sorted(self.graphs)}): "
                          "running the eager forward for it")
            return None
        return entry[1]

    def replay(self, batch: int):
        """Replay the graph of ``batch`` on what its static input holds now; its static outputs
        (or copies of them with ``clone_outputs``)."""
        graph, _static_in, static_out = self.graphs[int(batch)]
        self.api.replay(graph)
        if self.clone_outputs:
            return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, static_out)
        return static_out

    def __call__(self, images: torch.Tensor):
        if tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(f"expected images (B, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(images.shape)}")
        batch = int(images.shape[0])
        static_in = self.input_buffer(batch)
        if static_in is None:
            return self.eager(images.to(self.device, non_blocking=True))
        static_in.copy_(images, non_blocking=True)
        return self.replay(batch)

    def describe(self) -> str:
        """One line for logs."""
        if self.fallback_reason is not None:
            return f"eager (CUDA graphs off: {self.fallback_reason})"
        return f"CUDA graphs for batch sizes {sorted(self.graphs)}"


def output_tensors(out) -> list[torch.Tensor]:
    """Every tensor of a (nested) network output, in a fixed order."""
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


__all__ = ["CudaGraphRunner", "GraphAPI", "WARMUP_RUNS", "output_tensors"]
