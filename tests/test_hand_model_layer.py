"""Tests of hand_model.layer.HandModel on a small random model (37 vertices, not MANO's 778)."""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from interhand_perception.hand_model import (JOINT_NAMES, HandModel, HandModelData, HandOutput,
                                             load_hand_model, load_hand_model_data, root_relative)
from interhand_perception.hand_model import lbs as L
from interhand_perception.hand_model.joints import SKIN_PARENTS

NUM_VERTS = 37


def make_data(side: str = "right", num_verts: int = NUM_VERTS, seed: int = 0) -> HandModelData:
    rng = np.random.default_rng(seed)
    reg = rng.random((16, num_verts)) ** 4
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0].T
    return HandModelData(
        v_template=rng.normal(scale=0.05, size=(num_verts, 3)),
        faces=rng.integers(0, num_verts, size=(50, 3)),
        shapedirs=rng.normal(scale=0.01, size=(num_verts, 3, 10)),
        posedirs=rng.normal(scale=0.01, size=(num_verts, 3, 135)),
        J_regressor=reg / reg.sum(1, keepdims=True),
        weights=rng.dirichlet(np.full(16, 0.3), size=num_verts),
        parents=np.array(SKIN_PARENTS),
        hands_components=comps,
        hands_mean=rng.normal(scale=0.2, size=45),
        tip_vertex_ids=np.array([30, 5, 12, 20, 25]) % num_verts,
        side=side,
        name="random",
    )


@pytest.fixture(scope="module")
def data() -> HandModelData:
    return make_data()


def rand_inputs(batch: int, seed: int = 1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    orient = torch.randn(batch, 3, generator=g, dtype=dtype)
    pose = 0.5 * torch.randn(batch, 45, generator=g, dtype=dtype)
    betas = torch.randn(batch, 10, generator=g, dtype=dtype)
    transl = torch.randn(batch, 3, generator=g, dtype=dtype)
    return orient, pose, betas, transl


def test_attributes_and_non_persistent_buffers(data):
    model = HandModel(data, num_pca_comps=12)
    assert model.side == "right" and model.name == "random"
    assert model.fingerprint == data.fingerprint()
    assert model.num_verts == NUM_VERTS and model.num_betas == 10 and model.num_pca_comps == 12
    assert model.joint_names == JOINT_NAMES and not model.flat_hand_mean
    assert model.faces.dtype == np.int64 and model.faces_tensor.shape == (50, 3)
    assert model.hands_components.shape == (12, 45)
    assert model.state_dict() == {}  # model arrays never reach a checkpoint
    names = dict(model.named_buffers())
    assert {"v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights", "parents",
            "hands_components", "hands_mean", "tip_vertex_ids", "faces_tensor"} <= set(names)
    assert "fingerprint=" in repr(model)
    model.double()
    assert model.v_template.dtype == torch.float64 and model.parents.dtype == torch.int64


def test_output_shapes(data):
    model = HandModel(data, dtype=torch.float64)
    orient, pose, betas, transl = rand_inputs(4)
    out = model(orient, pose[:, :10], betas, transl)
    assert isinstance(out, HandOutput)
    assert out.vertices.shape == (4, NUM_VERTS, 3)
    assert out.joints.shape == (4, 21, 3) and out.joints16.shape == (4, 16, 3)
    assert out.full_pose.shape == (4, 48) and out.wrist.shape == (4, 3)
    assert all(torch.isfinite(t).all() for t in (out.vertices, out.joints, out.full_pose))


def test_zero_pose_is_template(data):
    model = HandModel(data, flat_hand_mean=True, dtype=torch.float64)
    zero3 = torch.zeros(2, 3, dtype=torch.float64)
    out = model(zero3, torch.zeros(2, 45, dtype=torch.float64))
    v_t = torch.from_numpy(data.v_template)
    torch.testing.assert_close(out.vertices, v_t.expand(2, -1, -1))
    torch.testing.assert_close(out.joints16[0], torch.from_numpy(data.J_regressor) @ v_t)
    torch.testing.assert_close(out.joints[:, 4], v_t[30].expand(2, 3))  # thumb tip vertex
    torch.testing.assert_close(out.joints[:, 9], out.joints16[:, 4])  # middle MCP
    assert torch.count_nonzero(out.full_pose) == 0


def test_hands_mean_convention(data):
    flat = HandModel(data, flat_hand_mean=True, dtype=torch.float64)
    meaned = HandModel(data, flat_hand_mean=False, dtype=torch.float64)
    orient, pose, betas, _ = rand_inputs(2)
    mean = torch.from_numpy(data.hands_mean)
    for pose_type, hand in (("axis_angle", pose), ("pca", pose[:, :20])):
        a = meaned(orient, hand, betas, pose_type=pose_type)
        full = flat.hand_pose_to_axis_angle(hand, pose_type) + mean
        b = flat(orient, full, betas, pose_type="axis_angle")
        torch.testing.assert_close(a.vertices, b.vertices)
        torch.testing.assert_close(a.full_pose, b.full_pose)
        torch.testing.assert_close(a.full_pose[:, 3:], full)


@pytest.mark.parametrize("flat", [True, False])
def test_pca_with_all_components_equals_axis_angle(data, flat):
    model = HandModel(data, flat_hand_mean=flat, dtype=torch.float64)
    orient, coeffs, betas, transl = rand_inputs(3)
    comps = torch.from_numpy(data.hands_components)
    a = model(orient, coeffs, betas, transl, pose_type="pca")
    b = model(orient, coeffs @ comps, betas, transl, pose_type="axis_angle")
    torch.testing.assert_close(a.vertices, b.vertices)
    torch.testing.assert_close(a.joints, b.joints)
    torch.testing.assert_close(a.full_pose, b.full_pose)
    c = model(orient, (coeffs @ comps).reshape(3, 15, 3), betas, transl, pose_type="axis_angle")
    torch.testing.assert_close(c.vertices, b.vertices)


def test_fewer_pca_components(data):
    small = HandModel(data, num_pca_comps=12, dtype=torch.float64)
    full = HandModel(data, dtype=torch.float64)
    orient, coeffs, betas, _ = rand_inputs(2)
    padded = torch.cat([coeffs[:, :12], torch.zeros(2, 33, dtype=torch.float64)], 1)
    torch.testing.assert_close(small(orient, coeffs[:, :12], betas).vertices,
                               full(orient, padded, betas).vertices)
    torch.testing.assert_close(small(orient, coeffs[:, :5], betas).vertices,
                               full(orient, coeffs[:, :5], betas).vertices)
    with pytest.raises(ValueError, match="K <= 12"):
        small(orient, coeffs[:, :13], betas)
    with pytest.raises(ValueError, match="num_pca_comps"):
        HandModel(data, num_pca_comps=46)


def test_global_orient_forms_agree(data):
    model = HandModel(data, dtype=torch.float64)
    orient, pose, betas, transl = rand_inputs(3)
    orient[0] = 0.0
    orient[1] *= 3.0 / orient[1].norm()  # a large angle, still below pi
    mats = L.batch_rodrigues(orient)
    outs = [model(orient, pose, betas, transl, rot_type="axis_angle"),
            model(L.matrix_to_rot6d(mats), pose, betas, transl, rot_type="6d"),
            model(mats, pose, betas, transl, rot_type="matrix")]
    for out in outs[1:]:
        torch.testing.assert_close(out.vertices, outs[0].vertices)
        torch.testing.assert_close(out.joints, outs[0].joints)
        torch.testing.assert_close(out.full_pose, outs[0].full_pose)
    with pytest.raises(ValueError, match="global_orient"):
        model(orient, pose, rot_type="6d")
    with pytest.raises(ValueError, match="rot_type"):
        model(orient, pose, rot_type="quat")
    with pytest.raises(ValueError, match="pose_type"):
        model(orient, pose, pose_type="euler")


def test_rotation_about_wrist_and_translation(data):
    model = HandModel(data, dtype=torch.float64)
    orient, pose, betas, transl = rand_inputs(2)
    rest = model(torch.zeros_like(orient), pose, betas)
    turned = model(orient, pose, betas)
    moved = model(orient, pose, betas, transl)
    # The global rotation keeps the wrist fixed and rotates everything about it.
    torch.testing.assert_close(turned.wrist, rest.wrist)
    rot = L.batch_rodrigues(orient)
    want = (rest.vertices - rest.wrist[:, None]) @ rot.transpose(1, 2) + rest.wrist[:, None]
    torch.testing.assert_close(turned.vertices, want)
    torch.testing.assert_close(moved.vertices, turned.vertices + transl[:, None])
    torch.testing.assert_close(moved.joints, turned.joints + transl[:, None])
    torch.testing.assert_close(moved.joints16, turned.joints16 + transl[:, None])
    rel = root_relative(moved)
    torch.testing.assert_close(rel.joints[:, 0], torch.zeros(2, 3, dtype=torch.float64))
    torch.testing.assert_close(rel.vertices, moved.root_relative().vertices)
    torch.testing.assert_close(rel.vertices, turned.vertices - turned.wrist[:, None])


def test_batch_independence_and_default_betas(data):
    model = HandModel(data, dtype=torch.float64)
    orient, pose, betas, transl = rand_inputs(3)
    both = model(orient, pose, betas, transl, pose_type="axis_angle")
    for i in range(3):
        one = model(orient[i:i + 1], pose[i:i + 1], betas[i:i + 1], transl[i:i + 1],
                    pose_type="axis_angle")
        torch.testing.assert_close(one.vertices[0], both.vertices[i])
    zero = model(orient, pose, torch.zeros(3, 10, dtype=torch.float64))
    torch.testing.assert_close(model(orient, pose).vertices, zero.vertices)
    short = model(orient, pose, betas[:, :4])
    padded = torch.cat([betas[:, :4], torch.zeros(3, 6, dtype=torch.float64)], 1)
    torch.testing.assert_close(short.vertices, model(orient, pose, padded).vertices)


def test_float32_matches_float64_and_gradients(data):
    m32, m64 = HandModel(data), HandModel(data, dtype=torch.float64)
    orient, pose, betas, transl = rand_inputs(2)
    out64 = m64(orient, pose, betas, transl)
    args32 = [t.float().requires_grad_() for t in (orient, pose, betas, transl)]
    out32 = m32(*args32)
    assert out32.vertices.dtype == torch.float32
    np.testing.assert_allclose(out32.vertices.detach().numpy(), out64.vertices.numpy(), atol=1e-5)
    (out32.vertices.square().sum() + out32.joints.sum()).backward()
    for t in args32:
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_no_hardcoded_mano_vertex_count():
    src = Path(L.__file__).parent
    for name in ("lbs.py", "layer.py"):
        assert "778" not in (src / name).read_text(), name
    model = HandModel(make_data(num_verts=11, seed=3))
    with pytest.raises(ValueError, match="tip_vertex_ids"):
        HandModel(replace(make_data(num_verts=11), tip_vertex_ids=np.array([1, 2, 3, 4, 11])))
    assert model(torch.zeros(1, 3), torch.zeros(1, 6)).vertices.shape == (1, 11, 3)


def test_load_hand_model_rejects_bad_side():
    with pytest.raises(ValueError, match="side"):
        load_hand_model("both")
    with pytest.raises(ValueError, match="side"):
        load_hand_model_data("Right")


_HAS_BUILTIN = importlib.util.find_spec("interhand_perception.hand_model.builtin") is not None


@pytest.mark.skipif(not _HAS_BUILTIN, reason="hand_model/builtin.py does not exist yet")
@pytest.mark.parametrize("side", ["left", "right"])
def test_builtin_model_loads(side):
    model = load_hand_model(side)
    assert model.side == side and model.name == "builtin"
    orient, pose, betas, _ = rand_inputs(2, dtype=torch.float32)
    out = model(orient, pose[:, :10], betas)
    assert out.vertices.shape == (2, model.num_verts, 3) and out.joints.shape == (2, 21, 3)
    assert torch.isfinite(out.vertices).all() and torch.isfinite(out.joints).all()
