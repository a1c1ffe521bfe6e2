"""Loss terms on cases whose values are worked out by hand."""
import math

import torch

from interhand_perception.training.losses import (
    LossWeights, edge_length_loss, face_normals, masked_huber, normal_consistency_loss, pixel_losses,
    unique_edges,
)


def test_masked_huber_hand_worked():
    # delta 0.01: |d| = 0.5 >= delta -> delta * (|d| - delta/2) = 0.01 * 0.495 = 0.00495
    # |d| = 0.004 < delta -> 0.5 * d^2 = 8e-6. Sample 0 holds [0.5, 0.004] -> mean 0.002479;
    # sample 1 is invalid and must not count.
    pred = torch.tensor([[0.5, 0.004], [9.0, 9.0]], dtype=torch.float64)
    target = torch.zeros_like(pred)
    valid = torch.tensor([True, False])
    got = masked_huber(pred, target, valid, 0.01)
    assert math.isclose(float(got), (0.00495 + 8e-6) / 2, rel_tol=1e-12)


def test_masked_huber_no_valid_is_zero():
    pred = torch.ones(2, 3)
    assert float(masked_huber(pred, pred * 0, torch.tensor([False, False]), 0.01)) == 0.0


def _tetra():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return v, f


def test_unique_edges_of_tetrahedron():
    _, f = _tetra()
    e = unique_edges(f)
    assert e.shape == (6, 2)
    assert torch.all(e[:, 0] < e[:, 1])


def test_edge_length_loss_scaled_mesh():
    # scaling the tetrahedron by 2 doubles each edge: 3 edges of length 1 -> 2 (diff 1),
    # 3 edges of length sqrt(2) -> 2 sqrt(2) (diff sqrt(2)); mean = (3 + 3 sqrt 2) / 6
    v, f = _tetra()
    e = unique_edges(f)
    got = edge_length_loss((2 * v)[None], v[None], e, torch.tensor([True]))
    assert math.isclose(float(got), (3 + 3 * math.sqrt(2)) / 6, rel_tol=1e-12)


def test_normal_consistency():
    v, f = _tetra()
    n = face_normals(v[None], f)[0]
    # face (0,2,1) lies in z=0 and winds clockwise seen from +z -> normal -z
    assert torch.allclose(n[0], torch.tensor([0.0, 0, -1], dtype=torch.float64))
    assert float(normal_consistency_loss(v[None], v[None], f, torch.tensor([True]))) < 1e-12
    # a translation changes no normal
    assert float(normal_consistency_loss((v + 5.0)[None], v[None], f, torch.tensor([True]))) < 1e-12
    # mirroring x (x -> -x) turns face 0 = (0,0,0),(0,1,0),(1,0,0) into (0,0,0),(0,1,0),(-1,0,0):
    # cross((0,1,0), (-1,0,0)) = (0,0,1), so its normal flips from -z to +z: 1 - cos(pi) = 2
    mirrored = v * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    one = f[:1]
    assert abs(float(normal_consistency_loss(mirrored[None], v[None], one, torch.tensor([True]))) - 2.0) < 1e-12


def test_pixel_losses_perfect_and_weighted():
    w = LossWeights()
    seg_t = torch.zeros(1, 4, 4, dtype=torch.long)
    seg_t[0, :2, :2] = 1
    seg_t[0, 2:, 2:] = 2
    logits = torch.full((1, 3, 4, 4), -20.0)
    logits.scatter_(1, seg_t[:, None], 20.0)
    dense_t = torch.rand(1, 3, 4, 4)
    out = pixel_losses({"seg": logits, "dense": dense_t.clone()}, {"seg": seg_t, "dense": dense_t}, w)
    assert float(out["seg"]) < 1e-6 and float(out["dense"]) == 0.0
    # dense error of 0.5 on every channel of the 8 hand pixels only: MSE 0.25, weight 1
    wrong = dense_t.clone()
    wrong[:, :, :2, :2] += 0.5
    wrong[:, :, 2:, 2:] += 0.5
    wrong[:, :, :2, 2:] += 9.0  # background pixels are ignored
    out = pixel_losses({"seg": logits, "dense": wrong}, {"seg": seg_t, "dense": dense_t}, w)
    assert math.isclose(float(out["dense"]), 0.25, rel_tol=1e-5)


def test_loss_weights_reject_unknown():
    import pytest

    with pytest.raises(ValueError, match="unknown loss weights"):
        LossWeights.from_dict({"joint3d": 1.0})


def test_parameter_losses_hand_worked():
    from interhand_perception.training.losses import parameter_losses

    comps = torch.eye(45, dtype=torch.float64)
    mean = torch.zeros(45, dtype=torch.float64)
    # prediction: identity root (6D = first two columns of I), zero finger pose, betas 0
    params = torch.zeros(1, 64, dtype=torch.float64)
    params[0, 0], params[0, 4] = 1.0, 1.0
    # target: root rotated 90 deg about z, fingers at zero, betas all 0.5
    pose = torch.zeros(1, 48, dtype=torch.float64)
    pose[0, 2] = math.pi / 2
    betas = torch.full((1, 10), 0.5, dtype=torch.float64)
    to_aa = lambda coeffs, _kind: coeffs @ comps + mean  # noqa: E731  (identity PCA basis, zero mean)
    out = parameter_losses(params, pose, betas, to_aa, 45, torch.tensor([True]))
    # Rz(90) = [[0,-1,0],[1,0,0],[0,0,1]] differs from I by 1 in four entries: 4 / 9
    assert math.isclose(float(out["root_rot"]), 4 / 9, rel_tol=1e-9)
    assert float(out["finger_rot"]) < 1e-12
    assert math.isclose(float(out["betas"]), 0.5, rel_tol=1e-12)
    # an invalid hand contributes nothing
    none = parameter_losses(params, pose, betas, to_aa, 45, torch.tensor([False]))
    assert all(float(v) == 0.0 for v in none.values())


def test_camera_scale_keeps_a_gradient_far_from_the_reference():
    from interhand_perception.dir_net import decode_camera, encode_camera

    raw = torch.tensor([[-12.0, 0.1, 0.2], [0.0, 0.0, 0.0], [12.0, 0.0, 0.0]], requires_grad=True)
    cam = decode_camera(raw)
    cam[:, 0].sum().backward()
    assert torch.all(raw.grad[:, 0] > 0)  # a hard clamp would give exactly 0 for +-12
    assert torch.all(cam[:, 0] > 0) and torch.all(cam[:, 0] < 8.0 * math.exp(4.0))
    assert torch.allclose(decode_camera(encode_camera(cam.detach())), cam.detach(), atol=1e-4)


def test_weak_perspective_fit_and_camera_loss_hand_worked():
    from interhand_perception.training.losses import camera_loss, fit_weak_perspective

    # three points projected exactly with s = 5, t = (0.1, -0.2): the fit recovers them
    xyz = torch.tensor([[[0.0, 0.0, 0.3], [0.1, 0.0, 0.0], [0.0, -0.2, 0.1]]], dtype=torch.float64)
    uv = 5.0 * xyz[..., :2] + torch.tensor([0.1, -0.2], dtype=torch.float64)
    cam = fit_weak_perspective(xyz, uv)
    assert torch.allclose(cam, torch.tensor([[5.0, 0.1, -0.2]], dtype=torch.float64))
    # a prediction with s = 5e and t off by (0.3, 0): |log 5e - log 5| = 1, |0.3|, 0 -> mean 1.3 / 3
    pred = torch.tensor([[5.0 * math.e, 0.4, -0.2]], dtype=torch.float64)
    got = camera_loss(pred, xyz, uv, torch.tensor([True]))
    assert math.isclose(float(got), 1.3 / 3, rel_tol=1e-9)


def test_attention_loss_hand_worked():
    """BCE of each hand's attention (1 x 1 map here) against its pooled mask."""
    from interhand_perception.training.losses import attention_loss

    seg = torch.zeros(2, 4, 4, dtype=torch.long)
    seg[0, :2, :2] = 1  # left hand: 4 of 16 stride-8 cells -> soft target 0.25
    seg[0, :, 2:] = 2  # right hand: 8 of 16 -> 0.5; sample 1 has no hand pixels (targets 0)
    valid = torch.tensor([[True, True], [False, True]])  # sample 1's left hand does not count
    logits = {"left": torch.tensor([math.log(3.0), 50.0]).view(2, 1, 1, 1),
              "right": torch.tensor([0.0, -math.log(3.0)]).view(2, 1, 1, 1)}
    # left, sample 0: p = 0.75, y = 0.25 -> -(0.25 ln 0.75 + 0.75 ln 0.25) = 1.1116418
    left = -(0.25 * math.log(0.75) + 0.75 * math.log(0.25))
    # right: sample 0 p = 0.5 -> ln 2 for any target; sample 1 p = 0.25, y = 0 -> -ln 0.75; mean
    right = (math.log(2.0) - math.log(0.75)) / 2
    got = attention_loss(logits, seg, valid)
    assert got.dtype == torch.float32
    assert math.isclose(float(got), left + right, rel_tol=1e-6)
    assert math.isclose(left + right, 1.602057, rel_tol=1e-6)
    # bf16 logits (autocast) give the same value to bf16 accuracy, computed in fp32
    half = attention_loss({k: v.bfloat16() for k, v in logits.items()}, seg, valid)
    assert half.dtype == torch.float32 and math.isclose(float(half), left + right, rel_tol=2e-2)


def test_attention_targets_average_pool_the_masks():
    from interhand_perception.training.losses import attention_targets

    seg = torch.zeros(1, 4, 4, dtype=torch.long)
    seg[0, 0, 0] = 1  # one left pixel in the top-left 2 x 2 cell
    seg[0, 2:, 2:] = 2  # the whole bottom-right cell is right hand
    soft = attention_targets(seg, (2, 2))
    assert torch.equal(soft["left"], torch.tensor([[[[0.25, 0.0], [0.0, 0.0]]]]))
    assert torch.equal(soft["right"], torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]]))


def test_logs_stay_on_the_device_until_read_once():
    from interhand_perception.training.losses import device_constant, logs_to_floats, to_float32

    logs = {"a": torch.tensor(1.5), "b": torch.tensor(2.0, dtype=torch.float64)}
    assert logs_to_floats(logs) == {"a": 1.5, "b": 2.0}
    tree = {"x": [torch.ones(2, dtype=torch.bfloat16)], "i": torch.ones(2, dtype=torch.long)}
    out = to_float32(tree)
    assert out["x"][0].dtype == torch.float32 and out["i"].dtype == torch.long
    like = torch.zeros(1)
    assert device_constant((0.1, 0.45), like) is device_constant((0.1, 0.45), like)  # built once
