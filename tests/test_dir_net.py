"""Tests of the DIR network (dir_net/): shapes, parameter budget, gradients, MFP, GCN, loading."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from interhand_perception.dir_net import DIRConfig, DIRNet, build_dir_net, count_parameters
from interhand_perception.dir_net import heads as H
from interhand_perception.dir_net.gcn import IntraHandGCN
from interhand_perception.dir_net.mfp import MultiPlaneProjection, splat_points, splat_radius, splat_segments
from interhand_perception.dir_net.resnet import ResNetEncoder, load_torchvision_state_dict
from interhand_perception.hand_model.joints import BONES, NUM_JOINTS, SIDES, SKIN_PARENTS, adjacency
from interhand_perception.hand_model.layer import HandModel
from interhand_perception.hand_model.model_data import HandModelData

SRC = Path(__file__).resolve().parents[1] / "src" / "interhand_perception" / "dir_net"

# a fast configuration for forward/backward tests
TINY = dict(backbone="resnet18", img_size=128, width=32, joint_dim=32, mfp_channels=8,
            attention_hidden=16, gcn_layers=2, tf_layers=1, tf_heads=4)


def _tiny_hand_data(side: str) -> HandModelData:
    """A 36-vertex hand-like model for the real HandModel layer (fast, no assets needed)."""
    rng = np.random.default_rng(0)
    # 16 skinning joints: wrist at 0, fingers along -x (right hand), spread in z
    joints = np.zeros((16, 3))
    finger_z = {1: 0.02, 4: 0.0, 7: -0.04, 10: -0.02, 13: 0.04}  # index, middle, little, ring, thumb
    for first, z in finger_z.items():
        for k in range(3):
            joints[first + k] = (-0.08 - 0.025 * k, 0.0, z)
    tips = np.array([(-0.16, 0.0, z) for z in (0.04, 0.02, 0.0, -0.02, -0.04)])
    verts = np.concatenate([joints, tips, joints[1:] + rng.normal(0, 0.004, (15, 3))])  # 36
    if side == "left":
        verts[:, 0] *= -1
    v = len(verts)
    weights = np.zeros((v, 16))
    owner = list(range(16)) + [15, 3, 6, 12, 9] + list(range(1, 16))
    weights[np.arange(v), owner] = 1.0
    jreg = np.zeros((16, v))
    jreg[np.arange(16), np.arange(16)] = 1.0
    faces = np.array([[i, i + 1, i + 2] for i in range(v - 2)])
    return HandModelData(
        v_template=verts, faces=faces, shapedirs=rng.normal(0, 1e-3, (v, 3, 10)),
        posedirs=np.zeros((v, 3, 135)), J_regressor=jreg, weights=weights,
        parents=np.array(SKIN_PARENTS), hands_components=np.eye(45),
        hands_mean=np.zeros(45), tip_vertex_ids=np.arange(16, 21), side=side, name="builtin",
    )


def tiny_hands() -> dict:
    return {s: HandModel(_tiny_hand_data(s)) for s in SIDES}


def real_hands() -> dict:
    """The built-in hand model through the public loader (hand_model/builtin.py)."""
    from interhand_perception.hand_model import load_hand_model

    return {s: load_hand_model(s) for s in SIDES}


def make(**kw) -> DIRNet:
    torch.manual_seed(0)
    cfg = DIRConfig(**{**TINY, **kw})
    return DIRNet(cfg, tiny_hands())


def images(b: int = 1, size: int = 128, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=dtype)


def check_output(out: dict, cfg: DIRConfig, b: int, num_verts: int) -> None:
    s = cfg.img_size
    assert len(out["stages"]) == cfg.num_stages + 1
    for st in out["stages"]:
        assert st["offset"].shape == (b, 3)
        for side in SIDES:
            assert st["params"][side].shape == (b, cfg.num_params) == (b, 64)
            assert st["joints"][side].shape == (b, 21, 3)
            assert st["verts"][side].shape == (b, num_verts, 3)
            assert st["joints2d"][side].shape == (b, 21, 2)
            assert st["verts2d"][side].shape == (b, num_verts, 2)
            assert st["camera"][side].shape == (b, 3)
            assert torch.all(st["camera"][side][:, 0] > 0)
            # wrist-relative
            assert torch.allclose(st["joints"][side][:, 0], torch.zeros(b, 3), atol=1e-6)
    assert out["seg"].shape == (b, 3, s // 8, s // 8)
    assert out["dense"].shape == (b, 3, s // 8, s // 8)
    assert out["dense"].min() >= 0 and out["dense"].max() <= 1
    for side in SIDES:
        assert out["attention"][side].shape == (b, 1, s // 32, s // 32)


# ---------------------------------------------------------------------------------------
def test_config_roundtrip_and_validation():
    cfg = DIRConfig(backbone="resnet34", num_stages=3, mfp_mode="joint", attention_hidden=100)
    assert DIRConfig.from_dict(cfg.to_dict()) == cfg
    assert DIRConfig.from_dict(None) == DIRConfig()
    assert DIRConfig().attention_channels == 1024
    assert DIRConfig(backbone="resnet18").attention_channels == 256
    assert DIRConfig().num_params == 64
    with pytest.raises(ValueError, match="unknown DIRConfig keys"):
        DIRConfig.from_dict({"widht": 3})
    for bad in (dict(num_stages=4), dict(img_size=100), dict(backbone="vgg"), dict(mfp_mode="x"),
                dict(joint_dim=30, tf_heads=4)):
        with pytest.raises(ValueError):
            DIRConfig(**bad)


@pytest.mark.parametrize("stages", [0, 1, 2, 3])
def test_output_shapes_resnet18(stages):
    model = make(num_stages=stages)
    out = model(images(2))
    check_output(out, model.config, 2, model.hand_models["left"].num_verts)


@pytest.mark.parametrize("size", [192, 256])
def test_other_input_sizes(size):
    model = make(img_size=size, num_stages=3).eval()
    with torch.no_grad():
        out = model(images(1, size))
    check_output(out, model.config, 1, model.hand_models["left"].num_verts)


def test_resnet50_forward_once():
    model = make(backbone="resnet50", num_stages=2, attention_hidden=None).eval()
    assert model.initial.attention["left"].net[0].weight.shape == (1024, 2048, 3, 3)
    with torch.no_grad():
        out = model(images(1))
    check_output(out, model.config, 1, model.hand_models["left"].num_verts)
    with pytest.raises(ValueError, match="expected images"):
        model(images(1, 96))


def test_parameter_budget():
    torch.manual_seed(0)
    default = DIRNet(DIRConfig(), tiny_hands())  # ResNet-50, T=2, width 256
    n = count_parameters(default)
    assert abs(n - 93e6) / 93e6 < 0.15, n
    att = sum(p.numel() for s in SIDES for p in default.initial.attention[s].net[0].parameters())
    assert 37e6 < att < 39e6
    # the shipped demo configuration must fit a <= 50 MB fp16 checkpoint
    import yaml
    from pathlib import Path

    demo_cfg = yaml.safe_load((Path(__file__).parents[1] / "configs" / "demo_r18_128.yaml").read_text())["model"]
    demo = DIRNet(DIRConfig.from_dict(demo_cfg), tiny_hands())
    assert count_parameters(demo) * 2 <= 50e6
    # hand-model buffers are neither parameters nor state
    assert not any(k.startswith("hand_models.") for k in default.state_dict())


def test_refinement_starts_as_identity():
    model = make(num_stages=3)
    out = model(images(2))
    first, last = out["stages"][0], out["stages"][-1]
    for side in SIDES:
        assert torch.equal(first["params"][side], last["params"][side])
        assert torch.allclose(first["joints"][side], last["joints"][side])
    assert torch.equal(first["offset"], last["offset"])


def test_initial_guess_is_sensible_mean():
    torch.manual_seed(0)
    model = DIRNet(DIRConfig(**{**TINY, "num_stages": 0}), real_hands())
    with torch.no_grad():
        out = model(images(1))["stages"][0]
    assert torch.allclose(out["offset"], torch.tensor([[0.1 / 0.15, 0.0, 0.0]]), atol=0.05)
    for side in SIDES:
        cam = out["camera"][side][0]
        assert abs(float(cam[0]) - H.CAMERA_S0) < 0.5
        uv = out["verts2d"][side][0]
        assert uv.abs().max() < 0.95  # the whole hand inside the crop
        j2d = out["joints2d"][side][0]
        assert j2d[9, 1] < j2d[0, 1] - 0.3  # fingers point up: middle MCP above the wrist
        # palm towards the camera: thumb tip on the image right for the right hand
        sign = 1.0 if side == "right" else -1.0
        assert sign * (j2d[4, 0] - j2d[20, 0]) > 0.2
    # the two hands side by side: left on the image left
    assert out["joints2d"]["left"][0, :, 0].mean() < out["joints2d"]["right"][0, :, 0].mean()


def test_gradients_reach_every_part():
    model = make(num_stages=2)
    # a zero-initialised update passes no gradient upstream; emulate a trained update
    with torch.no_grad():
        for st in model.stages:
            for p in st.update.parameters():
                p.normal_(0, 1e-3)
    out = model(images(2))
    last = out["stages"][-1]
    loss = last["offset"].square().sum() + out["seg"].square().mean() + out["dense"].mean()
    for s in SIDES:
        loss = loss + last["joints"][s].square().sum() + last["joints2d"][s].square().sum()
        loss = loss + last["verts"][s].square().sum()
    loss.backward()

    def has_grad(module) -> bool:
        return all(p.grad is not None for p in module.parameters()) and any(
            float(p.grad.abs().sum()) > 0 for p in module.parameters())

    assert has_grad(model.backbone.conv1)
    assert has_grad(model.backbone.layer4)
    for s in SIDES:
        assert has_grad(model.initial.attention[s])
    for st in model.stages:
        for s in SIDES:
            assert has_grad(st.gcn[s])
        for part in (st.transformer, st.mfp, st.fuse, st.coord, st.update):
            assert has_grad(part)


def test_zero_update_still_learns():
    model = make(num_stages=1)
    out = model(images(1))
    out["stages"][-1]["joints2d"]["right"].square().sum().backward()
    assert float(model.stages[0].update.hand["right"].weight.grad.abs().sum()) > 0


def test_mfp_bone_splat_hand_worked():
    # one bone on a 4x4 map, radius 1 cell: from (0.5, 1.0) to (2.5, 1.0) in cell units
    a = torch.tensor([[[0.5, 1.0]]])
    b = torch.tensor([[[2.5, 1.0]]])
    fa = torch.tensor([[[1.0, 0.0]]])
    fb = torch.tensor([[[0.0, 2.0]]])
    planes = splat_segments(a, b, fa, fb, 4, 4, radius=1.0)[0, 0]  # (2, 4, 4)
    expect0 = torch.zeros(4, 4)
    expect1 = torch.zeros(4, 4)
    # rows 0 and 1 (centres y = 0.5, 1.5) are 0.5 from the bone; columns 0..2 project inside
    # with t = 0, 0.5, 1; column 3 is sqrt(1 + 0.25) > 1 from the end point; rows 2, 3 are >= 1.5 away
    for row in (0, 1):
        expect0[row, :3] = torch.tensor([1.0, 0.5, 0.0])  # (1 - t) * fa[0]
        expect1[row, :3] = torch.tensor([0.0, 1.0, 2.0])  # t * fb[1]
    assert torch.allclose(planes[0], expect0)
    assert torch.allclose(planes[1], expect1)
    # radius 2 (the stride-8 footprint) reaches row 2 (distance 1.5) but not row 3 (2.5)
    wide = splat_segments(a, b, fa, fb, 4, 4, radius=2.0)[0, 0, 0]
    assert torch.allclose(wide[2], torch.tensor([1.0, 0.5, 0.0, 0.0]))
    assert torch.all(wide[3] == 0)
    assert splat_radius(16) == 1.0 and splat_radius(8) == 2.0


def test_mfp_plane_layout_and_modes():
    c, h = 3, 4
    feats = {s: torch.randn(1, NUM_JOINTS, c) for s in SIDES}
    # all left joints at the centre of cell (1, 2) -> every left bone is a point; right hand off-map
    uv = {"left": torch.full((1, NUM_JOINTS, 2), 0.0), "right": torch.full((1, NUM_JOINTS, 2), 9.0)}
    uv["left"][..., 0] = 2 * 2.5 / h - 1  # x = 2.5 cells
    uv["left"][..., 1] = 2 * 1.5 / h - 1  # y = 1.5 cells
    bone = MultiPlaneProjection("bone", c, 8)
    planes = bone.project(uv, feats, h, h, radius=1.0)
    assert planes.shape == (1, 2 * len(BONES) * c, h, h)
    for k, (p, _) in enumerate(BONES):
        blk = planes[0, k * c:(k + 1) * c]
        assert torch.allclose(blk[:, 1, 2], feats["left"][0, p])  # t = 0 on a degenerate bone
        others = blk.clone()
        others[:, 1, 2] = 0
        assert torch.all(others == 0)  # only that cell
    assert torch.all(planes[0, len(BONES) * c:] == 0)
    # joint mode, bilinear footprint: joint 7 exactly on a cell centre -> only that cell
    joint = MultiPlaneProjection("joint", c, 8)
    jp = joint.project(uv, feats, h, h, radius=1.0)
    assert jp.shape == (1, 2 * NUM_JOINTS * c, h, h)
    assert torch.allclose(jp[0, 7 * c:8 * c, 1, 2], feats["left"][0, 7])
    assert torch.allclose(jp[0, 7 * c:8 * c].abs().sum(), feats["left"][0, 7].abs().sum())
    half = splat_points(torch.tensor([[[1.0, 0.5]]]), torch.ones(1, 1, 1), 2, 2, 1.0)[0, 0, 0]
    assert torch.allclose(half, torch.tensor([[0.5, 0.5], [0.0, 0.0]]))
    # single mode: mean of the covering bone values (all equal to their parent's feature here)
    single = MultiPlaneProjection("single", c, 8)
    sp = single.project(uv, feats, h, h, radius=1.0)
    assert sp.shape == (1, c, h, h)
    mean_parent = torch.stack([feats["left"][0, p] for p, _ in BONES]).mean(0)
    assert torch.allclose(sp[0, :, 1, 2], mean_parent, atol=1e-6)


@pytest.mark.parametrize("node_weights", [False, True])
def test_gcn_respects_adjacency(node_weights):
    torch.manual_seed(0)
    gcn = IntraHandGCN(16, num_layers=1, node_weights=node_weights)
    with torch.no_grad():
        for conv in gcn.convs:
            conv.edge_logits.normal_()
    adj = adjacency(self_loops=True)
    x = torch.randn(2, NUM_JOINTS, 16)
    base = gcn(x)
    for j in (0, 4, 9, 13):
        x2 = x.clone()
        x2[:, j] += torch.randn(16)
        changed = (gcn(x2) - base).abs().amax(dim=(0, 2)) > 1e-6
        assert changed.tolist() == (adj[j] > 0).tolist()
    w = gcn.convs[0].edge_weights()
    assert torch.all(w[torch.from_numpy(adj) == 0] == 0)
    assert torch.allclose(w.sum(-1), torch.ones(NUM_JOINTS))


def test_load_torchvision_state_dict():
    torch.manual_seed(0)
    src, dst = ResNetEncoder("resnet18"), ResNetEncoder("resnet18")
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
        src.bn1.running_mean.normal_()
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    names = set(sd)
    assert {"layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var",
            "bn1.num_batches_tracked"} <= names
    report = load_torchvision_state_dict(dst, sd)
    assert report.ok and report.ignored == ["fc.weight", "fc.bias"]
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    r50 = set(ResNetEncoder("resnet50").state_dict())
    assert {"layer1.0.conv3.weight", "layer1.0.bn3.bias", "layer4.2.conv2.weight"} <= r50
    # problems are reported by name
    bad = dict(sd)
    bad.pop("layer3.1.conv2.weight")
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="layer3.1.conv2.weight"):
        load_torchvision_state_dict(dst, bad)
    rep = load_torchvision_state_dict(dst, {"module." + k: v for k, v in bad.items()}, strict=False)
    assert rep.missing == ["layer3.1.conv2.weight"] and rep.unexpected == ["extra.weight"]
    assert "1 missing" in rep.summary()
    with pytest.raises(ValueError, match="mismatched"):
        load_torchvision_state_dict(ResNetEncoder("resnet50"), sd)


@pytest.mark.parametrize("kw", [dict(mfp_mode="joint"), dict(mfp_mode="single"), dict(use_gcn=False),
                                dict(use_transformer=False), dict(use_gcn=False, use_transformer=False),
                                dict(gcn_node_weights=True)])
def test_ablation_switches(kw):
    model = make(num_stages=2, **kw)
    out = model(images(1))
    check_output(out, model.config, 1, model.hand_models["left"].num_verts)
    names = [n for n, _ in model.named_parameters()]
    assert any(".gcn." in n for n in names) == model.config.use_gcn
    assert any(".transformer." in n for n in names) == model.config.use_transformer
    in_ch = {"bone": 2 * 20 * 8, "joint": 2 * 21 * 8, "single": 8}[model.config.mfp_mode]
    assert model.stages[0].mfp.enhance[0].in_channels == in_ch


def test_float64_and_eval():
    model = make(num_stages=2).to(torch.float64).eval()
    with torch.no_grad():
        out = model(images(1, dtype=torch.float64))
    assert out["seg"].dtype == torch.float64
    assert out["stages"][-1]["verts"]["left"].dtype == torch.float64
    assert out["stages"][-1]["camera"]["right"].dtype == torch.float64


def test_camera_mapping_roundtrip():
    cam = torch.tensor([[3.0, 0.1, -0.2], [12.0, 0.0, 0.5]])
    assert torch.allclose(H.decode_camera(H.encode_camera(cam)), cam)
    assert torch.allclose(H.decode_camera(torch.zeros(1, 3))[0, 0], torch.tensor(H.CAMERA_S0))
    xyz = torch.tensor([[[0.1, -0.05, 0.3]]])
    assert torch.allclose(H.project_weak_perspective(xyz, cam[:1]), torch.tensor([[[0.4, -0.35]]]))


def test_no_hard_coded_cuda():
    for path in sorted(SRC.glob("*.py")) + [Path(__file__)]:
        text = path.read_text()
        assert not re.search(r"\.cuda\(|['\"]cuda['\"]", text.replace("no_hard_coded_cuda", "")), path


def test_with_real_hand_model():
    hands = real_hands()
    torch.manual_seed(0)
    model = build_dir_net(dict(TINY, num_stages=1))  # default: built-in hand models
    assert model.hand_models["left"].num_verts == hands["left"].num_verts
    out = model(images(2))
    check_output(out, model.config, 2, hands["left"].num_verts)
    last = out["stages"][-1]
    (last["verts"]["left"].square().sum() + last["joints2d"]["right"].square().sum()).backward()
    assert model.initial.regress["left"].weight.grad.abs().sum() > 0
    assert model.initial.regress["right"].weight.grad.abs().sum() > 0
