"""DIR's inference forward is one capturable graph (issue 13 item 1), with the old results.

* No host work in the forward: a dispatch mode counts the operators that mean a tensor built
  from Python or NumPy data (``aten.lift_fresh``: ``torch.tensor``, list indexing, item
  assignment of a Python number; on CUDA each is a host-to-device copy, which breaks CUDA-graph
  capture), a value read back to the host (``aten._local_scalar_dense``: ``.item()``,
  ``.tolist()``, ``bool(tensor)``, Python branching on a value) and a constant rebuilt per call
  (``arange``, ``eye``, ``full``, ``zeros``, ``ones``, ...: these are buffers now). All must be 0.
* ``torch.compile(model, fullgraph=True)`` compiles the forward as one graph (a graph break
  raises) and gives the eager outputs, for ResNet-18 and ResNet-50, T = 0..3 (every value
  ``DIRConfig`` allows) and the release variant; ``torch._dynamo.explain`` reports one graph
  and 0 breaks. Backend: ``aot_eager`` (dynamo's graph + AOTAutograd functionalisation, the
  graph inductor and CUDA graphs start from, run by eager kernels), about 15 s per network on a
  2-core CPU; ``inductor`` (C++ code generated and built with gcc) takes about 100 s for one
  small network, so it runs for one case, marked slow. Tolerance: 1e-5 m on vertices and
  joints, 1e-4 on the 2D joints (crop units) and 1e-4 on the pixel-head logits.
* The forward gives the outputs of the code before the rewrite (stored in
  tests/data/forward_reference.npz by tests/reference_cases.py's networks): 1e-5 m on
  vertices and joints at every stage; the 2D joints within 5e-4 crop units (0.03 px at 128 px:
  three stages feed each other's float rounding forward).
"""
import collections
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from interhand_perception.dir_net import release_gcn, release_mfp, release_model
from interhand_perception.dir_net import heads, mfp, model as dir_model
from interhand_perception.dir_net.build import build_dir_net
from interhand_perception.hand_model import layer, lbs
from interhand_perception.hand_model.joints import SIDES
from interhand_perception.network import fast_inference
from interhand_perception.network.fast_inference import optimise_for_inference
from interhand_perception.network import reconstructor
from interhand_perception.network.backends import PyTorchBackend
from interhand_perception.network.reconstructor import HandReconstructor
from interhand_perception.dir_net.inputs import ImageNormaliser
from reference_cases import REFERENCE_CASES, reference_input, seeded_net
from tiny_config import TINY_MODEL

S = 64
SMALL = {"img_size": S, "width": 32, "joint_dim": 32}
RELEASE = {"variant": "release", "backbone": "resnet50", **SMALL}
REFERENCE = Path(__file__).parent / "data" / "forward_reference.npz"
METRES, UV, LOGITS = 1e-5, 1e-4, 1e-4

#: Operators that move data between host and device or rebuild a constant per call.
HOST_DATA = ("aten.lift_fresh", "aten._local_scalar_dense")
CONSTANTS = ("aten.arange", "aten.eye", "aten.full.", "aten.zeros.", "aten.ones.", "aten.scalar_tensor",
             "aten.linspace", "aten.tensor")


class HostWork(TorchDispatchMode):
    """Counts :data:`HOST_DATA` and :data:`CONSTANTS` operators run under it, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.count = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name.startswith(HOST_DATA + CONSTANTS):
            self.count[name] += 1
        return func(*args, **(kwargs or {}))


def small_net(cfg: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_dir_net(cfg).eval()


def max_diff(a: dict, b: dict) -> dict:
    """{kind: largest |a - b|} over every stage and side of two forward outputs."""
    worst = collections.defaultdict(float)
    for sa, sb in zip(a["stages"], b["stages"]):
        for key in ("verts", "joints", "joints2d"):
            for s in SIDES:
                worst[key] = max(worst[key], float((sa[key][s] - sb[key][s]).abs().max()))
    for key in ("seg", "dense"):
        worst[key] = float((a[key] - b[key]).abs().max())
    return dict(worst)


def assert_close(a: dict, b: dict) -> None:
    d = max_diff(a, b)
    assert len(a["stages"]) == len(b["stages"])
    assert d["verts"] < METRES and d["joints"] < METRES, d
    assert d["joints2d"] < UV and d["seg"] < LOGITS and d["dense"] < LOGITS, d


# ----------------------------------------------------------------------------- host work
@pytest.mark.parametrize("cfg", [
    {**TINY_MODEL, "num_stages": 3},
    {**TINY_MODEL, "mfp_mode": "joint"},
    {**TINY_MODEL, "mfp_mode": "single"},
    {"backbone": "resnet18", "num_stages": 3, **SMALL},
    RELEASE,
], ids=["bone_t3", "joint", "single", "r18_kernel3_t3", "release"])
@pytest.mark.parametrize("mode", ["plain", "fast_paths", "sides_one_by_one"])
def test_forward_does_no_host_work(cfg, mode):
    """No tensor from host data, no value read back, no constant rebuilt: plain, with the CPU
    fast paths of network/fast_inference.py installed, and with the hand models called one side
    at a time (``decode_each``, the path of hand models that cannot be paired)."""
    net = small_net(cfg)
    if mode == "fast_paths":
        assert "batched_decode" in optimise_for_inference(net)
    if mode == "sides_one_by_one":
        net.hand_pair = None
    with torch.inference_mode(), HostWork() as work:
        net(torch.randn(2, 3, S, S))
    assert not work.count, dict(work.count)


def forward_path_sources() -> str:
    """Source of every function the inference forward runs (model code, not the trunk)."""
    objs = [dir_model.DIRNet.forward, dir_model.DIRNet.decode, dir_model.DIRNet._decode,
            dir_model.DIRNet.decode_pair, dir_model.RefinementStage, dir_model.sample_joint_features,
            heads.InitialRegressor.forward, heads.ParamUpdate.forward, heads.decode_camera,
            heads.project_weak_perspective, mfp.MultiPlaneProjection.forward, mfp.MultiPlaneProjection.project,
            mfp.segment_weights, mfp.splat_segments, mfp.point_weights, mfp.to_cells, mfp.centres_for,
            release_model.ReleaseDIRNet.forward, release_model.ReleaseJointInteraction.forward,
            release_model.ReleaseJointInteraction.tokens, release_model.ReleaseStage.forward,
            release_model.AbsoluteParamUpdate.forward, release_mfp.bone_distance_weights,
            release_gcn.scatter_row_softmax, release_gcn.SemanticGraphConv.forward,
            layer.HandPair.forward, layer.HandPair.rotations, layer.HandPair.levels,
            lbs.batch_rodrigues, lbs.rot6d_to_matrix, lbs.pose_features, lbs.level_forward_kinematics,
            layer.HandModel.forward, layer.HandModel.hand_pose_to_axis_angle, lbs.lbs, lbs.joints21_from,
            lbs.batch_rigid_transform, dir_model.DIRNet.decode_each, release_model.ReleaseDIRNet.decode_each,
            fast_inference.factorised_mfp_forward, fast_inference._splat_weights,
            ImageNormaliser.forward, HandReconstructor.network, HandReconstructor.result_tensors,
            PyTorchBackend.frame_outputs, reconstructor.pack, reconstructor.hand_confidence,
            lbs.matrix_to_axis_angle, lbs.matrix_to_quaternion, lbs.quaternion_to_axis_angle]
    return "\n".join(inspect.getsource(o) for o in objs)


def test_forward_source_has_no_host_transfers():
    """``.cpu()``, ``.numpy()``, ``.item()``, ``.tolist()`` cannot be seen by a CPU run (a no-op
    on CPU tensors): none appears in the code of the forward."""
    code = "\n".join(line.split("#")[0] for line in forward_path_sources().splitlines())
    found = re.findall(r"\.(cpu|numpy|item|tolist)\(\)|np\.\w+\(", code)
    assert not found, found


# ----------------------------------------------------------------------------- reference outputs
@pytest.mark.parametrize("name", sorted(REFERENCE_CASES))
def test_forward_matches_the_code_before_the_rewrite(name):
    ref = np.load(REFERENCE)
    cfg = REFERENCE_CASES[name]
    with torch.inference_mode():
        pred = seeded_net(cfg)(reference_input(cfg))
    tol = {"joints": METRES, "verts": METRES, "joints2d": 5e-4, "params": 1e-4, "seg": 1e-5}
    checked = 0
    for key in ref.files:
        if not key.startswith(name + "/"):
            continue
        parts = key.split("/")
        if parts[1] == "seg":
            got, kind = pred["seg"][:, :, :4, :4], "seg"
        else:
            stage = pred["stages"][-1 if parts[1] == "last" else int(parts[1])]
            got, kind = stage[parts[2]][parts[3]], parts[2]
        err = float(np.abs(got.numpy() - ref[key]).max())
        assert err < tol[kind], (key, err)
        checked += 1
    assert checked >= 8


# ----------------------------------------------------------------------------- torch.compile
def compile_and_compare(net: torch.nn.Module, backend: str, batch: int = 2) -> None:
    x = torch.randn(batch, 3, S, S)
    compiled = torch.compile(net, fullgraph=True, backend=backend)  # a graph break raises
    try:
        with torch.no_grad():
            got, want = compiled(x), net(x)
        assert_close(got, want)
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("stages", [0, 1, 2, 3])
@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_compiles_as_one_graph(backbone, stages):
    compile_and_compare(small_net({"backbone": backbone, "num_stages": stages, **SMALL}), "aot_eager")


def test_release_variant_compiles_as_one_graph():
    compile_and_compare(small_net(RELEASE), "aot_eager")


@pytest.mark.parametrize("cfg", [{"backbone": "resnet50", "num_stages": 3, **SMALL}, RELEASE],
                         ids=["r50_t3", "release"])
def test_explain_reports_no_graph_break(cfg):
    net = small_net(cfg)
    try:
        with torch.no_grad():
            report = torch._dynamo.explain(net)(torch.randn(1, 3, S, S))
    finally:
        torch._dynamo.reset()
    assert report.graph_break_count == 0 and report.graph_count == 1, report.break_reasons


@pytest.mark.slow
def test_inductor_compiles_and_matches():
    """One network through inductor's C++ code generation (needs a C++ compiler: gcc)."""
    compile_and_compare(small_net(TINY_MODEL), "inductor")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_what_the_backend_captures_is_one_graph_without_host_work(precision):
    """The pytorch backend's CUDA graph records ``PyTorchBackend.frame_outputs`` on the uint8
    crop: normalisation, autocast (bf16 here; fp16 is the same code), the forward, the hand
    models and the post-processing's tensor work, packed into one tensor; demo weights with the
    fast paths. No host work in it, and it compiles as one graph."""
    from interhand_perception.paths import DEMO_WEIGHTS

    backend = PyTorchBackend(DEMO_WEIGHTS, device="cpu", precision=precision, cuda_graph=False)
    crops = torch.randint(0, 256, (1, backend.img_size, backend.img_size, 3), dtype=torch.uint8)
    with torch.inference_mode(), HostWork() as work:
        want = backend.frame_outputs(crops)
    assert not work.count, dict(work.count)
    compiled = torch.compile(backend.frame_outputs, fullgraph=True, backend="aot_eager")
    try:
        with torch.no_grad():
            got = compiled(crops)
    finally:
        torch._dynamo.reset()
    assert got.shape == want.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=METRES, rtol=1e-4)  # metres, radians, pixels, [0, 1]


# ----------------------------------------------------------------------------- the batched pair
@pytest.mark.parametrize("variant", ["project", "release"])
def test_hand_pair_matches_the_models_one_side_at_a_time_on_mano_topology(variant):
    """``decode`` (both hands in one HandPair call) = ``decode_each`` (the two HandModel calls of
    before) on 778-vertex MANO-topology models (synthetic arrays), where the release reads the
    left middle fingertip at vertex 445; large random parameters."""
    from release_fixtures import synthetic_hand_models

    cfg = {"backbone": "resnet18", **SMALL} if variant == "project" else {**RELEASE, "backbone": "resnet18"}
    net = build_dir_net(cfg, synthetic_hand_models()).eval()
    assert net.hand_pair is not None and net.hand_models["left"].num_verts == 778
    g = torch.Generator().manual_seed(3)
    params = {s: torch.randn(4, net.config.num_params, generator=g) * 2.0 for s in SIDES}
    offset = torch.randn(4, 3, generator=g)
    with torch.inference_mode():
        a, b = net.decode_each(params, offset), net.decode(params, offset)
    for s in SIDES:
        scale = float(b["camera"][s][:, 0].abs().max())  # crop units per metre: up to S0 e^4 here
        for key, tol in (("verts", 2e-6), ("joints", 2e-6), ("camera", 1e-6), ("joints2d", 2e-6 * scale),
                         ("verts2d", 2e-6 * scale)):
            assert float((a[key][s] - b[key][s]).abs().max()) < tol, (key, s)
    if variant == "release":
        j, v = release_model.LEFT_MIDDLE_TIP
        assert torch.equal(b["joints"]["left"][:, j], b["verts"]["left"][:, v])
