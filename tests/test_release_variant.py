"""The release variant of DIR (``model.variant: release``) and ``interhand import-release``.

The release's checkpoint is not available here, so the tests use the key manifest kept in
``dir_net/release_manifest.json`` (every key and shape of the release's ``net`` state dict,
listed from the release's own network: see the manifest's ``derivation``) and synthetic
MANO-format hand models (``release_fixtures.py``).
"""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interhand_perception.cli import main
from interhand_perception.dir_net import DIRConfig, build_dir_net
from interhand_perception.dir_net.mfp import cell_centres
from interhand_perception.dir_net.release_blocks import robust_rot6d_to_matrix
from interhand_perception.dir_net.release_gcn import SemanticGraphConv
from interhand_perception.dir_net.release_import import (MANO_BUFFERS, convert_state_dict, load_manifest, map_key,
                                                         read_release_state_dict)
from interhand_perception.dir_net.release_mfp import bone_distance_weights
from interhand_perception.dir_net.release_model import LEFT_MIDDLE_TIP, AbsoluteParamUpdate
from interhand_perception.dir_net.release_transformer import BlockSkippingTransformer
from interhand_perception.evaluation.evaluate import evaluate_model, format_report
from interhand_perception.evaluation.release_protocol import regress_joints, release_protocol_summary
from interhand_perception.hand_model.joints import SIDES
from interhand_perception.network.reconstructor import HandReconstructor
from interhand_perception.tools.import_release import import_release_checkpoint
from release_fixtures import hand_model_data, synthetic_hand_models, synthetic_mano_arrays, write_synthetic_mano_dir


# ----------------------------------------------------------------------------- full-size network
@pytest.fixture(scope="module")
def release_net():
    torch.manual_seed(0)
    return build_dir_net(DIRConfig(variant="release"), synthetic_hand_models(0)).eval()


@pytest.fixture(scope="module")
def shapes(release_net):
    return {k: tuple(v.shape) for k, v in release_net.state_dict().items()}


def random_release_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every key and shape of the manifest, random values."""
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(shape, generator=g) if dtype == "float32" else torch.randint(0, 9, shape, generator=g))
            for k, (shape, dtype) in load_manifest().items()}


def test_manifest_state_dict_loads_strictly(release_net, shapes):
    release = random_release_state_dict()
    state, report = convert_state_dict(release, shapes)
    assert report.ok, report.problems()
    assert len(report.mapped) == len(shapes) == 898
    assert len(report.mano) == 60 and sorted(report.grids.values()) == [16, 32]
    assert sorted(report.dropped) == ["backbone.fc.bias", "backbone.fc.weight", "seg_loss.weight"]
    accounted = set(report.mapped) | set(report.mano) | set(report.grids) | set(report.dropped)
    assert accounted == set(release)
    original = {k: v.clone() for k, v in release_net.state_dict().items()}
    try:
        missing, unexpected = release_net.load_state_dict(state, strict=True)
        assert not missing and not unexpected
        key = "decoder.projecter_3.gcn_right.gconv_layers.2.gconv.e_1"
        assert torch.equal(release_net.state_dict()[map_key(key)], release[key])
    finally:  # the module's other tests want the network's own (finite) weights
        release_net.load_state_dict(original)


def test_converter_lists_unknown_missing_and_mismatched_keys(shapes):
    release = random_release_state_dict()
    del release["decoder.projecter_4.interaction.head.1.weight"]
    release["decoder.projecter_4.extra.weight"] = torch.zeros(3)
    release["init_regressor.offset.bias"] = torch.zeros(4)
    _, report = convert_state_dict(release, shapes)
    assert not report.ok
    assert report.unknown == ["decoder.projecter_4.extra.weight"]
    assert report.missing == ["stages.0.joints.transformer.head.weight"]
    assert report.mismatched == ["init_regressor.offset.bias (4,) -> initial.offset.bias (3,)"]
    assert "1 missing key(s)" in report.problems()


def test_read_release_state_dict_unwraps_and_refuses_pickled_code(tmp_path):
    sd = {"module.a.weight": torch.ones(2), "module.b": torch.zeros(1)}
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([param], lr=3e-4)
    param.sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)  # what the release's train.py saves
    torch.save({"net": sd, "optimizer": opt.state_dict(), "schedule": sched.state_dict(), "last_epoch": 7},
               tmp_path / "wrapped.pth")
    torch.save({"a.weight": torch.ones(2)}, tmp_path / "bare.pth")
    assert set(read_release_state_dict(tmp_path / "wrapped.pth")) == {"a.weight", "b"}
    assert set(read_release_state_dict(tmp_path / "bare.pth")) == {"a.weight"}
    with open(tmp_path / "code.pth", "wb") as f:
        pickle.dump({"net": {"a": torch.ones(1)}, "hook": math.floor}, f, protocol=2)  # a global: refused
    with pytest.raises(ValueError, match="weights_only"):
        read_release_state_dict(tmp_path / "code.pth")
    torch.save({"net": {"a": 1}}, tmp_path / "nothing.pth")
    with pytest.raises(ValueError, match="no state dict"):
        read_release_state_dict(tmp_path / "nothing.pth")


@pytest.fixture(scope="module")
def converted(tmp_path_factory, release_net):
    """A fake release checkpoint built from ``release_net``'s weights, converted by the CLI."""
    tmp = tmp_path_factory.mktemp("release")
    mano_dir = write_synthetic_mano_dir(tmp / "mano")
    arrays = synthetic_mano_arrays(0)
    data = {s: hand_model_data(arrays[s], s) for s in SIDES}
    own = release_net.state_dict()
    release = {}
    for key, (shape, dtype) in load_manifest().items():
        name = map_key(key)
        if ".mano_layer_" in key:
            side, buf = key.split(".mano_layer_")[1].split(".")
            arr = np.asarray(MANO_BUFFERS[buf](data[side]))
            release[key] = torch.from_numpy(arr).to(torch.int64 if dtype == "int64" else torch.float32)
        elif key.endswith("img_gird"):
            size = 16 if "projecter_4" in key else 32
            release[key] = cell_centres(size, size, torch.zeros(()))
        elif name is None:
            release[key] = torch.zeros(shape)
        else:
            release[key] = own[name]
    torch.save({"net": release, "optimizer": {}, "schedule": {}, "last_epoch": 1}, tmp / "dir.pth")
    out = tmp / "dir_release.safetensors"
    assert main(["import-release", str(tmp / "dir.pth"), "--mano-dir", str(mano_dir), "--out", str(out)]) == 0
    return out, mano_dir, tmp


@pytest.fixture(scope="module")
def rec(converted):
    out, mano_dir, _ = converted
    return HandReconstructor.from_checkpoint(out, device="cpu", mano_dir=str(mano_dir))


def test_converted_checkpoint_gives_the_in_memory_outputs(rec, release_net):
    assert rec.config["model"]["variant"] == "release" and type(rec.model).__name__ == "ReleaseDIRNet"
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = release_net(x), rec.model(x)
    for st_a, st_b in zip(a["stages"], b["stages"]):
        for s in SIDES:
            torch.testing.assert_close(st_b["verts"][s], st_a["verts"][s], rtol=0, atol=1e-7)
            torch.testing.assert_close(st_b["params"][s], st_a["params"][s], rtol=0, atol=1e-6)
    torch.testing.assert_close(b["seg"], a["seg"], rtol=0, atol=1e-6)
    torch.testing.assert_close(b["dense"], a["dense"], rtol=0, atol=1e-6)
    left = a["stages"][-1]
    j, v = LEFT_MIDDLE_TIP  # the release reads the left middle tip at MANO vertex 445
    torch.testing.assert_close(left["joints"]["left"][:, j], left["verts"]["left"][:, v])


def test_reconstructor_parameters_reproduce_the_release_meshes(rec):
    """HandResult's axis-angle global_orient (from the robust 6D) + pose + betas give the mesh."""
    image = np.random.default_rng(0).integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    res = rec(image)
    for s in SIDES:
        h, hm = res.hand(s), rec.hand_models[s]
        go, pose, betas = (torch.from_numpy(a)[None] for a in (h.global_orient, h.hand_pose, h.betas))
        mesh = hm(go, pose - hm.hands_mean, betas, pose_type="axis_angle").root_relative()
        np.testing.assert_allclose(mesh.vertices[0].numpy(), h.vertices, atol=1e-5)


def test_the_node_pipeline_runs_the_converted_checkpoint(converted):
    """What hands_node builds from its parameters (``method: dir``, the converted file, the MANO
    folder), on a 640 x 480 frame with a fixed crop: finite hands, the release variant inside."""
    from interhand_perception.pipeline.config import validate
    from interhand_perception.pipeline.pipeline import Pipeline
    from interhand_perception.pipeline.placement import assumed_intrinsics

    out, mano_dir, _ = converted
    p = validate({"method": "dir", "checkpoint": str(out), "mano_dir": str(mano_dir), "crop_mode": "center",
                  "backend": "pytorch", "device": "cpu"})
    pipe = Pipeline.from_params(p)
    model = pipe.method.reconstructor.model
    assert type(model).__name__ == "ReleaseDIRNet"
    # random weights give any sign to the raw weak-perspective scale (the node refuses a negative
    # one as non-finite output): make the last stage's scale 5 so that the hands can be placed
    scale = model.config.param_slices["camera"].start
    with torch.no_grad():
        for update in (m for m in model.modules() if isinstance(m, AbsoluteParamUpdate)):
            for lin in update.hand.values():
                lin.weight[scale].zero_()
                lin.bias[scale] = 5.0
    frame = np.random.default_rng(2).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    res = pipe(frame, assumed_intrinsics(640, 480), 0.0)
    assert np.isfinite(res.frame.placed.joints).all() and np.isfinite(res.frame.placed.vertices).all()
    assert res.frame.placed.vertices.shape == (2, 778, 3)


def test_import_refuses_mano_files_that_differ(converted, tmp_path):
    _, _, tmp = converted
    other = write_synthetic_mano_dir(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match="disagrees with the MANO files"):
        import_release_checkpoint(tmp / "dir.pth", other, tmp_path / "x.safetensors")
    rc = main(["import-release", str(tmp / "dir.pth"), "--mano-dir", str(other), "--out", str(tmp_path / "y.st")])
    assert rc == 2 and not (tmp_path / "y.st").exists()


def test_release_config_fixes_its_structure():
    assert DIRConfig().variant == "project"
    with pytest.raises(ValueError, match="variant 'release' needs num_stages=2"):
        DIRConfig(variant="release", num_stages=1)
    with pytest.raises(ValueError, match="variant must be one of"):
        DIRConfig(variant="authors")


# ----------------------------------------------------------------------------- distinctive pieces
def test_robust_6d_is_the_symmetric_orthonormalisation():
    # a along x, b at 45 degrees in the xy plane: the bisector is at 22.5 degrees and the two
    # columns sit 45 degrees either side of it (-22.5 and 67.5 degrees); Gram-Schmidt would
    # keep a (0 degrees) and give 90 degrees.
    x = torch.tensor([[2.0, 0.0, 0.0, 3.0, 3.0, 0.0]], dtype=torch.float64)
    r = robust_rot6d_to_matrix(x)[0]
    c, s = math.cos(math.radians(22.5)), math.sin(math.radians(22.5))
    expected = torch.tensor([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # columns
    torch.testing.assert_close(r, expected)
    # general inputs: orthonormal, det +1, bisector preserved, exact on orthonormal input
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g, dtype=torch.float64)
    r = robust_rot6d_to_matrix(x)
    torch.testing.assert_close(r.transpose(1, 2) @ r, torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(64, dtype=torch.float64))
    a, b = F.normalize(x[:, :3], dim=1), F.normalize(x[:, 3:], dim=1)
    torch.testing.assert_close(F.normalize(r[..., 0] + r[..., 1], dim=1), F.normalize(a + b, dim=1))
    q, _ = torch.linalg.qr(torch.randn(8, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.linalg.det(q).sign()[:, None, None]
    torch.testing.assert_close(robust_rot6d_to_matrix(torch.cat([q[..., 0], q[..., 1]], 1)), q)


def test_semantic_graph_conv_has_two_softmaxes():
    adj = torch.tensor([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]])  # chain 0 - 1 - 2
    conv = SemanticGraphConv(adj, 2, 2)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(2, 3, 2, 2, generator=g))
        conv.self_logits.copy_(torch.tensor([[5.0, -3.0, 0.7]]))  # irrelevant: one entry per row
        conv.nbr_logits.copy_(torch.tensor([[0.3, 1.0, 2.0, -1.0]]))  # edges (0,1) (1,0) (1,2) (2,1)
        conv.bias.copy_(torch.tensor([0.1, -0.2]))
    x = torch.randn(1, 3, 2, generator=g)
    w0, w1 = conv.weight[0].detach(), conv.weight[1].detach()
    h0 = [x[0, i] @ w0[i] for i in range(3)]  # self transforms, weight exactly 1
    h1 = [x[0, j] @ w1[j] for j in range(3)]
    e1, e2 = math.exp(1.0), math.exp(2.0)
    expected = torch.stack([
        h0[0] + h1[1],  # joint 0: its only neighbour, weight 1
        h0[1] + (e1 * h1[0] + e2 * h1[2]) / (e1 + e2),  # joint 1: softmax(1.0, 2.0) over 0 and 2
        h0[2] + h1[1],
    ]) + conv.bias.detach()
    torch.testing.assert_close(conv(x)[0].detach(), expected)


def test_absolute_update_predicts_outright_from_detached_inputs():
    upd = AbsoluteParamUpdate(feat_channels=2, num_params=3, num_joints=2)
    g = torch.Generator().manual_seed(0)
    feats = {s: torch.randn(1, 2, 2, generator=g) for s in SIDES}
    params = {s: torch.randn(1, 3, generator=g, requires_grad=True) for s in SIDES}
    offset = torch.randn(1, 3, generator=g, requires_grad=True)
    new, new_off = upd(feats, params, offset)
    for s in SIDES:
        lin = upd.hand[s]
        expected = torch.cat([feats[s].flatten(1), params[s]], 1) @ lin.weight.T + lin.bias  # no "+ params"
        torch.testing.assert_close(new[s], expected)
    cat = torch.cat([feats["left"].flatten(1), feats["right"].flatten(1), offset], 1)
    torch.testing.assert_close(new_off, cat @ upd.offset.weight.T + upd.offset.bias)
    (sum(v.sum() for v in new.values()) + new_off.sum()).backward()
    assert offset.grad is None and all(p.grad is None for p in params.values())


def test_transformer_runs_blocks_one_to_three_with_a_shared_norm():
    torch.manual_seed(0)
    tf = BlockSkippingTransformer(num_tokens=5, dim=4, out_dim=3, depth=3, heads=2, mlp_ratio=2.0).eval()
    with torch.no_grad():
        for p in tf.parameters():
            p.normal_(0, 0.5)
    tokens = torch.randn(2, 5, 4)

    def ln(x, norm):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias

    def block(x, blk):
        y = ln(x, blk.norm1)
        q, k, v = (y @ blk.attn.qkv.weight.T + blk.attn.qkv.bias).chunk(3, dim=-1)
        heads = []
        for h in range(2):
            qh, kh, vh = (t[..., 2 * h:2 * h + 2] for t in (q, k, v))
            heads.append(torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(2), dim=-1) @ vh)
        x = x + torch.cat(heads, -1) @ blk.attn.proj.weight.T + blk.attn.proj.bias
        hid = F.gelu(ln(x, blk.norm2) @ blk.mlp[0].weight.T + blk.mlp[0].bias)
        return x + hid @ blk.mlp[2].weight.T + blk.mlp[2].bias

    with torch.no_grad():
        x = tokens + tf.pos_embed
        for k in (1, 2, 3):
            x = ln(block(x, tf.blocks[k]), tf.block_norm)
        expected = ln(x, tf.head_norm) @ tf.head.weight.T + tf.head.bias
        got = tf(tokens)
        torch.testing.assert_close(got, expected)
        assert tf.block_norm.eps == tf.blocks[1].norm1.eps == 1e-6 and tf.head_norm.eps == 1e-5
        tf.blocks[0].attn.qkv.weight.add_(1.0)  # built, never run
        torch.testing.assert_close(tf(tokens), got)


def test_bone_planes_blend_by_endpoint_distance():
    a = torch.tensor([[[0.5, 0.5]]])  # parent at the centre of cell (0, 0)
    b = torch.tensor([[[2.5, 0.5]]])  # child two cells to the right
    wa, wb = bone_distance_weights(a, b, 1, 4, radius=1.0)
    # cell centres x = 0.5, 1.5, 2.5, 3.5; distances to parent 0, 1, 2, (3); to child 2, 1, 0, (1)
    # weights 1 - d_p / (d_p + d_c); the last cell is 1 cell past the child: not < radius
    torch.testing.assert_close(wa[0, 0], torch.tensor([1.0, 0.5, 0.0, 0.0]), atol=2e-6, rtol=0)
    torch.testing.assert_close(wb[0, 0], torch.tensor([0.0, 0.5, 1.0, 0.0]), atol=2e-6, rtol=0)


# ----------------------------------------------------------------------------- evaluation protocol
def test_release_protocol_regresses_joints_and_uses_the_network_offset():
    rng = np.random.default_rng(0)
    reg = rng.random((16, 778))
    reg /= reg.sum(1, keepdims=True)
    gt = rng.normal(scale=0.05, size=(3, 2, 778, 3))
    gt[:, 1] += np.array([0.1, 0.02, 0.0])
    joints = regress_joints(gt[:, 0], reg)
    np.testing.assert_allclose(joints[:, 0], np.einsum("v,nvc->nc", reg[0], gt[:, 0]))
    np.testing.assert_allclose(joints[:, 12], gt[:, 0, 444])  # middle tip: 444 on both hands here
    np.testing.assert_allclose(joints[:, 4], gt[:, 0, 745])  # thumb tip
    regs = {"left": reg, "right": reg}
    gj = np.stack([regress_joints(gt[:, i], reg) for i in range(2)], axis=1)
    true_offset = gj[:, 1, 0] - gj[:, 0, 0]
    # the prediction in the evaluation frame: left wrist at the origin, right placed by the offset,
    # each hand 10% too large about its wrist (undone by the scaling), offset 1 cm off along x
    pred = np.stack([gt[:, i] - gj[:, i, :1] for i in range(2)], axis=1) * 1.1
    offset = true_offset + np.array([0.01, 0.0, 0.0])
    pred[:, 1] += offset[:, None]
    valid = np.ones((3, 2), dtype=bool)
    res = release_protocol_summary(pred, offset, gt, valid, regs)
    assert res["release_mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert res["release_mpvpe"] == pytest.approx(0.0, abs=1e-9)
    assert res["release_mpjpe_ms"] == pytest.approx(0.0, abs=1e-9)
    assert res["release_mpjpe_m"] > 1.0  # unscaled: the 10% shows
    assert res["release_mrrpe"] == pytest.approx(10.0)


def test_eval_reports_the_release_protocol_for_the_release_variant(release_net):
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, size=(2, 256, 256, 3), dtype=np.uint8))
    from interhand_perception.dir_net.inputs import normalise_batch
    with torch.no_grad():
        last = release_net(normalise_batch(x.numpy()))["stages"][-1]
    samples = []
    for b in range(2):
        off = last["offset"][b].numpy() * 0.15
        verts = np.stack([last["verts"]["left"][b].numpy(), last["verts"]["right"][b].numpy() + off])
        joints = np.stack([last["joints"]["left"][b].numpy(), last["joints"]["right"][b].numpy() + off])
        samples.append({"image": x[b].numpy(), "verts3d": verts, "joints3d": joints,
                        "verts2d": np.zeros((2, 778, 2)), "joints2d": np.zeros((2, 21, 2)),
                        "hand_valid": np.ones(2, dtype=bool)})
    res = evaluate_model(release_net, samples, batch_size=2, with_iv=False, progress=False)
    s = res["summary"]
    assert s["release_mpjpe"] == pytest.approx(0.0, abs=1e-3) and s["mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert "release protocol" in format_report(res)
