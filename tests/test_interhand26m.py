"""InterHand2.6M v1.0 loader on a tiny dataset fabricated in the official file layout.

Nothing of the real dataset is used: cameras, 3D joints, NeuralAnnot-style MANO parameters
(generated with the built-in hand model) and JPEG images are written into ``tmp_path``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from interhand_perception.data import interhand26m as ih
from interhand_perception.data import interhand26m_index as ih_index
from interhand_perception.hand_model.joints import JOINT_NAMES, SIDES

IMG_W, IMG_H = 334, 512  # InterHand2.6M image size (width x height)
S = 128
SPLIT = "test"

# InterHand2.6M's 42 joint names, written out independently of the module under test.
_IH_FINGER = {"thumb": "thumb", "index": "index", "middle": "middle", "ring": "ring", "little": "pinky"}
IH_NAMES = [f"{p}_{f}{k}" for p in ("r", "l")
            for f in ("thumb", "index", "middle", "ring", "pinky") for k in (4, 3, 2, 1)]
IH_NAMES = IH_NAMES[:20] + ["r_wrist"] + IH_NAMES[20:] + ["l_wrist"]


def ih_name(side: str, our_name: str) -> str:
    """Dataset name of one of our joints: thumb cmc/mcp/ip/tip = thumb1..4, fingers mcp/pip/dip/tip = 1..4."""
    p = side[0]
    if our_name == "wrist":
        return f"{p}_wrist"
    finger, part = our_name.split("_")
    if finger == "index" or finger == "middle" or finger == "ring" or finger == "little":
        num = {"mcp": 1, "pip": 2, "dip": 3, "tip": 4}[part]
    else:
        num = {"cmc": 1, "mcp": 2, "ip": 3, "tip": 4}[part]
    return f"{p}_{_IH_FINGER[finger]}{num}"


def rodrigues(v) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(v, dtype=np.float64).reshape(3, 1))[0]


def look_at(campos_mm, target_mm, down=(0.0, 0.0, -1.0)) -> np.ndarray:
    """World->camera rotation (rows x, y, z) of an OpenCV camera at campos looking at target."""
    z = np.asarray(target_mm, float) - np.asarray(campos_mm, float)
    z /= np.linalg.norm(z)
    x = np.cross(np.asarray(down, float), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


# ------------------------------------------------------------------------------------------
# fabricated dataset
# ------------------------------------------------------------------------------------------

CENTRE_MM = np.array([120.0, -340.0, 1050.0])  # where the hands are, world mm (world z is up)
CAMERAS = {
    "0": {"400262": ([-420.0, 700.0, 1380.0], [1242.3, 1241.8], [163.9, 256.4]),
          "400263": ([980.0, 420.0, 1190.0], [1228.5, 1229.1], [168.2, 252.7])},
    "1": {"400262": ([300.0, 760.0, 1610.0], [1251.0, 1250.2], [166.0, 259.3])},
}
MARKER_MM = np.array([151.25, -377.5, 1093.75])  # put on r_thumb4 of capture 1, frame 5


@torch.no_grad()
def skin(model, pose48, shape, trans):
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(1, -1), dtype=torch.float32)
    out = model(global_orient=t(pose48[:3]), hand_pose=t(pose48[3:]), betas=t(shape), transl=t(trans),
                pose_type="axis_angle")
    return out.vertices[0].double().numpy(), out.joints[0].double().numpy()


def make_hand_fit(model, rng, wrist_world_m) -> dict:
    """NeuralAnnot-like world fit whose wrist lands at ``wrist_world_m`` (metres)."""
    pose = np.concatenate([rng.normal(0.0, 1.2, 3), rng.normal(0.0, 0.15, 45)])
    shape = rng.normal(0.0, 0.6, 10)
    _, j = skin(model, pose, shape, np.zeros(3))
    trans = np.asarray(wrist_world_m) - j[0]  # the wrist is invariant to the global rotation
    return {"pose": pose.tolist(), "shape": shape.tolist(), "trans": trans.tolist()}


def gradient_image() -> np.ndarray:
    """RGB uint8 image: R encodes x, G encodes y (checks where the crop was taken)."""
    x = (np.arange(IMG_W) + 0.5) / IMG_W * 255.0
    y = (np.arange(IMG_H) + 0.5) / IMG_H * 255.0
    img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
    img[..., 0] = np.rint(x)[None, :]
    img[..., 1] = np.rint(y)[:, None]
    img[..., 2] = 128
    return img


def build_dataset(root: Path, models: dict, seed: int = 0, split: str = SPLIT) -> dict:
    """Write the tiny dataset (one split); return what the tests need to compute expectations.

    The fits are NeuralAnnot-style (pose minus the mean: skinned by ``flat_hand_mean=False`` layers).
    """
    rng = np.random.default_rng(seed)
    ann_dir = root / "annotations" / split
    ann_dir.mkdir(parents=True)
    frames = {  # (capture, frame): (hand_type, hand_type_valid, cameras, fits for)
        ("0", "10"): ("interacting", 1, ["400262", "400263"], ("left", "right")),
        ("0", "20"): ("right", 1, ["400262"], ("right",)),
        ("1", "5"): ("interacting", 1, ["400262"], ("left", "right")),
        ("1", "6"): ("interacting", 0, ["400262"], ("left", "right")),
    }
    cameras_json, joints_json, mano_json, world = {}, {}, {}, {}
    for cap, cams in CAMERAS.items():
        cj = {"campos": {}, "camrot": {}, "focal": {}, "princpt": {}}
        for cam, (pos, focal, pp) in cams.items():
            cj["campos"][cam] = list(pos)
            cj["camrot"][cam] = look_at(pos, CENTRE_MM).tolist()
            cj["focal"][cam] = list(focal)
            cj["princpt"][cam] = list(pp)
        cameras_json[cap] = cj
    for (cap, frame), (_, _, _, hands) in frames.items():
        centre = (CENTRE_MM + rng.normal(0.0, 15.0, 3)) / 1000.0
        fits, ours = {"left": None, "right": None}, np.zeros((2, 21, 3))
        for k, side in enumerate(SIDES):
            wrist = centre + np.array([-0.07 if side == "left" else 0.07, 0.0, 0.0])
            fit = make_hand_fit(models[side], rng, wrist)
            _, j = skin(models[side], np.array(fit["pose"]), np.array(fit["shape"]), np.array(fit["trans"]))
            ours[k] = j * 1000.0
            if side in hands:
                fits[side] = fit
        ih42 = ih.ours_to_ih42(ours)
        if (cap, frame) == ("1", "5"):
            ih42[IH_NAMES.index("r_thumb4")] = MARKER_MM
        world[(cap, frame)] = {"fits": fits, "joints_mm": ih42}
        joints_json.setdefault(cap, {})[frame] = {
            "world_coord": ih42.tolist(), "joint_valid": [[1]] * 42, "hand_type": frames[(cap, frame)][0],
            "hand_type_valid": 1}
        mano_json.setdefault(cap, {})[frame] = fits
    images, annotations, files = [], [], {}
    img = gradient_image()
    for (cap, frame), (hand_type, htv, cams, _) in frames.items():
        for cam in cams:
            iid = len(images) + 1
            name = f"Capture{cap}/0051_dinosaur/cam{cam}/image{int(frame):04d}.jpg"
            path = root / "images" / split / name
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
            images.append({"id": iid, "file_name": name, "width": IMG_W, "height": IMG_H, "capture": int(cap),
                           "subject": 3, "seq_name": "0051_dinosaur", "camera": cam, "frame_idx": int(frame)})
            valid = [[1]] * 42
            if (cap, frame, cam) == ("0", "10", "400263"):
                valid[IH_NAMES.index("r_index3")] = [0]          # one invalid joint
                valid[IH_NAMES.index("l_wrist")] = [0]           # invalid root: whole left hand
            annotations.append({"id": iid, "image_id": iid, "bbox": [10.0, 20.0, 200.0, 300.0],
                                "joint_valid": valid, "hand_type": hand_type, "hand_type_valid": htv})
            files[(cap, frame, cam)] = path
    data_json = {"images": images, "annotations": annotations}
    for kind, obj in (("data", data_json), ("camera", cameras_json), ("joint_3d", joints_json),
                      ("MANO_NeuralAnnot", mano_json)):
        (ann_dir / f"InterHand2.6M_{split}_{kind}.json").write_text(json.dumps(obj))
    return {"world": world, "files": files}


@pytest.fixture(scope="module")
def models():
    from interhand_perception.hand_model import load_hand_model

    return {s: load_hand_model(s) for s in SIDES}


@pytest.fixture(scope="module")
def fake(tmp_path_factory, models):
    root = tmp_path_factory.mktemp("ih26m")
    info = build_dataset(root, models)
    cache = tmp_path_factory.mktemp("ih26m_cache")
    ds = ih.InterHand26M(root, SPLIT, img_size=S, hand_models=models, cache_dir=cache)
    return {"root": root, "cache": cache, "ds": ds, **info}


def cam_of(info: dict):
    pos, focal, pp = CAMERAS[str(info["capture"])][info["camera"]]
    R = look_at(pos, CENTRE_MM)
    return np.asarray(pos), R, focal, pp


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------

def test_selects_interacting_frames_only(fake):
    ds = fake["ds"]
    assert len(ds) == 3  # 2 views of (0, 10) + (1, 5); the 'right' frame and hand_type_valid=0 dropped
    keys = sorted((d["capture"], d["frame_idx"], d["camera"]) for d in (ds.frame_info(i) for i in range(len(ds))))
    assert keys == [(0, 10, "400262"), (0, 10, "400263"), (1, 5, "400262")]
    s = ih.interhand_frames_summary(fake["root"], SPLIT, cache_dir=fake["cache"])
    assert s == {"split": SPLIT, "all": 5, "interacting": 4, "used": 3}


def test_sample_format(fake, models):
    sample = fake["ds"][0]
    V = models["left"].num_verts
    expect = {"image": ((S, S, 3), np.uint8), "joints3d": ((2, 21, 3), np.float32),
              "verts3d": ((2, V, 3), np.float32), "joints2d": ((2, 21, 2), np.float32),
              "verts2d": ((2, V, 2), np.float32), "pose": ((2, 48), np.float32),
              "betas": ((2, 10), np.float32), "seg": ((S, S), np.uint8), "dense": ((S, S, 3), np.uint8),
              "K": ((3, 3), np.float32), "hand_valid": ((2,), np.bool_),
              "joints3d_annot": ((2, 21, 3), np.float32), "joints_valid": ((2, 21), np.bool_)}
    for key, (shape, dtype) in expect.items():
        assert sample[key].shape == shape, key
        assert sample[key].dtype == dtype, key
    assert sample["hand_valid"].all()
    # batching with the default collate works
    batch = torch.utils.data.default_collate([fake["ds"][0], fake["ds"][1]])
    assert batch["verts3d"].shape == (2, 2, V, 3)


def test_crop_contains_both_hands_with_fill(fake):
    ds = fake["ds"]
    for i in range(len(ds)):
        s = ds[i]
        v2 = s["verts2d"].reshape(-1, 2).astype(np.float64)
        lo, hi = v2.min(0), v2.max(0)
        assert (lo >= -1e-3).all() and (hi <= S + 1e-3).all()
        assert (hi - lo).max() == pytest.approx(0.8 * S, rel=1e-4)  # extent / side = 0.8
        np.testing.assert_allclose((lo + hi) / 2, [S / 2, S / 2], atol=1e-3)  # centred
        # the crop intrinsics project the 3D hands onto the 2D ones
        p = s["verts3d"].reshape(-1, 3).astype(np.float64) @ s["K"].astype(np.float64).T
        np.testing.assert_allclose(p[:, :2] / p[:, 2:], v2, atol=2e-3)
        p = s["joints3d"].reshape(-1, 3).astype(np.float64) @ s["K"].astype(np.float64).T
        np.testing.assert_allclose(p[:, :2] / p[:, 2:], s["joints2d"].reshape(-1, 2), atol=2e-3)


def test_crop_image_comes_from_the_box(fake):
    ds = fake["ds"]
    s = ds[0]
    info = ds.frame_info(0)
    pos, R, focal, pp = cam_of(info)
    K = np.array([[focal[0], 0, pp[0]], [0, focal[1], pp[1]], [0, 0, 1.0]])
    hands = ds.hands_in_camera(0)
    uv = hands["verts3d"].reshape(-1, 3) @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    cx, cy = (uv.min(0) + uv.max(0)) / 2
    c = s["image"][S // 2 - 1:S // 2 + 1, S // 2 - 1:S // 2 + 1].reshape(-1, 3).astype(float).mean(0)
    if 0 <= cx < IMG_W and 0 <= cy < IMG_H:  # RGB order: R ~ x, G ~ y of the full image
        assert c[0] == pytest.approx(cx / IMG_W * 255, abs=4)
        assert c[1] == pytest.approx(cy / IMG_H * 255, abs=4)
        assert c[2] == pytest.approx(128, abs=4)


def test_annotated_joints_in_camera_frame(fake):
    ds = fake["ds"]
    for i in range(len(ds)):
        info = ds.frame_info(i)
        pos, R, _, _ = cam_of(info)
        world_mm = fake["world"][(str(info["capture"]), str(info["frame_idx"]))]["joints_mm"]
        expected = np.array([R @ (x - pos) / 1000.0 for x in world_mm])  # 42 joints, camera metres
        got = ds[i]["joints3d_annot"]
        for k, side in enumerate(SIDES):
            for j, name in enumerate(JOINT_NAMES):
                np.testing.assert_allclose(got[k, j], expected[IH_NAMES.index(ih_name(side, name))],
                                           atol=1e-6, err_msg=f"{side} {name}")


def test_joint_order_marker(fake):
    ds = fake["ds"]
    i = next(i for i in range(len(ds)) if ds.frame_info(i)["capture"] == 1)
    pos, R, _, _ = cam_of(ds.frame_info(i))
    got = ds[i]["joints3d_annot"]
    marker_cam = R @ (MARKER_MM - pos) / 1000.0
    np.testing.assert_allclose(got[1, JOINT_NAMES.index("thumb_tip")], marker_cam, atol=1e-6)
    assert JOINT_NAMES.index("thumb_tip") == 4
    # nowhere else
    others = np.delete(got.reshape(-1, 3), 21 + 4, axis=0)
    assert np.linalg.norm(others - marker_cam, axis=1).min() > 1e-4


def test_annotation_matches_model_joints_where_fabricated_from_them(fake):
    ds = fake["ds"]
    i = next(i for i in range(len(ds)) if ds.frame_info(i)["capture"] == 0)
    s = ds[i]
    np.testing.assert_allclose(s["joints3d_annot"], s["joints3d"], atol=2e-5)


def test_joint_validity(fake):
    ds = fake["ds"]
    for i in range(len(ds)):
        v = ds[i]["joints_valid"]
        if ds.frame_info(i)["camera"] == "400263":
            assert not v[0].any()  # left wrist invalid -> whole left hand invalid
            assert not v[1, JOINT_NAMES.index("index_dip")]  # r_index3
            assert v[1].sum() == 20
        else:
            assert v.all()


def test_world_to_camera_mano_reproduces_vertices(fake, models):
    from interhand_perception.hand_model import load_hand_model

    flat = {s: load_hand_model(s, flat_hand_mean=True) for s in SIDES}
    ds = fake["ds"]
    for i in range(len(ds)):
        info = ds.frame_info(i)
        pos, R, _, _ = cam_of(info)
        t = -R @ pos / 1000.0
        fits = fake["world"][(str(info["capture"]), str(info["frame_idx"]))]["fits"]
        s = ds[i]
        for k, side in enumerate(SIDES):
            f = fits[side]
            v_w, j_w = skin(models[side], np.array(f["pose"]), np.array(f["shape"]), np.array(f["trans"]))
            np.testing.assert_allclose(s["verts3d"][k], v_w @ R.T + t, atol=1e-5)
            np.testing.assert_allclose(s["joints3d"][k], j_w @ R.T + t, atol=1e-5)
            # the stored pose is the FULL pose (NeuralAnnot's pose + the model's mean) ...
            np.testing.assert_allclose(s["betas"][k], f["shape"], atol=1e-6)
            np.testing.assert_allclose(rodrigues(s["pose"][k, :3]), R @ rodrigues(f["pose"][:3]), atol=1e-5)
            mean = models[side].hands_mean.double().numpy()
            assert np.abs(mean).max() > 1e-2  # the check below would be vacuous with a zero mean
            np.testing.assert_allclose(s["pose"][k, 3:], np.asarray(f["pose"][3:]) + mean, atol=1e-6)
            # ... so it re-skins the same hand with a flat_hand_mean=True layer (up to translation)
            v_r, j_r = skin(flat[side], s["pose"][k], s["betas"][k], np.zeros(3))
            np.testing.assert_allclose(v_r - j_r[0], s["verts3d"][k] - s["joints3d"][k, 0], atol=1e-5)
            np.testing.assert_allclose(j_r - j_r[0], s["joints3d"][k] - s["joints3d"][k, 0], atol=1e-5)


def test_flat_hand_mean_models_give_the_same_samples(fake):
    """The loader adapts NeuralAnnot's mean-subtracted pose to flat_hand_mean=True layers too."""
    from interhand_perception.hand_model import load_hand_model

    flat = {s: load_hand_model(s, flat_hand_mean=True) for s in SIDES}
    ds = ih.InterHand26M(fake["root"], SPLIT, img_size=S, hand_models=flat, cache_dir=fake["cache"],
                         max_samples=1, render=False)
    a, b = ds[0], fake["ds"][0]
    for key in ("verts3d", "joints3d", "pose", "betas", "K"):
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)


def test_mano_world_to_camera_maths(models):
    rng = np.random.default_rng(3)
    model = models["right"]
    for _ in range(3):
        pose = np.concatenate([rng.normal(0, 1.5, 3), rng.normal(0, 0.2, 45)])
        shape, trans = rng.normal(0, 1.0, 10), rng.normal(0, 0.5, 3)
        R = rodrigues(rng.normal(0, 2.0, 3))
        t = rng.normal(0, 1.0, 3)
        v_w, _ = skin(model, pose, shape, trans)
        j0 = ih.rest_root_joint(model, shape)
        go_c, tr_c = ih.mano_world_to_camera(pose[:3], trans, j0, R, t)
        v_c, _ = skin(model, np.concatenate([go_c, pose[3:]]), shape, tr_c)
        np.testing.assert_allclose(v_c, v_w @ R.T + t, atol=1e-5)
        # the naive form (rotating about the origin) is wrong whenever J0 != 0
        v_bad, _ = skin(model, np.concatenate([go_c, pose[3:]]), shape, R @ trans + t)
        assert np.abs(v_bad - (v_w @ R.T + t)).max() > 1e-3


def test_ih42_mapping_roundtrip():
    x = np.arange(42 * 3, dtype=float).reshape(42, 3)
    np.testing.assert_array_equal(ih.ours_to_ih42(ih.ih42_to_ours(x)), x)
    ours = ih.ih42_to_ours(np.arange(42))
    assert ours[1, 0] == IH_NAMES.index("r_wrist") == 20
    assert ours[0, 0] == IH_NAMES.index("l_wrist") == 41
    assert ours[1, JOINT_NAMES.index("middle_mcp")] == IH_NAMES.index("r_middle1")
    assert ours[0, JOINT_NAMES.index("little_tip")] == IH_NAMES.index("l_pinky4")


def test_seg_and_dense_rendered(fake, models):
    s = fake["ds"][0]
    assert bool(s["seg_valid"])
    labels, counts = np.unique(s["seg"], return_counts=True)
    assert set(labels.tolist()) <= {0, 1, 2}
    assert dict(zip(labels.tolist(), counts.tolist())).get(1, 0) > 50
    assert dict(zip(labels.tolist(), counts.tolist())).get(2, 0) > 50
    assert (s["dense"][s["seg"] == 0] == 0).all()
    assert s["dense"][s["seg"] > 0].max() > 0
    # compare with the silhouettes computed exactly: pixel centres (i + 0.5) inside projected triangles
    only = [covered_pixels(s["verts2d"][k], np.asarray(models[side].faces), S) for k, side in enumerate(SIDES)]
    fg = s["seg"] > 0
    union = only[0] | only[1]
    assert union.sum() > 100
    assert (fg == union).mean() > 0.995
    for k in range(2):  # where only one hand covers the pixel, the label is that hand's
        alone = only[k] & ~only[1 - k]
        assert (s["seg"][alone] == k + 1).all()


def covered_pixels(uv: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: pixel centres inside at least one projected triangle (brute force)."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    pts = np.stack([xs.ravel(), ys.ravel()], 1)
    out = np.zeros(len(pts), bool)
    tri = uv[faces].astype(np.float64)
    for a, b, c in tri:
        lo, hi = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
        m = np.flatnonzero((pts[:, 0] >= lo[0]) & (pts[:, 0] <= hi[0]) & (pts[:, 1] >= lo[1]) & (pts[:, 1] <= hi[1]))
        if not len(m):
            continue
        p = pts[m]
        d1 = (b[0] - a[0]) * (p[:, 1] - a[1]) - (b[1] - a[1]) * (p[:, 0] - a[0])
        d2 = (c[0] - b[0]) * (p[:, 1] - b[1]) - (c[1] - b[1]) * (p[:, 0] - b[0])
        d3 = (a[0] - c[0]) * (p[:, 1] - c[1]) - (a[1] - c[1]) * (p[:, 0] - c[0])
        inside = ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))
        out[m[inside]] = True
    return out.reshape(size, size)


def test_max_samples_and_frame_filter(fake, models):
    ds = ih.InterHand26M(fake["root"], SPLIT, img_size=S, hand_models=models, cache_dir=fake["cache"],
                         max_samples=2)
    assert len(ds) == 2
    ds = ih.InterHand26M(fake["root"], SPLIT, img_size=S, hand_models=(models["left"], models["right"]),
                         cache_dir=fake["cache"], frame_filter=lambda r: r["camera"] == "400263")
    assert len(ds) == 1 and ds.frame_info(0)["camera"] == "400263"
    s = ih.interhand_frames_summary(fake["root"], SPLIT, cache_dir=fake["cache"],
                                    frame_filter=lambda r: r["capture"] == 1)
    assert s["used"] == 1
    ds = ih.InterHand26M(fake["root"], SPLIT, img_size=S, hand_models=models, cache_dir=fake["cache"],
                         frame_filter=ih.both_roots_valid)
    assert len(ds) == 2 and all(ds.frame_info(i)["camera"] == "400262" for i in range(2))


def test_index_is_cached_on_disk(fake, models, monkeypatch):
    assert list(Path(fake["cache"]).glob(f"{SPLIT}_*.npz"))
    ih._INDEX_MEMO.clear()

    def boom(*a, **k):
        raise AssertionError("index rebuilt although cached")

    monkeypatch.setattr(ih_index, "_build_index", boom)
    ds = ih.InterHand26M(fake["root"], SPLIT, img_size=S, hand_models=models, cache_dir=fake["cache"])
    assert len(ds) == 3
    np.testing.assert_allclose(ds[2]["verts3d"], fake["ds"][2]["verts3d"])


def test_requires_mano_or_hand_models(fake):
    with pytest.raises(ValueError, match="MANO"):
        ih.InterHand26M(fake["root"], SPLIT, cache_dir=fake["cache"])


def test_missing_root_and_files(tmp_path, models):
    with pytest.raises(ih.InterHandFilesMissing, match="does not exist"):
        ih.InterHand26M(tmp_path / "nope", SPLIT, hand_models=models)
    root = tmp_path / "partial"
    (root / "annotations" / SPLIT).mkdir(parents=True)
    (root / "annotations" / SPLIT / f"InterHand2.6M_{SPLIT}_data.json").write_text("{}")
    with pytest.raises(ih.InterHandFilesMissing) as e:
        ih.InterHand26M(root, SPLIT, hand_models=models)
    msg = str(e.value)
    assert f"InterHand2.6M_{SPLIT}_MANO_NeuralAnnot.json" in msg and f"InterHand2.6M_{SPLIT}_camera.json" in msg
    assert f"images/{SPLIT}" in msg
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(ValueError, match="split"):
        ih.InterHand26M(root, "training", hand_models=models)


def test_missing_image(tmp_path, models):
    root = tmp_path / "ds"
    info = build_dataset(root, models, seed=5)
    info["files"][("1", "5", "400262")].unlink()
    ds = ih.InterHand26M(root, SPLIT, img_size=S, hand_models=models, use_cache=False)
    i = next(i for i in range(len(ds)) if ds.frame_info(i)["capture"] == 1)
    with pytest.raises(ih.InterHandFilesMissing, match="image"):
        ds[i]


def test_train_and_eval_commands_on_fabricated_dataset(tmp_path, models):
    """`interhand train` then `interhand eval` as subprocesses on a fabricated train + test split.

    The fits are made with the built-in hand model, hence ``data.fits_model: builtin``; eval reads it
    from the checkpoint's embedded config.
    """
    root = tmp_path / "ih26m"
    build_dataset(root, models, seed=1, split="train")
    build_dataset(root, models, seed=2, split="test")
    out = tmp_path / "run"
    cfg = tmp_path / "ih.yaml"
    cfg.write_text(
        "model: {backbone: resnet18, img_size: 64, num_stages: 1, width: 32, mfp_kernel: 1, "
        "gcn_node_weights: false}\n"
        f"data: {{kind: interhand26m, root: '{root}', fits_model: builtin, num_workers: 0}}\n"
        f"train: {{out_dir: '{out}', device: cpu, batch_size: 2, max_steps: 2, eval_every: 2, "
        "eval_samples: 2, warmup_steps: 1, log_every: 1, threads: 1}\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "interhand_perception.cli", *args], env=env,
                                       capture_output=True, text=True, timeout=600)
    tr = run("train", "--config", str(cfg), "--quiet")
    assert tr.returncode == 0, tr.stdout + tr.stderr
    assert (out / "last.safetensors").is_file()
    ev = run("eval", "--checkpoint", str(out / "last.safetensors"), "--data", "interhand26m", "--root", str(root),
             "--samples", "3", "--iv-samples", "1")
    assert ev.returncode == 0, ev.stdout + ev.stderr
    assert "evaluation on interhand26m/test: 3 samples" in ev.stdout
    for row in ("stage", "MPJPE", "MPVPE-MS", "initial", "refine 1"):
        assert row in ev.stdout, ev.stdout


def test_fits_model_config(fake, tmp_path, monkeypatch):
    from interhand_perception.training.config import load_run_config
    from interhand_perception.data.splits import build_test_set

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the default index cache location

    over = {"data": {"kind": "interhand26m", "root": str(fake["root"])}, "model": {"img_size": 64}}
    assert load_run_config(None, over)["data"]["fits_model"] == "mano"
    with pytest.raises(ValueError, match="fits_model"):
        load_run_config(None, {**over, "data": {**over["data"], "fits_model": "smplx"}})
    cfg = load_run_config(None, {**over, "data": {**over["data"], "fits_model": "builtin"}})
    ds = build_test_set(cfg, limit=2)
    assert len(ds) == 2 and all(m.name == "builtin" and not m.flat_hand_mean for m in ds.models.values())
    with pytest.raises(ValueError, match="MANO"):  # default: the fits need the real MANO files
        build_test_set(load_run_config(None, over), limit=2)
    cfg["hand_model"]["mano_dir"] = str(tmp_path)
    with pytest.raises(ValueError, match="mano_dir"):
        build_test_set(cfg, limit=2)
