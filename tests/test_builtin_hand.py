"""Tests of the built-in hand model: surface, skeleton, skinning, shape, mirror and asset."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from interhand_perception.hand_model import builtin as B
from interhand_perception.hand_model.joints import NUM_SKIN_JOINTS, SKIN_PARENTS
from interhand_perception.hand_model.pose_prior import mirror_pose, sample_hand_pose, typical_pose

FINGER_JOINTS = {"index": 1, "middle": 4, "little": 7, "ring": 10, "thumb": 13}
TIP_INDEX = {"thumb": 0, "index": 1, "middle": 2, "ring": 3, "little": 4}


@pytest.fixture(scope="module")
def right():
    return B.load_builtin_data("right")


@pytest.fixture(scope="module")
def left():
    return B.load_builtin_data("left")


def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def winding_numbers(v: np.ndarray, f: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Generalised winding number of points (P, 3) w.r.t. a closed mesh: 1 inside, 0 outside."""
    a, b, c = (v[f[:, k]][None] - pts[:, None] for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    num = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    den = (la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc
           + np.einsum("pfi,pfi->pf", b, c) * la + np.einsum("pfi,pfi->pf", c, a) * lb)
    return 2.0 * np.arctan2(num, den).sum(axis=1) / (4.0 * np.pi)


def _segment_hits_triangle(p0, p1, a, b, c):
    """Vectorised segment / triangle intersection (Moller-Trumbore), inputs (K, 3)."""
    d, e1, e2 = p1 - p0, b - a, c - a
    h = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(det) > 1e-15
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = p0 - a
    u = inv * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    w = inv * np.einsum("ij,ij->i", d, q)
    t = inv * np.einsum("ij,ij->i", e2, q)
    return ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t >= 0) & (t <= 1)


def count_self_intersections(v: np.ndarray, f: np.ndarray) -> int:
    """Pairs of triangles sharing no vertex whose edges cross each other."""
    tri = v[f]
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    pairs = []
    for s in range(0, len(f), 256):
        blk = slice(s, s + 256)
        overlap = np.all((lo[blk, None] <= hi[None]) & (hi[blk, None] >= lo[None]), axis=2)
        i, j = np.nonzero(overlap)
        i = i + s
        pairs.append(np.stack([i[i < j], j[i < j]], axis=1))
    i, j = np.concatenate(pairs).T
    keep = ~(f[i][:, :, None] == f[j][:, None, :]).any(axis=(1, 2))
    i, j = i[keep], j[keep]
    hit = np.zeros(len(i), dtype=bool)
    for x, y in ((i, j), (j, i)):
        for e in range(3):
            hit |= _segment_hits_triangle(v[f[x, e]], v[f[x, (e + 1) % 3]],
                                          v[f[y, 0]], v[f[y, 1]], v[f[y, 2]])
    return int(hit.sum())


def directed_edges(f: np.ndarray) -> np.ndarray:
    return np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])


def finger_length(joints: np.ndarray, tips: np.ndarray, finger: str) -> float:
    j = FINGER_JOINTS[finger]
    pts = np.vstack([joints[j:j + 3], tips[TIP_INDEX[finger]]])
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


# ----------------------------------------------------------------------------- surface
def test_model_data_contract(right):
    assert right.name == "builtin" and right.side == "right"
    assert 700 <= right.num_verts <= 1600
    assert right.num_betas == 10
    assert right.faces.dtype == np.int64 and right.tip_vertex_ids.dtype == np.int64
    assert tuple(right.parents) == SKIN_PARENTS
    assert not right.posedirs.any()                 # documented: no pose-corrective shapes
    assert right.extras["pca_std"].shape == (45,)
    assert len(right.extras["shape_names"]) == 10


def test_closed_oriented_manifold(right):
    f = right.faces
    e = directed_edges(f)
    directed = {tuple(x) for x in e}
    assert len(directed) == len(e), "a directed edge is used twice: inconsistent winding"
    assert all((b, a) in directed for a, b in directed), "open boundary"
    undirected = np.sort(e, axis=1)
    _, counts = np.unique(undirected, axis=0, return_counts=True)
    assert (counts == 2).all()
    assert len(np.unique(f)) == right.num_verts      # no unused vertex
    assert len(set(map(tuple, np.sort(f, axis=1)))) == len(f)   # no duplicate face
    area = np.linalg.norm(np.cross(*(right.v_template[f[:, k]] - right.v_template[f[:, 0]]
                                     for k in (1, 2))), axis=1) / 2
    assert area.min() > 1e-9


def test_euler_characteristic_and_single_component(right):
    f = right.faces
    n_edges = len(np.unique(np.sort(directed_edges(f), axis=1), axis=0))
    assert right.num_verts - n_edges + len(f) == 2
    parent = np.arange(right.num_verts)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in directed_edges(f):
        parent[find(a)] = find(b)
    assert len({find(x) for x in range(right.num_verts)}) == 1


def test_outward_winding_and_volume(right):
    vol = signed_volume(right.v_template.astype(np.float64), right.faces)
    assert 300e-6 < vol < 450e-6                    # adult hand (+ a short wrist stub), m^3
    v, f = right.v_template.astype(np.float64), right.faces
    outside = v + 1e-3 * _vertex_normals(v, f)
    assert (winding_numbers(v, f, outside[::50]) < 0.5).all()


def _vertex_normals(v, f):
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    return vn / np.linalg.norm(vn, axis=1, keepdims=True)


def test_no_self_intersections_at_rest(right):
    assert count_self_intersections(right.v_template.astype(np.float64), right.faces) == 0


# ----------------------------------------------------------------------------- skeleton
def test_canonical_frame_and_proportions(right):
    v = right.v_template.astype(np.float64)
    j = right.J_regressor @ v
    tips = v[right.tip_vertex_ids]
    assert 0.09 <= j[0, 0] <= 0.10                                  # wrist like MANO
    assert 0.18 <= np.linalg.norm(tips[TIP_INDEX["middle"]] - j[0]) <= 0.19
    assert (tips[1:4, 0] < j[0, 0] - 0.17).all() and tips[4, 0] < j[0, 0] - 0.14  # along -x
    assert tips[0, 2] > j[FINGER_JOINTS["index"], 2] + 0.03         # thumb on +z
    thumb_dir, finger_dir = tips[0] - j[0], tips[2] - j[0]
    assert np.cross(thumb_dir, finger_dir)[1] < 0                   # right hand, palm -y
    lengths = {n: finger_length(j, tips, n) for n in FINGER_JOINTS}
    ranges = {"index": (0.08, 0.095), "middle": (0.09, 0.10), "ring": (0.085, 0.097),
              "little": (0.065, 0.08), "thumb": (0.09, 0.11)}
    for name, (lo, hi) in ranges.items():
        assert lo <= lengths[name] <= hi, (name, lengths[name])
    assert lengths["middle"] == max(lengths[n] for n in ("index", "middle", "ring", "little"))
    knuckles = v[np.abs(v[:, 0] - 0.01) < 0.004]
    palm = knuckles[knuckles[:, 2] < j[FINGER_JOINTS["index"], 2] + 0.015]
    assert 0.08 <= np.ptp(palm[:, 2]) <= 0.09                        # palm width
    pip = j[FINGER_JOINTS["middle"] + 1]
    ring = v[np.abs(v[:, 0] - pip[0]) < 0.0015]
    ring = ring[np.abs(ring[:, 2] - pip[2]) < 0.013]
    assert 0.016 <= np.ptp(ring[:, 2]) <= 0.021                     # finger breadth at PIP


def test_joint_regressor(right):
    reg = right.J_regressor
    assert reg.shape == (NUM_SKIN_JOINTS, right.num_verts)
    assert reg.min() >= 0 and np.allclose(reg.sum(axis=1), 1.0, atol=1e-5)
    v = right.v_template.astype(np.float64)
    j = reg @ v
    assert ((j > v.min(axis=0)) & (j < v.max(axis=0))).all()
    assert (winding_numbers(v, right.faces, j) > 0.99).all()        # inside the surface
    for name, j0 in FINGER_JOINTS.items():
        bones = np.linalg.norm(np.diff(j[j0:j0 + 3], axis=0), axis=1)
        assert (bones > 0.015).all() and (bones < 0.05).all()
    for name in ("index", "middle", "ring", "little"):
        mcp = j[FINGER_JOINTS[name]]
        near = v[np.linalg.norm(v - mcp, axis=1) < 0.02]
        assert near[:, 1].max() > mcp[1] + 0.007 and near[:, 1].min() < mcp[1] - 0.007


def test_skinning_weights(right):
    w = right.weights
    assert w.min() >= 0 and np.allclose(w.sum(axis=1), 1.0, atol=1e-5)
    assert (w.max(axis=0) > 0.5).all()                               # every joint drives a part
    tips = right.tip_vertex_ids
    for name, k in TIP_INDEX.items():
        assert w[tips[k], FINGER_JOINTS[name] + 2] > 0.9


def test_tip_vertices_are_finger_extremes(right):
    v = right.v_template.astype(np.float64)
    j = right.J_regressor @ v
    for name, k in TIP_INDEX.items():
        dip = j[FINGER_JOINTS[name] + 2]
        tip = v[right.tip_vertex_ids[k]]
        axis = (tip - dip) / np.linalg.norm(tip - dip)
        j0 = FINGER_JOINTS[name]
        own = v[right.weights[:, j0:j0 + 3].sum(axis=1) > 0.5]
        assert (own @ axis).max() <= tip @ axis + 1e-9
        assert 0.015 < np.linalg.norm(tip - dip) < 0.035


# ----------------------------------------------------------------------------- posing
def test_fist_curls_fingers_towards_palm(right):
    rest_v, rest_j = B.skin_numpy(right, np.zeros(45))
    v, j = B.skin_numpy(right, typical_pose("fist"))
    tips, rest_tips = v[right.tip_vertex_ids], rest_v[right.tip_vertex_ids]
    for name in ("index", "middle", "ring", "little"):
        k, j0 = TIP_INDEX[name], FINGER_JOINTS[name]
        assert j[j0 + 1, 1] < j[j0, 1] - 0.025                      # PIP in front of the palm
        assert tips[k, 1] < j[j0, 1] - 0.005                          # tip on the palm side
        assert tips[k, 0] > rest_tips[k, 0] + 0.8 * finger_length(rest_j, rest_tips, name)
    angles = np.radians([0, 20, 40, 60, 80])
    ys = []
    for a in angles:                                                  # index MCP about +z only
        pose = np.zeros(45)
        pose[2] = a
        ys.append(B.skin_numpy(right, pose)[0][right.tip_vertex_ids[1], 1])
    assert (np.diff(ys) < 0).all()


@pytest.mark.parametrize("style", ["fist", "pinch", "point", "grasp", "spread"])
def test_posing_does_not_tear(right, style):
    f = right.faces
    e = directed_edges(f)
    rest = right.v_template.astype(np.float64)
    v, _ = B.skin_numpy(right, typical_pose(style))
    l0 = np.linalg.norm(rest[e[:, 0]] - rest[e[:, 1]], axis=1)
    l1 = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    assert 0.1 < (l1 / l0).min() and (l1 / l0).max() < 6.0
    assert l1.max() < 1.5 * l0.max()
    def area(x):
        return np.linalg.norm(np.cross(x[f[:, 1]] - x[f[:, 0]], x[f[:, 2]] - x[f[:, 0]]), axis=1).sum()

    assert 0.8 < area(v) / area(rest) < 1.2


def test_pinch_brings_thumb_to_index(right):
    rest, _ = B.skin_numpy(right, np.zeros(45))
    v, _ = B.skin_numpy(right, typical_pose("pinch"))
    t = right.tip_vertex_ids
    assert np.linalg.norm(rest[t[0]] - rest[t[1]]) > 0.06
    assert np.linalg.norm(v[t[0]] - v[t[1]]) < 0.012


# ----------------------------------------------------------------------------- shape, mirror
def _measures(data, v):
    j = data.J_regressor @ v
    tips = v[data.tip_vertex_ids]

    def near(jj, r):
        dist = np.linalg.norm(v - j[jj], axis=1)
        return dist[dist < r]

    mid = v[np.abs(v[:, 0] - 0.03) < 0.004]
    return {
        "scale": np.linalg.norm(tips[2] - j[0]),
        "finger_length": finger_length(j, tips, "middle"),
        "palm_width": np.linalg.norm(j[FINGER_JOINTS["index"]] - j[FINGER_JOINTS["little"]]),
        "finger_thickness": near(5, 0.0125).mean(),
        "thumb_length": finger_length(j, tips, "thumb"),
        "palm_length": np.linalg.norm(j[4] - j[0]),
        "palm_thickness": np.ptp(mid[mid[:, 2] < 0.03][:, 1]),
        "index_vs_ring": finger_length(j, tips, "index") / finger_length(j, tips, "ring"),
        "little_length": finger_length(j, tips, "little"),
        "finger_taper": -near(6, 0.011).mean() / near(5, 0.0125).mean(),
    }


def test_shape_directions_are_monotonic_and_independent(right):
    names = list(right.extras["shape_names"])
    assert names == list(_measures(right, right.v_template).keys())
    sd = right.shapedirs.astype(np.float64)
    assert np.linalg.matrix_rank(sd.reshape(-1, 10), tol=1e-6) == 10
    for k, name in enumerate(names):
        values = []
        for b in (-2.0, -1.0, 0.0, 1.0, 2.0):
            beta = np.zeros(10)
            beta[k] = b
            values.append(_measures(right, right.v_template + sd @ beta)[name])
        assert (np.diff(values) > 0).all(), (name, values)
    beta = np.zeros(10)
    beta[0] = 1.0
    grown = _measures(right, right.v_template + sd @ beta)["scale"]
    assert 1.04 < grown / _measures(right, right.v_template)["scale"] < 1.08


def test_left_is_exact_mirror(right, left):
    flip = np.array([-1.0, 1.0, 1.0])
    assert left.side == "left" and left.name == "builtin"
    np.testing.assert_array_equal(left.v_template, right.v_template * flip)
    np.testing.assert_array_equal(left.faces, right.faces[:, ::-1])
    np.testing.assert_array_equal(left.shapedirs, right.shapedirs * flip[None, :, None])
    np.testing.assert_array_equal(left.hands_mean, mirror_pose(right.hands_mean))
    np.testing.assert_array_equal(left.J_regressor, right.J_regressor)
    assert signed_volume(left.v_template.astype(np.float64), left.faces) > 0
    rng = np.random.default_rng(3)
    pose = sample_hand_pose(rng, 1, "right")[0]
    betas = rng.normal(size=10)
    vr, jr = B.skin_numpy(right, pose, betas, global_orient=np.array([0.3, -0.2, 0.5]))
    vl, jl = B.skin_numpy(left, mirror_pose(pose), betas, global_orient=np.array([0.3, 0.2, -0.5]))
    np.testing.assert_allclose(vl, vr * flip, atol=1e-9)
    np.testing.assert_allclose(jl, jr * flip, atol=1e-9)


def test_loader_returns_independent_copies():
    a = B.load_builtin_data("right")
    a.v_template[:] = 0.0
    b = B.load_builtin_data("right")
    assert np.abs(b.v_template).max() > 0.05
    with pytest.raises(ValueError, match="side"):
        B.load_builtin_data("both")


# ----------------------------------------------------------------------------- asset
def test_committed_asset_matches_generator(tmp_path):
    out = tmp_path / "hand.npz"
    assert B.main(["--out", str(out)]) == 0
    with np.load(B.ASSET_PATH) as committed, np.load(out) as fresh:
        assert sorted(committed.files) == sorted(fresh.files)
        for key in committed.files:
            assert committed[key].dtype == fresh[key].dtype, key
            if committed[key].dtype.kind == "f":
                # the PCA sees float32 poses from sin/cos, whose last bit may vary between CPUs
                tol = 1e-4 if key in ("hands_components", "hands_mean", "pca_std") else 1e-6
                np.testing.assert_allclose(committed[key], fresh[key], atol=tol, err_msg=key)
            else:
                np.testing.assert_array_equal(committed[key], fresh[key], err_msg=key)
    again = tmp_path / "again.npz"
    B.save_npz(again, B.generate_arrays())
    assert again.read_bytes() == out.read_bytes()                    # deterministic bytes
    assert B.ASSET_PATH.stat().st_size < 2_000_000


@pytest.mark.skipif(importlib.util.find_spec("interhand_perception.hand_model.layer") is None,
                    reason="torch hand layer not available")
def test_numpy_skinning_matches_torch_layer(right):
    torch = pytest.importorskip("torch")
    from interhand_perception.hand_model.layer import HandModel

    model = HandModel(right, flat_hand_mean=True).double()
    pose = sample_hand_pose(np.random.default_rng(5), 1, "right")[0].astype(np.float64)
    betas = np.random.default_rng(6).normal(size=10)
    out = model(torch.zeros(1, 3, dtype=torch.float64), torch.from_numpy(pose)[None],
                torch.from_numpy(betas)[None], pose_type="axis_angle")
    v, _ = B.skin_numpy(right, pose, betas)
    np.testing.assert_allclose(out.vertices[0].numpy(), v, atol=1e-5)
