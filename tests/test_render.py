"""Tests of the numpy z-buffer rasteriser against a brute-force reference and analytic cases."""
from __future__ import annotations

import numpy as np
import pytest

from interhand_perception.data.render import (
    concat_meshes, interpolate, project, rasterize, shade, vertex_normals)

K = np.array([[60.0, 0.0, 20.0], [0.0, 55.0, 16.0], [0.0, 0.0, 1.0]])
SIZE = (32, 40)


def _brute_force(verts, faces, K, size):
    """Per-pixel, per-triangle reference: ray casting through each pixel centre."""
    h, w = size
    depth = np.full((h, w), np.inf)
    fid = np.full((h, w), -1)
    bary = np.zeros((h, w, 3))
    kinv = np.linalg.inv(K)
    for i in range(h):
        for j in range(w):
            ray = kinv @ np.array([j + 0.5, i + 0.5, 1.0])
            for f, (a, b, c) in enumerate(faces):
                # solve a + s (b - a) + t (c - a) = d * ray
                m = np.stack([verts[b] - verts[a], verts[c] - verts[a], -ray], axis=1)
                if abs(np.linalg.det(m)) < 1e-12:
                    continue
                s, t, d = np.linalg.solve(m, -verts[a])
                if s >= 0 and t >= 0 and s + t <= 1 and d > 0:
                    z = d * ray[2]
                    if z < depth[i, j]:
                        depth[i, j], fid[i, j] = z, f
                        bary[i, j] = (1 - s - t, s, t)
    return depth, fid, bary


@pytest.fixture
def triangles():
    rng = np.random.default_rng(3)
    verts = np.concatenate([
        rng.uniform([-0.25, -0.25, 0.8], [0.25, 0.25, 1.4], size=(3, 3)),
        rng.uniform([-0.25, -0.25, 0.8], [0.25, 0.25, 1.4], size=(3, 3)),
        np.array([[-0.2, -0.2, 1.0], [0.3, -0.1, 1.3], [0.0, 0.3, 0.7]]),  # tilted, crosses others
        np.array([[0.5, 0.5, 1.0], [0.6, 0.5, 1.0], [0.5, 0.6, 1.0]]),  # outside the image
    ])
    faces = np.arange(12).reshape(4, 3)
    return verts, faces


def test_matches_brute_force(triangles):
    verts, faces = triangles
    r = rasterize(verts, faces, K, SIZE)
    depth, fid, bary = _brute_force(verts, faces, K, SIZE)
    assert r.depth.shape == SIZE and r.face_id.dtype == np.int32 and r.bary.shape == SIZE + (3,)
    # identical coverage and winners except possibly on exact edges
    agree = r.face_id == fid
    assert agree.mean() > 0.995
    both = agree & (fid >= 0)
    assert both.sum() > 100
    np.testing.assert_allclose(r.depth[both], depth[both], rtol=1e-5)
    np.testing.assert_allclose(r.bary[both], bary[both], atol=1e-5)
    assert np.all(np.isinf(r.depth[r.face_id < 0]))
    assert np.all(r.bary[r.face_id < 0] == 0)
    np.testing.assert_allclose(r.bary[r.face_id >= 0].sum(-1), 1.0, atol=1e-5)


def test_occlusion_order():
    near = np.array([[-1, -1, 2.0], [1, -1, 2.0], [0, 1, 2.0]])
    far = near * [1, 1, 0] + [0, 0, 3.0]
    far = far * [1.5, 1.5, 1]
    for order in (0, 1):
        meshes = [(near, [[0, 1, 2]]), (far, [[0, 1, 2]])]
        if order:
            meshes = meshes[::-1]
        v, f, label = concat_meshes(meshes)
        r = rasterize(v, f, K, SIZE)
        centre = label[r.face_id[16, 20]]
        assert centre == (0 if order == 0 else 1)  # the near triangle wins
        assert r.depth[16, 20] == pytest.approx(2.0)
        assert r.mask.sum() > 50


def _cube(side, z):
    c = np.array([[x, y, w] for x in (-1, 1) for y in (-1, 1) for w in (-1, 1)], float)
    verts = c * side / 2 + [0, 0, z]
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = []
    for a, b, c_, d in quads:
        faces += [(a, b, c_), (a, c_, d)]
    faces = np.array(faces)
    # orient outwards
    n = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    out = verts[faces].mean(1) - [0, 0, z]
    flip = (n * out).sum(1) < 0
    faces[flip] = faces[flip][:, ::-1]
    return verts, faces


@pytest.mark.parametrize("cull", [False, True])
def test_cube_projected_area(cull):
    f, s, z = 200.0, 0.1, 1.0
    Kc = np.array([[f, 0, 64.0], [0, f, 64.0], [0, 0, 1]])
    verts, faces = _cube(s, z)
    r = rasterize(verts, faces, Kc, (128, 128), cull_backfaces=cull)
    side_px = f * s / (z - s / 2)
    assert abs(r.mask.sum() - side_px ** 2) <= 4 * side_px + 4
    assert r.depth[64, 64] == pytest.approx(z - s / 2, abs=1e-6)


def test_perspective_correct_barycentrics():
    """Interpolated camera points re-project onto their pixel centres."""
    verts = np.array([[-0.3, -0.2, 0.5], [0.4, -0.1, 2.5], [0.0, 0.4, 1.0]])
    faces = np.array([[0, 1, 2]])
    r = rasterize(verts, faces, K, SIZE)
    pts = interpolate(verts, faces, r)[r.mask]
    ii, jj = np.nonzero(r.mask)
    np.testing.assert_allclose(project(pts, K), np.stack([jj + 0.5, ii + 0.5], 1), atol=1e-3)
    np.testing.assert_allclose(pts[:, 2], r.depth[r.mask], rtol=1e-5)


def test_large_triangle_chunks(monkeypatch):
    import interhand_perception.data.render as render
    verts = np.array([[-5, -5, 1.0], [5, -5, 1.0], [0, 5, 1.0], [-5, -5, 2.0], [5, 5, 2.0], [-5, 5, 2.0]])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    ref = rasterize(verts, faces, K, SIZE)
    monkeypatch.setattr(render, "_CHUNK_PAIRS", 100)
    small = render.rasterize(verts, faces, K, SIZE)
    np.testing.assert_array_equal(ref.face_id, small.face_id)
    assert ref.mask.all()


def test_normals_and_shading():
    verts, faces = _cube(0.1, 1.0)
    n = vertex_normals(verts, faces)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
    corner_dir = (verts - [0, 0, 1.0]) / np.linalg.norm(verts - [0, 0, 1.0], axis=1, keepdims=True)
    assert np.all((n * corner_dir).sum(1) > 0.9)  # outward, roughly along the diagonal
    pts = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    normals = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    c = shade(normals, pts, np.full(3, 0.5), np.array([[0.0, 0.0, -1.0]]), np.ones((1, 3)),
              np.full(3, 0.2), specular=0.0)
    np.testing.assert_allclose(c[0], 0.5 * 1.2, rtol=1e-6)  # facing the light
    np.testing.assert_allclose(c[1], 0.5 * 0.2, rtol=1e-6)  # grazing: ambient only
