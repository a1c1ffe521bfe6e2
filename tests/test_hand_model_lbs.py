"""Tests of hand_model.lbs against independent numpy references written here."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interhand_perception.hand_model import lbs as L
from interhand_perception.hand_model.joints import JOINT_NAMES, SKIN_JOINT_NAMES, SKIN_PARENTS


# ----------------------------------------------------------------------------- numpy references
def np_rodrigues(r: np.ndarray) -> np.ndarray:
    """Textbook Rodrigues formula with a unit axis."""
    angle = float(np.linalg.norm(r))
    if angle == 0.0:
        return np.eye(3)
    kx, ky, kz = r / angle
    k = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def np_lbs_single(betas, pose_aa, v_template, shapedirs, posedirs, J_regressor, parents, weights):
    """One hand, explicit loops: shape, pose correctives, forward kinematics, blend skinning.

    Forward kinematics keeps global rotations and positions separately and skins every vertex
    by summing, over joints, the weighted rigid motion of the vertex relative to that joint.
    """
    num_verts, num_joints = v_template.shape[0], len(parents)
    v_shaped = v_template.copy()
    for s, beta in enumerate(betas):
        v_shaped += beta * shapedirs[:, :, s]
    rest = J_regressor @ v_shaped
    local = [np_rodrigues(pose_aa[j]) for j in range(num_joints)]
    feature = []
    for j in range(1, num_joints):
        feature.extend((local[j] - np.eye(3)).ravel().tolist())
    v_posed = v_shaped + np.tensordot(posedirs, np.array(feature), axes=([2], [0]))
    glob_rot, glob_pos = [None] * num_joints, [None] * num_joints
    for j in range(num_joints):
        p = parents[j]
        if p < 0:
            glob_rot[j], glob_pos[j] = local[j], rest[j].copy()
        else:
            glob_rot[j] = glob_rot[p] @ local[j]
            glob_pos[j] = glob_pos[p] + glob_rot[p] @ (rest[j] - rest[p])
    out = np.zeros((num_verts, 3))
    for v in range(num_verts):
        for j in range(num_joints):
            out[v] += weights[v, j] * (glob_rot[j] @ (v_posed[v] - rest[j]) + glob_pos[j])
    return out, np.stack(glob_pos)


def random_model(rng: np.random.Generator, num_verts: int, num_betas: int = 10):
    v_template = rng.normal(scale=0.05, size=(num_verts, 3))
    shapedirs = rng.normal(scale=0.01, size=(num_verts, 3, num_betas))
    posedirs = rng.normal(scale=0.01, size=(num_verts, 3, 135))
    J_regressor = rng.random((16, num_verts)) ** 4
    J_regressor /= J_regressor.sum(1, keepdims=True)
    weights = rng.dirichlet(np.full(16, 0.3), size=num_verts)
    return v_template, shapedirs, posedirs, J_regressor, weights


def random_rotations(rng: np.random.Generator, n: int, max_angle: float = math.pi) -> np.ndarray:
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * rng.uniform(0.0, max_angle, size=(n, 1))


# ----------------------------------------------------------------------------- rotations
def test_rodrigues_matches_numpy_formula():
    rng = np.random.default_rng(0)
    vecs = np.concatenate([random_rotations(rng, 64), rng.normal(scale=1e-4, size=(8, 3)),
                           np.zeros((1, 3))])
    got = L.batch_rodrigues(torch.from_numpy(vecs)).numpy()
    want = np.stack([np_rodrigues(v) for v in vecs])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(got @ got.transpose(0, 2, 1), np.broadcast_to(np.eye(3), got.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(got), 1.0, atol=1e-12)


def test_rodrigues_float32_and_leading_dims():
    rng = np.random.default_rng(1)
    vecs = random_rotations(rng, 12).reshape(3, 4, 3)
    got = L.batch_rodrigues(torch.from_numpy(vecs).float())
    assert got.shape == (3, 4, 3, 3) and got.dtype == torch.float32
    want = np.stack([np_rodrigues(v) for v in vecs.reshape(-1, 3)]).reshape(3, 4, 3, 3)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-6)


def test_rodrigues_gradient_finite_at_zero():
    r = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda x: L.batch_rodrigues(x), r)
    assert torch.isfinite(jac).all()
    # dR/dr_i at the identity is the generator skew(e_i).
    for i in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[i] = 1.0
        torch.testing.assert_close(jac[0, :, :, 0, i], L.skew(e))
    small = (torch.randn(4, 3, dtype=torch.float64) * 1e-4).requires_grad_()
    assert torch.autograd.gradcheck(L.batch_rodrigues, (small,))


def test_rot6d_round_trip_and_gram_schmidt():
    rng = np.random.default_rng(2)
    rots = L.batch_rodrigues(torch.from_numpy(random_rotations(rng, 32)))
    six = L.matrix_to_rot6d(rots)
    assert six.shape == (32, 6)
    torch.testing.assert_close(six[:, :3], rots[:, :, 0])  # columns, not rows
    torch.testing.assert_close(L.rot6d_to_matrix(six), rots)
    raw = torch.randn(5, 7, 6, dtype=torch.float64)
    mats = L.rot6d_to_matrix(raw)
    eye = torch.eye(3, dtype=torch.float64).expand(5, 7, 3, 3)
    torch.testing.assert_close(mats.transpose(-1, -2) @ mats, eye)
    torch.testing.assert_close(torch.linalg.det(mats), torch.ones(5, 7, dtype=torch.float64))
    torch.testing.assert_close(mats[..., :, 0], torch.nn.functional.normalize(raw[..., :3], dim=-1))


def test_matrix_to_axis_angle_round_trip():
    rng = np.random.default_rng(3)
    aa = random_rotations(rng, 200, max_angle=math.pi - 1e-3)
    aa = np.concatenate([aa, np.zeros((1, 3)), [[1e-9, -2e-9, 0.5e-9]], [[0.0, 0.0, 1e-5]]])
    aa_t = torch.from_numpy(aa)
    got = L.matrix_to_axis_angle(L.batch_rodrigues(aa_t))
    torch.testing.assert_close(got, aa_t, atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-5)])
def test_matrix_to_axis_angle_near_pi(dtype, tol):
    rng = np.random.default_rng(4)
    axes = rng.normal(size=(60, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    axes[:3] = np.eye(3)  # axis-aligned half turns: diagonal-only matrices
    angles = np.concatenate([np.full(20, math.pi), np.full(20, math.pi - 1e-6),
                             np.full(20, math.pi - 1e-3)])
    rots = torch.from_numpy(np.stack([np_rodrigues(a * t) for a, t in zip(axes, angles)])).to(dtype)
    got = L.matrix_to_axis_angle(rots)
    torch.testing.assert_close(L.batch_rodrigues(got), rots, atol=tol, rtol=0)
    np.testing.assert_allclose(got.norm(dim=-1).double().numpy(), angles, atol=10 * tol)
    # Below pi the axis is unique: compare directly.
    below = torch.from_numpy(axes[40:] * angles[40:, None]).to(dtype)
    torch.testing.assert_close(got[40:], below, atol=10 * tol, rtol=0)


# ----------------------------------------------------------------------------- skinning pieces
def test_pca_blend_shapes_vertices2joints_shapes():
    rng = np.random.default_rng(5)
    comps, mean = torch.from_numpy(rng.normal(size=(45, 45))), torch.from_numpy(rng.normal(size=45))
    coeffs = torch.from_numpy(rng.normal(size=(3, 12)))
    torch.testing.assert_close(L.pca_to_axis_angle(coeffs, comps, mean), mean + coeffs @ comps[:12])
    torch.testing.assert_close(L.pca_to_axis_angle(coeffs, comps), coeffs @ comps[:12])
    sd = torch.from_numpy(rng.normal(size=(20, 3, 10)))
    betas = torch.from_numpy(rng.normal(size=(2, 10)))
    off = L.blend_shapes(betas, sd)
    assert off.shape == (2, 20, 3)
    torch.testing.assert_close(off[1, 7, 2], (sd[7, 2] * betas[1]).sum())
    reg = torch.from_numpy(rng.random((16, 20)))
    verts = torch.from_numpy(rng.normal(size=(2, 20, 3)))
    torch.testing.assert_close(L.vertices2joints(reg, verts)[1], reg @ verts[1])


def test_rigid_transform_maps_rest_joints_to_posed_joints():
    rng = np.random.default_rng(6)
    rest = torch.from_numpy(rng.normal(size=(2, 16, 3)))
    rots = L.batch_rodrigues(torch.from_numpy(random_rotations(rng, 32)).reshape(2, 16, 3))
    posed, rel = L.batch_rigid_transform(rots, rest, SKIN_PARENTS)
    assert posed.shape == (2, 16, 3) and rel.shape == (2, 16, 4, 4)
    homog = torch.cat([rest, torch.ones(2, 16, 1, dtype=rest.dtype)], -1)
    torch.testing.assert_close((rel @ homog[..., None])[..., :3, 0], posed)
    torch.testing.assert_close(posed[:, 0], rest[:, 0])  # the root rotates about itself
    # Bone lengths are preserved.
    par = list(SKIN_PARENTS)
    torch.testing.assert_close((posed[:, 1:] - posed[:, par[1:]]).norm(dim=-1),
                               (rest[:, 1:] - rest[:, par[1:]]).norm(dim=-1))


@pytest.mark.parametrize("num_betas", [10, 4])
def test_lbs_matches_numpy_reference(num_betas):
    rng = np.random.default_rng(7)
    model = random_model(rng, num_verts=50)
    batch = 3
    betas = rng.normal(size=(batch, num_betas))
    pose = random_rotations(rng, batch * 16, max_angle=2.0).reshape(batch, 16, 3)
    pose[0, 5] = 0.0  # a joint exactly at the identity
    t = [torch.from_numpy(a) for a in model]
    rots = L.batch_rodrigues(torch.from_numpy(pose))
    verts, joints16 = L.lbs(torch.from_numpy(betas), rots, t[0], t[1], t[2], t[3],
                            torch.tensor(SKIN_PARENTS), t[4])
    verts_aa, _ = L.lbs(torch.from_numpy(betas), torch.from_numpy(pose.reshape(batch, 48)), *t[:4],
                        SKIN_PARENTS, t[4], pose2rot=True)
    assert verts.shape == (batch, 50, 3) and joints16.shape == (batch, 16, 3)
    torch.testing.assert_close(verts_aa, verts)
    v_t, sd, pd, jr, w = model
    for b in range(batch):
        want_v, want_j = np_lbs_single(betas[b], pose[b], v_t, sd[:, :, :num_betas], pd, jr,
                                       SKIN_PARENTS, w)
        np.testing.assert_allclose(verts[b].numpy(), want_v, atol=1e-5, rtol=0)
        np.testing.assert_allclose(joints16[b].numpy(), want_j, atol=1e-5, rtol=0)
        np.testing.assert_allclose(verts[b].numpy(), want_v, atol=1e-12)  # float64 is exact


def test_lbs_identity_pose_is_shaped_template():
    rng = np.random.default_rng(8)
    v_t, sd, pd, jr, w = (torch.from_numpy(a).float() for a in random_model(rng, num_verts=23))
    betas = torch.randn(2, 10)
    rots = torch.eye(3).expand(2, 16, 3, 3)
    verts, joints16 = L.lbs(betas, rots, v_t, sd, pd, jr, SKIN_PARENTS, w)
    assert verts.dtype == torch.float32
    shaped = v_t + L.blend_shapes(betas, sd)
    torch.testing.assert_close(verts, shaped)
    torch.testing.assert_close(joints16, L.vertices2joints(jr, shaped))


def test_lbs_gradcheck():
    rng = np.random.default_rng(9)
    v_t, sd, pd, jr, w = (torch.from_numpy(a) for a in random_model(rng, num_verts=6, num_betas=3))
    pose = torch.from_numpy(random_rotations(rng, 16, max_angle=1.5).reshape(1, 48))
    pose.requires_grad_()
    betas = torch.from_numpy(rng.normal(size=(1, 3))).requires_grad_()

    def fn(b, p):
        verts, joints16 = L.lbs(b, p, v_t, sd, pd, jr, SKIN_PARENTS, w, pose2rot=True)
        return verts, joints16

    assert torch.autograd.gradcheck(fn, (betas, pose))
    rot6d = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(L.rot6d_to_matrix, (rot6d,))
    aa = torch.from_numpy(random_rotations(rng, 4, max_angle=3.0)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: L.matrix_to_axis_angle(L.batch_rodrigues(x)), (aa,))


def test_joints21_from_order():
    joints16 = torch.arange(16 * 3, dtype=torch.float64).reshape(1, 16, 3)
    verts = 1000.0 + torch.arange(30 * 3, dtype=torch.float64).reshape(1, 30, 3)
    tips = [25, 3, 7, 11, 19]  # thumb, index, middle, ring, little
    out = L.joints21_from(joints16, verts, tips)
    assert out.shape == (1, 21, 3)
    for i, name in enumerate(JOINT_NAMES):
        if name.endswith("_tip"):
            finger = name[: -len("_tip")]
            want = verts[0, tips[("thumb", "index", "middle", "ring", "little").index(finger)]]
        else:
            want = joints16[0, SKIN_JOINT_NAMES.index(name)]
        torch.testing.assert_close(out[0, i], want)
