"""The GPU variants of ``interhand bench`` (issue 13 item 3), as far as a CPU can run them.

The table of variants, the runner each variant builds (eager, autocast, CUDA graph through the
CPU stand-in of tests/test_cuda_graph.py, compiled with the ``aot_eager`` backend) and the
timing rows with their ratios. What needs a GPU: the CUDA timings themselves, inductor's
``max-autotune`` and real graph capture.
"""
import math

import pytest
import torch

from interhand_perception.dir_net.build import build_dir_net
from interhand_perception.hand_model.joints import SIDES
from interhand_perception.tools.bench import BASELINE, CUDA_VARIANTS, make_runner, time_variants, variant_table
from test_cuda_graph import FakeGraphAPI
from tiny_config import TINY_MODEL

S = TINY_MODEL["img_size"]


def test_variant_table():
    assert variant_table(torch.device("cpu")) == [(CUDA_VARIANTS[BASELINE], 1)]
    cuda = torch.device("cuda")
    full = variant_table(cuda)
    assert [b for _, b in full] == [1] * len(CUDA_VARIANTS) + [16] * len(CUDA_VARIANTS)
    assert [v.name for v, _ in full[:len(CUDA_VARIANTS)]] == list(CUDA_VARIANTS)
    some = variant_table(cuda, ["graph bf16"], batches=(1, 64))
    assert [(v.name, b) for v, b in some] == [(BASELINE, 1), ("graph bf16", 1), (BASELINE, 64), ("graph bf16", 64)]
    assert CUDA_VARIANTS["graph bf16"].cuda_graph and CUDA_VARIANTS["graph bf16"].autocast == torch.bfloat16
    assert CUDA_VARIANTS["compiled"].compile_mode == "max-autotune"
    with pytest.raises(ValueError, match="unknown variants"):
        variant_table(cuda, ["graph fp64"])


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_dir_net(TINY_MODEL).eval()


@pytest.mark.parametrize("name", ["eager fp32", "eager bf16", "graph fp32", "graph bf16", "graph fp16 NHWC",
                                  "compiled"])
def test_each_runner_gives_the_network_outputs(net, name):
    """Every variant computes the same hands (bf16 autocast within 2 mm on a random network)."""
    x = torch.randn(2, 3, S, S)
    with torch.inference_mode():
        want = net(x)
    rows = time_variants(net, torch.device("cpu"), S, repeats=1, warmup=0, printer=pytest.fail,
                         table=[(CUDA_VARIANTS[name], 2)], graph_api=FakeGraphAPI(), compile_backend="aot_eager")
    assert len(rows) == 1  # ran, and (NHWC) left the network in NCHW for the next variant
    assert all(p.is_contiguous() for p in net.parameters())
    variant = CUDA_VARIANTS[name]
    if variant.channels_last:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    run = make_runner(net, variant, x, graph_api=FakeGraphAPI(), compile_backend="aot_eager")
    try:
        with torch.inference_mode():
            got = run(x)
    finally:
        torch._dynamo.reset()
        net.to(memory_format=torch.contiguous_format)
    tol = 2e-3 if CUDA_VARIANTS[name].autocast is not None else 1e-5
    for s in SIDES:
        assert float((got["stages"][-1]["verts"][s] - want["stages"][-1]["verts"][s]).abs().max()) < tol


def test_time_variants_rows_and_ratios(net):
    lines = []
    table = [(CUDA_VARIANTS[BASELINE], 1), (CUDA_VARIANTS["graph fp32"], 1), (CUDA_VARIANTS["eager bf16"], 2)]
    rows = time_variants(net, torch.device("cpu"), S, repeats=2, table=table, warmup=1, printer=lines.append,
                         graph_api=FakeGraphAPI())
    assert [(r["variant"], r["batch"]) for r in rows] == [(n.name, b) for n, b in table]
    assert rows[0]["ratio"] == 1.0 and rows[1]["ratio"] > 0
    assert math.isnan(rows[2]["ratio"])  # no eager fp32 at batch 2 in this table
    assert rows[2]["images_per_s"] == pytest.approx(2e3 / rows[2]["median_ms"])
    assert not lines


def test_a_failing_variant_is_reported_and_skipped(net):
    lines = []
    err = RuntimeError("Cannot copy between CPU and CUDA tensors during CUDA graph capture")
    rows = time_variants(net, torch.device("cpu"), S, repeats=1, warmup=0, printer=lines.append,
                         table=[(CUDA_VARIANTS[BASELINE], 1), (CUDA_VARIANTS["graph fp32"], 1)],
                         graph_api=FakeGraphAPI(fail=err))
    assert [r["variant"] for r in rows] == [BASELINE]
    assert len(lines) == 1 and "graph fp32 at batch 1 failed" in lines[0] and "Cannot copy" in lines[0]


def test_node_bench_without_ros_times_decode_and_the_pipeline():
    """``interhand bench --node --no-ros`` (a GPU box has no ROS 2): every backend's pipeline
    stages are timed, the message stages are 0 and the output says why."""
    from interhand_perception.tools.bench_node import STAGES, run_node_bench

    lines = []
    rows = run_node_bench(repeats=1, ros=False, printer=lines.append)
    assert "(no ROS 2: build and publish not timed)" in lines
    by_name = {r["variant"]: r for r in rows}
    assert {"pytorch eager", "pytorch"} <= set(by_name)
    for r in rows:
        assert r["hands_msg_ms"] == 0.0 and r["other_msgs_ms"] == 0.0
        assert r["network_ms"] > 0 and r["e2e_median_ms"] >= r["to_two_hands_ms"] > 0
        assert r["to_two_hands_ms"] == pytest.approx(sum(r[f"{s}_ms"] for s in STAGES), rel=0.2)


def test_target_lines_judge_the_issue_targets():
    """The GPU table ends with the cost per refinement stage and the verdicts on issue 13's
    targets (rows as time_variants makes them; the numbers here are made up)."""
    from interhand_perception.tools.bench import stage_costs, target_lines

    def row(bb, t, v, b, ms):
        return {"backbone": bb, "stages": t, "variant": v, "batch": b, "median_ms": ms, "images_per_s": b * 1e3 / ms}

    rows = [row("resnet50", 0, "graph fp32", 1, 2.0), row("resnet50", 2, "graph fp32", 1, 3.0),
            row("resnet50", 0, "eager fp32", 1, 8.0), row("resnet50", 2, "eager fp32", 1, 24.0),
            row("resnet50", 2, "graph bf16", 64, 25.0)]
    assert stage_costs(rows) == {("resnet50", "graph fp32", 1): 0.5, ("resnet50", "eager fp32", 1): 8.0}
    lines = target_lines(rows, 256)
    assert "resnet50 graph fp32 0.50" in lines[0] and "resnet50 eager fp32 8.00" in lines[0]
    assert lines[1] == "target ResNet-50 T=2 batch 1: best graph fp32 333 FPS (target >= 300): met"
    assert lines[2] == "target ResNet-50 T=2 batch 64: best graph bf16 2560 images/s (target >= 3000): NOT met"
    assert target_lines(rows, 128) == lines[:1]  # the targets are for 256 x 256
