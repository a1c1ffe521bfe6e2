"""CudaGraphRunner's buffer logic on the CPU, with a stand-in for the CUDA-graph calls.

The stand-in records the captured function and, on replay, recomputes it from the static input
and writes the result into the static outputs captured the first time, which is what a CUDA
graph does to its buffers. What it cannot show: that capture itself succeeds on a GPU (no host
work in the forward is tested in tests/test_compile.py), and any speed.
"""
import contextlib
import warnings

import pytest
import torch

from interhand_perception.dir_net.build import build_dir_net
from interhand_perception.hand_model.joints import SIDES
from interhand_perception.network.cuda_graph import WARMUP_RUNS, CudaGraphRunner, GraphAPI, output_tensors
from tiny_config import TINY_MODEL

S = TINY_MODEL["img_size"]


class FakeGraph:
    fn = None
    out = None


class FakeGraphAPI(GraphAPI):
    """Graph calls that run on the CPU; ``fail`` makes every capture raise it."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.pools, self.replays, self.side_streams = [], 0, 0

    def available(self, device):
        return None

    def side_stream(self, device):
        self.side_streams += 1
        return contextlib.nullcontext()

    def new_graph(self):
        return FakeGraph()

    def capture(self, graph, fn, pool):
        self.pools.append(pool)
        if self.fail is not None:
            raise self.fail
        graph.fn, graph.out = fn, fn()
        return graph.out

    def pool(self, graph):
        return ("pool of", id(graph))

    def replay(self, graph):
        self.replays += 1
        with torch.inference_mode():
            for static, new in zip(output_tensors(graph.out), output_tensors(graph.fn())):
                static.copy_(new)

    def synchronize(self, device):
        pass


class Counting(torch.nn.Module):
    """The network, counting its forward calls."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_dir_net(TINY_MODEL).eval()


def last_verts(out):
    return torch.stack([out["stages"][-1]["verts"][s] for s in SIDES])


def test_replay_gives_the_eager_outputs_per_batch_size(net):
    model, api = Counting(net), FakeGraphAPI()
    runner = CudaGraphRunner(model, (3, S, S), batch_sizes=(2, 1), device="cpu", api=api, warn=pytest.fail)
    assert sorted(runner.graphs) == [1, 2] and runner.fallback_reason is None
    assert model.calls == 2 * (WARMUP_RUNS + 1) and api.side_streams == 2  # warm-up + capture per size
    assert api.pools == [None, ("pool of", id(runner.graphs[1][0]))]  # the second capture shares the first's pool
    for batch in (1, 2, 1):
        x = torch.randn(batch, 3, S, S)
        got = runner(x)
        with torch.inference_mode():
            want = net(x)
        assert torch.equal(last_verts(got), last_verts(want))
        assert torch.equal(got["seg"], want["seg"])
    assert api.replays == 3 and model.calls == 2 * (WARMUP_RUNS + 1) + 3


def test_outputs_are_static_buffers_unless_cloned(net):
    x1, x2 = torch.randn(1, 3, S, S), torch.randn(1, 3, S, S)
    runner = CudaGraphRunner(net, (3, S, S), device="cpu", api=FakeGraphAPI(), warn=pytest.fail)
    first = runner(x1)
    kept = last_verts(first).clone()
    second = runner(x2)
    assert second is first  # the same buffers, overwritten by the second replay
    assert not torch.equal(last_verts(first), kept)
    x1.zero_()  # the caller's images are copied in, never aliased
    assert not torch.equal(runner.graphs[1][1], x1)

    cloning = CudaGraphRunner(net, (3, S, S), device="cpu", api=FakeGraphAPI(), clone_outputs=True, warn=pytest.fail)
    a = cloning(x2)
    b = cloning(torch.randn(1, 3, S, S))
    assert a is not b and torch.equal(last_verts(a), last_verts(second))


def test_a_batch_size_not_captured_runs_eager_and_warns_once(net):
    messages = []
    runner = CudaGraphRunner(net, (3, S, S), batch_sizes=(1,), device="cpu", api=FakeGraphAPI(), warn=messages.append)
    x = torch.randn(3, 3, S, S)
    for _ in range(2):
        got = runner(x)
    with torch.inference_mode():
        assert torch.equal(last_verts(got), last_verts(net(x)))
    assert len(messages) == 1 and "batch size 3" in messages[0] and "eager" in messages[0]
    with pytest.raises(ValueError, match="expected images"):
        runner(torch.randn(1, 3, S, S + 32))


def test_a_capture_error_falls_back_to_eager_with_the_reason(net):
    messages = []
    err = RuntimeError("Cannot copy between CPU and CUDA tensors during CUDA graph capture")
    runner = CudaGraphRunner(net, (3, S, S), device="cpu", api=FakeGraphAPI(fail=err), warn=messages.append)
    assert runner.graphs == {} and "Cannot copy between CPU and CUDA" in runner.fallback_reason
    assert len(messages) == 1 and messages[0].startswith("CUDA graphs off, running the eager forward")
    x = torch.randn(1, 3, S, S)
    with torch.inference_mode():
        assert torch.equal(last_verts(runner(x)), last_verts(net(x)))
    assert "eager" in runner.describe()


def test_on_the_cpu_the_real_api_falls_back(net):
    with pytest.warns(RuntimeWarning, match="need a CUDA device"):
        runner = CudaGraphRunner(net, (3, S, S), device="cpu")
    assert runner.graphs == {} and runner(torch.randn(1, 3, S, S))["seg"].shape[0] == 1


def test_autocast_runs_inside_the_captured_function(net):
    runner = CudaGraphRunner(net, (3, S, S), device="cpu", api=FakeGraphAPI(), autocast=torch.bfloat16,
                             warn=pytest.fail)
    out = runner(torch.randn(1, 3, S, S))
    assert out["seg"].dtype == torch.bfloat16  # the heads ran under autocast
    assert out["stages"][-1]["verts"]["left"].dtype == torch.float32  # the hand models in fp32 (DIRNet.decode)


def test_pytorch_backend_cuda_graph_option_on_the_cpu():
    """The backend parameter: on the CPU it warns and runs the eager forward."""
    import numpy as np

    from interhand_perception.network.backends import PyTorchBackend

    with pytest.warns(RuntimeWarning, match="CUDA graphs off"):
        backend = PyTorchBackend(_demo(), device="cpu", cuda_graph=True)
    plain = PyTorchBackend(_demo(), device="cpu")
    crop = np.random.default_rng(0).integers(0, 255, (plain.img_size, plain.img_size, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = backend(crop), plain(crop)
    assert np.array_equal(a.left.vertices, b.left.vertices) and "eager" in backend.describe()


def _demo():
    from interhand_perception.paths import DEMO_WEIGHTS

    return DEMO_WEIGHTS


def test_pytorch_backend_replays_normalise_and_forward_from_the_uint8_crop():
    """With graphs (the stand-in API) the backend copies the uint8 crop into the graph's static
    input, the one copy per frame, and the replay (normalise + forward) gives the eager results."""
    import numpy as np

    from interhand_perception.network.backends import PyTorchBackend

    api = FakeGraphAPI()
    graphed = PyTorchBackend(_demo(), device="cpu", cuda_graph=True, graph_batch_sizes=(1, 2), graph_api=api)
    plain = PyTorchBackend(_demo(), device="cpu", cuda_graph=False)
    assert plain.graph_runner is None and sorted(graphed.graph_runner.graphs) == [1, 2]
    static_in = graphed.graph_runner.graphs[1][1]
    assert static_in.dtype == torch.uint8 and static_in.shape == (1, graphed.img_size, graphed.img_size, 3)
    crops = np.random.default_rng(1).integers(0, 255, (2, graphed.img_size, graphed.img_size, 3), dtype=np.uint8)
    a, b = graphed(crops[0]), plain(crops[0])
    assert np.array_equal(static_in[0].numpy(), crops[0]) and api.replays == 1
    assert np.array_equal(a.left.vertices, b.left.vertices) and np.array_equal(a.offset, b.offset)
    both = graphed(crops)
    assert api.replays == 2 and np.array_equal(both[1].right.joints, plain(crops)[1].right.joints)
    assert "CUDA graphs for batch sizes [1, 2]" in graphed.describe()


def test_crop_upload_on_the_cpu_copies_nothing():
    import numpy as np

    from interhand_perception.network.upload import CropUpload

    crops = np.zeros((1, 8, 8, 3), np.uint8)
    up = CropUpload(torch.device("cpu"))
    shared = up(crops)
    crops[0, 0, 0, 0] = 7
    assert shared[0, 0, 0, 0] == 7  # the array's own memory
    out = torch.zeros(1, 8, 8, 3, dtype=torch.uint8)
    assert up(crops, out=out) is out and out[0, 0, 0, 0] == 7


@pytest.mark.parametrize("cuda, have, precision, want", [
    (True, {"tensorrt", "onnxruntime", "onnx"}, "fp16", "tensorrt"),
    (True, {"tensorrt"}, "bf16", "pytorch"),  # TensorRT engines here are fp32/fp16/int8
    (True, {"onnxruntime", "onnx"}, "fp32", "pytorch"),  # CUDA graphs, not ORT (often a CPU-only wheel)
    (False, {"onnxruntime", "onnx"}, "fp32", "onnxruntime"),
    (False, set(), "fp32", "pytorch"),
])
def test_auto_backend_choice(monkeypatch, cuda, have, precision, want):
    """backend auto, with CUDA and the optional runtimes faked (which ones exist is all it reads)."""
    import importlib.util

    from interhand_perception.network import factory

    monkeypatch.setattr(factory.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in have else None)
    assert factory.resolve_backend("auto", "auto", precision) == want
    assert factory.resolve_backend("pytorch", "auto", precision) == "pytorch"
