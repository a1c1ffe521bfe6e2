"""Tests of the synthetic two-hand generator, its dataset/shards, training targets and augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interhand_perception.data import dataset as D
from interhand_perception.data import synthetic as S
from interhand_perception.data.appearance import dense_vertex_colours
from interhand_perception.data.render import concat_meshes, interpolate, project, rasterize
from interhand_perception.data.scene import approach_distance

SIZE = 128
CFG = S.SyntheticConfig(img_size=SIZE)
N = 16
KEYS = {"image", "joints3d", "verts3d", "joints2d", "verts2d", "pose", "betas", "seg", "dense",
        "K", "hand_valid"}


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return S.load_models()


@pytest.fixture(scope="module")
def samples(models):
    return [S.generate_sample(i, "train", CFG, models) for i in range(N)]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _rerender(sample: dict, models):
    """Hands-only raster of the sample's own verts3d and K: (raster, face label, seg, dense)."""
    size = sample["image"].shape[0]
    v, f, label = concat_meshes([(sample["verts3d"][k], m.faces) for k, m in enumerate(models)])
    r = rasterize(v, f, sample["K"], (size, size))
    seg = np.where(r.mask, label[np.maximum(r.face_id, 0)] + 1, 0)
    colours = np.concatenate([dense_vertex_colours(m.v_template.numpy(), m.side) for m in models])
    dense = np.floor(np.clip(interpolate(colours, f, r) * 255 + 0.5, 0, 255))
    return r, label, seg, dense


def _layer_verts(models, pose: np.ndarray, betas: np.ndarray, wrists: np.ndarray) -> np.ndarray:
    """Both hands through the layer with the stored pose/betas, wrist placed at ``wrists``."""
    out = []
    with torch.no_grad():
        for k, m in enumerate(models):
            hp = torch.as_tensor(pose[k, 3:][None], dtype=torch.float32)
            if not m.flat_hand_mean:
                hp = hp - m.hands_mean
            o = m(torch.as_tensor(pose[k, :3][None], dtype=torch.float32), hp,
                  torch.as_tensor(betas[k][None], dtype=torch.float32), None, pose_type="axis_angle")
            out.append((o.vertices[0] - o.joints[0, 0]).numpy() + wrists[k])
    return np.stack(out)


def test_sample_format(samples, models):
    s = samples[0]
    assert set(s) == KEYS
    v = models[0].num_verts
    shapes = {"image": (SIZE, SIZE, 3), "joints3d": (2, 21, 3), "verts3d": (2, v, 3),
              "joints2d": (2, 21, 2), "verts2d": (2, v, 2), "pose": (2, 48), "betas": (2, 10),
              "seg": (SIZE, SIZE), "dense": (SIZE, SIZE, 3), "K": (3, 3), "hand_valid": (2,)}
    for k, shape in shapes.items():
        assert s[k].shape == shape, k
    for k in ("image", "seg", "dense"):
        assert s[k].dtype == np.uint8
    for k in ("joints3d", "verts3d", "joints2d", "verts2d", "pose", "betas", "K"):
        assert s[k].dtype == np.float32
    assert s["hand_valid"].dtype == bool and s["hand_valid"].all()
    assert set(np.unique(s["seg"])) <= {0, 1, 2}
    z = s["verts3d"][..., 2]
    assert 0.15 < z.min() and z.max() < 1.5


def test_deterministic(samples, models):
    again = S.generate_sample(3, "train", CFG, models)
    assert _same(again, samples[3])
    assert not np.array_equal(samples[3]["image"], samples[4]["image"])
    assert not np.allclose(samples[3]["joints3d"], samples[4]["joints3d"])


def test_test_split_fixed_and_disjoint(models):
    a = S.generate_sample(1, "test", S.SyntheticConfig(img_size=64, seed=0), models)
    b = S.generate_sample(1, "test", S.SyntheticConfig(img_size=64, seed=123), models)
    assert _same(a, b)  # the test split ignores the training seed
    t0 = S.generate_sample(1, "train", S.SyntheticConfig(img_size=64, seed=0), models)
    t1 = S.generate_sample(1, "train", S.SyntheticConfig(img_size=64, seed=123), models)
    assert not np.allclose(t0["betas"], t1["betas"])
    test_betas = [S.sample_rng("test", i, 0).normal(size=4) for i in range(200)]
    for split, seed in (("train", 0), ("val", 0), ("train", S.TEST_ENTROPY)):
        other = np.array([S.sample_rng(split, i, seed).normal(size=4) for i in range(200)])
        assert not any(np.isclose(other, t).all(1).any() for t in test_betas)


def test_joints_inside_crop(samples):
    inside = [((s["joints2d"] >= 0) & (s["joints2d"] <= SIZE)).all(-1).mean() for s in samples]
    assert np.mean(np.array(inside) > 0.97) >= 0.9
    for s in samples:  # 2D labels are the projections of the 3D labels with K
        np.testing.assert_allclose(project(s["joints3d"].reshape(-1, 3), s["K"]).reshape(2, 21, 2),
                                   s["joints2d"], atol=1e-2)


def test_both_hands_visible(samples):
    frac = np.array([[(s["seg"] == k).mean() for k in (1, 2)] for s in samples])
    assert np.mean((frac > 0.01).all(1)) >= 0.85
    assert np.mean(frac.sum(1)) > 0.1


def test_seg_matches_projected_vertices(samples, models):
    own, not_own, same_label = [], [], []
    for s in samples:
        r, label, seg, dense = _rerender(s, models)
        for k in range(2):
            px = np.floor(s["verts2d"][k]).astype(int)
            ok = ((px >= 0) & (px < SIZE)).all(1)
            i, j = px[ok, 1], px[ok, 0]
            z_buf, z_vert, lab = r.depth[i, j], s["verts3d"][k][ok, 2], s["seg"][i, j]
            visible = np.abs(z_buf - z_vert) < 0.004
            own.append(np.mean(lab[visible] == k + 1))
            hidden = (z_buf < z_vert - 0.01) & (label[np.maximum(r.face_id[i, j], 0)] != k)
            not_own.extend(lab[hidden] != k + 1)  # behind the other hand: never labelled k
        hand = seg > 0
        same_label.append(np.mean(s["seg"][hand] == seg[hand]))  # differ: forearm occlusion
        assert np.all(s["seg"][~hand] == 0)
        same = (s["seg"] == seg) & hand
        assert np.abs(s["dense"][same].astype(float) - dense[same]).max() <= 1.0
        assert np.all(s["dense"][s["seg"] == 0] == 0)
    assert np.median(own) > 0.9 and np.mean(own) > 0.85
    assert np.mean(not_own) > 0.95
    assert np.median(same_label) > 0.93 and np.mean(same_label) > 0.88


def test_pose_reproduces_vertices(samples, models):
    for s in samples[:6]:
        v = _layer_verts(models, s["pose"].astype(np.float64), s["betas"], s["joints3d"][:, 0])
        np.testing.assert_allclose(v, s["verts3d"], atol=2e-5)


def test_approach_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=(150, 3)) * 0.05, rng.normal(size=(120, 3)) * 0.05
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        c = a[:, None] - b[None]
        cd = c @ d
        disc = cd * cd - (c * c).sum(-1) + 0.01 ** 2
        ref = (cd + np.sqrt(np.maximum(disc, 0)))[disc >= 0].max()
        t = approach_distance(a, b, d, 0.01)
        assert t == pytest.approx(ref)
        dist = np.linalg.norm(a[:, None] - (b + t * d)[None], axis=-1).min()
        assert dist == pytest.approx(0.01, abs=1e-9)  # first contact: nothing closer


def test_hands_touch_without_interpenetration(samples):
    gaps = []
    for s in samples:
        v = s["verts3d"].astype(np.float64)
        gaps.append(np.linalg.norm(v[0][:, None] - v[1][None], axis=-1).min())
    gaps = np.array(gaps)
    assert gaps.min() >= CFG.vertex_slack - 1e-4  # the closest vertices keep the slack
    assert np.mean(gaps < 0.02) > 0.5  # most pairs are in contact


def test_training_targets(samples):
    s = samples[0]
    t = D.to_training_targets(s, img_size=SIZE, aux_size=32)
    v = s["verts3d"].shape[1]
    assert t["image"].shape == (3, SIZE, SIZE) and t["image"].dtype == torch.float32
    assert -2.2 < float(t["image"].min()) and float(t["image"].max()) < 2.7
    assert t["joints3d_rel"].shape == (2, 21, 3) and t["verts3d_rel"].shape == (2, v, 3)
    assert torch.all(t["joints3d_rel"][:, 0] == 0)
    root = s["joints3d"][:, 0]
    np.testing.assert_allclose(t["offset"].numpy(), (root[1] - root[0]) / 0.15, rtol=1e-6)
    assert t["joints2d"].shape == (2, 21, 2) and t["verts2d"].shape == (2, v, 2)
    assert float(t["joints2d"].abs().max()) < 1.2
    assert t["seg"].shape == (32, 32) and t["seg"].dtype == torch.int64
    assert set(t["seg"].unique().tolist()) <= {0, 1, 2}
    assert t["dense"].shape == (3, 32, 32) and 0 <= float(t["dense"].min()) and float(t["dense"].max()) <= 1
    assert t["hand_valid"].dtype == torch.bool
    big = D.to_training_targets(s, img_size=2 * SIZE, aux_size=64)  # resized input
    np.testing.assert_allclose(big["joints2d"].numpy(), t["joints2d"].numpy(), atol=1e-5)
    batch = torch.utils.data.default_collate([t, D.to_training_targets(samples[1], SIZE, 32)])
    assert batch["image"].shape == (2, 3, SIZE, SIZE)


def _check_consistent(s: dict, atol: float = 1e-2) -> None:
    for key in ("joints", "verts"):
        p3 = s[f"{key}3d"].reshape(-1, 3)
        np.testing.assert_allclose(project(p3, s["K"]).reshape(s[f"{key}2d"].shape), s[f"{key}2d"],
                                   atol=atol)


def test_rotation_keeps_2d_3d_consistent(samples, models):
    s = samples[2]
    a = D.rotate_scale_shift(s, np.deg2rad(70.0), 1.08, np.array([5.0, -7.0]))
    _check_consistent(a)
    seg = _rerender(a, models)[2]
    hand = seg > 0
    assert np.mean(a["seg"][hand] == seg[hand]) > 0.85  # warped labels follow the geometry
    v = _layer_verts(models, a["pose"].astype(np.float64), a["betas"], a["joints3d"][:, 0])
    np.testing.assert_allclose(v, a["verts3d"], atol=5e-5)  # global orient rotated too
    np.testing.assert_allclose(a["joints3d"][:, :, 2], s["joints3d"][:, :, 2], atol=1e-6)


def test_flip_swaps_hands_consistently(samples, models):
    s = samples[5]
    f = D.flip_sample(s)
    _check_consistent(f)
    assert (f["seg"] == 1).sum() == (s["seg"] == 2).sum()
    _, _, seg, dense = _rerender(f, models)
    hand = seg > 0
    assert np.mean(f["seg"][hand] == seg[hand]) > 0.85
    same = (f["seg"] == seg) & hand
    assert np.abs(f["dense"][same].astype(float) - dense[same]).mean() < 1.0
    v = _layer_verts(models, f["pose"].astype(np.float64), f["betas"], f["joints3d"][:, 0])
    np.testing.assert_allclose(v, f["verts3d"], atol=1e-4)  # mirrored left is a right hand
    twice = D.flip_sample(f)
    for k in s:
        np.testing.assert_allclose(twice[k], s[k], atol=1e-5, err_msg=k)


def test_augment_random(samples):
    rng = np.random.default_rng(0)
    for s in samples[:4]:
        a = D.augment(s, rng)
        assert set(a) == set(s)
        assert a["image"].shape == s["image"].shape and a["image"].dtype == np.uint8
        _check_consistent(a)
        assert not np.array_equal(a["image"], s["image"])


def test_shards_roundtrip(tmp_path, models):
    cfg = S.SyntheticConfig(img_size=64)
    S.pregenerate(tmp_path, 3, "val", cfg, shard_size=2, progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["val-00000.npz", "val-00001.npz"]
    ds = S.SyntheticTwoHands(4, "val", cfg, models=models, cache_dir=tmp_path)
    for i in range(4):  # index 3 is not in the shards: generated on the fly
        assert _same(ds[i], S.generate_sample(i, "val", cfg, models))
    with pytest.raises(ValueError):
        S.SyntheticTwoHands(3, "val", S.SyntheticConfig(img_size=32), cache_dir=tmp_path)


@pytest.mark.parametrize("side", [0, 1])
def test_hand_rotation_palm_towards_camera(models, side):
    """Palm facing the camera, fingers up: the right thumb is on the image right (+x)."""
    from interhand_perception.data.scene import hand_rotation, pose_hands

    name = ("left", "right")[side]
    rots = np.stack([hand_rotation(np.array([0, 0, -1.0]), np.array([0, -1.0, 0]), name)] * 2)
    verts, joints, pose = pose_hands(models, rots, np.zeros((2, 45)), np.zeros((2, 10)))
    j = joints[side]
    fingers = j[12] - j[0]  # middle tip
    assert fingers[1] / np.linalg.norm(fingers) < -0.9
    thumb_minus_little = j[4, 0] - j[20, 0]
    assert (thumb_minus_little > 0) == (name == "right")
    v_again = _layer_verts(models, pose, np.zeros((2, 10)), joints[:, 0])
    np.testing.assert_allclose(v_again, verts, atol=1e-5)


def test_training_transform_in_dataloader(models):
    ds = S.SyntheticTwoHands(4, "train", S.SyntheticConfig(img_size=64), models=models,
                             transform=D.TrainingTransform(64, 16, D.AugmentConfig()))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["seg"].shape == (4, 16, 16)
    assert batch["verts3d_rel"].shape[:2] == (4, 2)


def test_backgrounds_deterministic():
    from interhand_perception.data import textures as tx

    for i in range(12):
        a = tx.random_background(np.random.default_rng(i), 48)
        b = tx.random_background(np.random.default_rng(i), 48)
        assert a.shape == (48, 48, 3) and a.dtype == np.float32
        assert np.array_equal(a, b) and 0 <= a.min() and a.max() <= 1
        img = tx.camera_effects(np.random.default_rng(i), a)
        assert img.dtype == np.uint8 and np.array_equal(img, tx.camera_effects(np.random.default_rng(i), a))


def test_no_vertex_inside_the_other_hand(samples, models):
    from interhand_perception.evaluation.penetration_volume import points_inside_mesh

    for s in samples[:6]:
        for k in range(2):
            inside = points_inside_mesh(s["verts3d"][1 - k][::2], s["verts3d"][k], models[k].faces,
                                        dtype=np.float32)
            assert inside.mean() < 0.005


def test_non_flat_models_give_the_same_sample(samples):
    from interhand_perception.hand_model import load_hand_model

    non_flat = tuple(load_hand_model(side, flat_hand_mean=False) for side in ("left", "right"))
    again = S.generate_sample(0, "train", CFG, non_flat)
    np.testing.assert_allclose(again["verts3d"], samples[0]["verts3d"], atol=1e-5)
    np.testing.assert_allclose(again["pose"], samples[0]["pose"], atol=1e-6)
