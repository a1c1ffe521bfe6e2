"""Interpenetration volume and inside tests on meshes whose answers are worked out by hand."""
from __future__ import annotations

import time

import numpy as np
import pytest

from interhand_perception.evaluation.penetration_volume import (
    penetration_volume,
    penetration_volume_batch,
    overlap_grid,
    points_inside_mesh,
    winding_number,
)

from mesh_shapes import ellipsoid  # tests/mesh_shapes.py

CM = 0.01  # metres


def box_mesh(lo, hi):
    """Closed triangulated box: 8 vertices (corner i = x bit 1, y bit 2, z bit 4), 12
    triangles counter-clockwise seen from outside."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array([[(hi if i & 1 else lo)[0], (hi if i & 2 else lo)[1], (hi if i & 4 else lo)[2]]
                  for i in range(8)])
    f = np.array([[0, 2, 1], [1, 2, 3],  # -z
                  [4, 5, 6], [5, 7, 6],  # +z
                  [0, 1, 4], [1, 5, 4],  # -y
                  [2, 6, 3], [3, 6, 7],  # +y
                  [0, 4, 2], [2, 4, 6],  # -x
                  [1, 3, 5], [3, 7, 5]])  # +x
    return v, f


def signed_volume(v, f):
    """Divergence theorem: sum det(v0, v1, v2) / 6 (positive for outward faces)."""
    return np.linalg.det(v[f]).sum() / 6.0


def tetra():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return v, f


# ---------------------------------------------------------------------------- fixtures sanity

def test_fixtures_are_closed_and_outward():
    v, f = box_mesh([0, 0, 0], [2, 3, 4])
    assert signed_volume(v, f) == pytest.approx(24.0)  # 2 * 3 * 4
    v, f = tetra()
    assert signed_volume(v, f) == pytest.approx(1.0 / 6.0)
    v, f = ellipsoid([1.0, 1.0, 1.0])
    assert 0.95 * 4 / 3 * np.pi < signed_volume(v, f) < 4 / 3 * np.pi


# ---------------------------------------------------------------------------- inside tests

def test_winding_number_of_a_cube():
    v, f = box_mesh([0, 0, 0], [1, 1, 1])
    # at the centre each of the 6 faces subtends 4 pi / 6 -> w = 6 * (1/6) = 1
    assert winding_number([[0.5, 0.5, 0.5]], v, f)[0] == pytest.approx(1.0, abs=1e-12)
    # reversed faces -> -1; points_inside_mesh ignores the orientation
    assert winding_number([[0.5, 0.5, 0.5]], v, f[:, ::-1])[0] == pytest.approx(-1.0, abs=1e-12)
    assert points_inside_mesh([[0.5, 0.5, 0.5]], v, f[:, ::-1])[0]
    # outside: closed surface seen from outside -> 0
    assert winding_number([[0.5, 0.5, 3.0]], v, f)[0] == pytest.approx(0.0, abs=1e-12)
    # a hole (one face pair removed, like the open MANO wrist): 5 faces x 1/6 = 0.833 > 0.5
    assert winding_number([[0.5, 0.5, 0.5]], v, f[2:])[0] == pytest.approx(5 / 6, abs=1e-12)


def test_points_inside_cube():
    v, f = box_mesh([0, 0, 0], [1, 1, 1])
    pts = np.array([
        [0.5, 0.5, 0.5],  # centre: in
        [0.25, 0.25, 0.5],  # on the projection of the +-z faces' diagonal (x = y): in
        [0.75, 0.25, 0.9],  # in
        [0.999, 0.5, 0.5],  # just inside +x: in
        [1.001, 0.5, 0.5],  # just outside +x: out
        [-0.2, 0.5, 0.5],  # out
        [0.5, 0.5, 1.5],  # above: out
        [0.25, 0.25, -0.5],  # below, on the diagonal line: out
        [2.0, 2.0, 2.0],  # outside the bounding box: out
    ])
    expected = [True, True, True, True, False, False, False, False, False]
    np.testing.assert_array_equal(points_inside_mesh(pts, v, f), expected)


def test_points_inside_tetrahedron():
    v, f = tetra()  # inside iff x, y, z > 0 and x + y + z < 1
    pts = np.array([
        [0.1, 0.1, 0.1],  # sum 0.3: in
        [0.25, 0.25, 0.25],  # centroid, sum 0.75: in
        [0.3, 0.3, 0.3],  # sum 0.9: in
        [0.5, 0.2, 0.2],  # sum 0.9: in
        [0.4, 0.4, 0.4],  # sum 1.2: out
        [0.5, 0.3, 0.3],  # sum 1.1: out
        [-0.05, 0.2, 0.2],  # x < 0: out
        [0.2, 0.2, -0.01],  # z < 0: out
    ])
    expected = [True, True, True, True, False, False, False, False]
    np.testing.assert_array_equal(points_inside_mesh(pts, v, f), expected)
    assert winding_number([[0.25, 0.25, 0.25]], v, f)[0] == pytest.approx(1.0, abs=1e-12)


def test_winding_number_float32_agrees():
    v, f = ellipsoid(np.array([9.0, 4.5, 1.5]) * CM)
    v = v + [0.05, -0.1, 0.6]  # camera-frame-like position
    rng = np.random.default_rng(0)
    pts = v.mean(0) + rng.uniform(-1, 1, (500, 3)) * [0.1, 0.05, 0.02]
    w64 = winding_number(pts, v, f)
    w32 = winding_number(pts, v, f, dtype=np.float32)
    assert np.abs(w64 - w32).max() < 1e-2
    np.testing.assert_array_equal(np.abs(w64) > 0.5, np.abs(w32) > 0.5)


# ---------------------------------------------------------------------------- volumes

def test_overlapping_cubes_slab_is_32cm3():
    off = np.array([0.1, -0.05, 0.5])  # somewhere in the camera frame
    va, fa = box_mesh(np.array([0, 0, 0]) * CM + off, np.array([4, 4, 4]) * CM + off)
    vb, fb = box_mesh(np.array([2, 0, 0]) * CM + off, np.array([6, 4, 4]) * CM + off)
    # overlap box [2,4] x [0,4] x [0,4] cm; 0.5 cm grid from its corner: 4 x 8 x 8 = 256
    # centres at x = 2.25..3.75, y, z = 0.25..3.75 cm, all strictly inside both cubes
    # -> 256 voxels x 0.125 cm^3 = 32 cm^3 (the exact slab volume 2 * 4 * 4)
    assert len(overlap_grid(va, vb)) == 256
    assert penetration_volume(va, fa, vb, fb) == pytest.approx(32.0)
    assert penetration_volume(vb, fb, va, fa) == pytest.approx(32.0)  # symmetric
    # 1 cm voxels: 2 x 4 x 4 = 32 voxels x 1 cm^3 = 32 cm^3
    assert penetration_volume(va, fa, vb, fb, voxel=0.01) == pytest.approx(32.0)


def test_voxel_centres_decide_partial_layers():
    va, fa = box_mesh(np.zeros(3), np.array([4, 4, 4]) * CM)
    vb, fb = box_mesh(np.array([2.4, 0, 0]) * CM, np.array([6.4, 4, 4]) * CM)
    # overlap x in [2.4, 4] cm: ceil(1.6 / 0.5) = 4 layers, centres 2.65, 3.15, 3.65, 4.15;
    # 4.15 > 4 is outside A -> 3 layers x 8 x 8 = 192 voxels x 0.125 = 24 cm^3 (true 25.6)
    assert penetration_volume(va, fa, vb, fb) == pytest.approx(24.0)


def test_disjoint_meshes_have_zero_volume():
    va, fa = box_mesh(np.zeros(3), np.array([4, 4, 4]) * CM)
    vb, fb = box_mesh(np.array([5, 0, 0]) * CM, np.array([9, 4, 4]) * CM)
    assert len(overlap_grid(va, vb)) == 0  # boxes do not even overlap
    assert penetration_volume(va, fa, vb, fb) == 0.0
    # opposite corner tetrahedra of the same 4 cm cube: x+y+z < 4 cm and x+y+z > 8 cm;
    # the bounding boxes coincide (8 x 8 x 8 grid) but no centre is inside both
    ta = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 4]]) * CM
    tb = np.array([[4, 4, 4], [0, 4, 4], [4, 0, 4], [4, 4, 0]]) * CM
    ft = tetra()[1]
    assert len(overlap_grid(ta, tb)) == 512
    assert penetration_volume(ta, ft, tb, ft) == 0.0


def test_cube_inside_bigger_cube():
    va, fa = box_mesh(np.zeros(3), np.array([5, 5, 5]) * CM)
    vb, fb = box_mesh(np.array([1, 1, 1]) * CM, np.array([3, 3, 3]) * CM)
    # the grid covers the small cube: 4 x 4 x 4 = 64 voxels x 0.125 = 8 cm^3 = 2^3
    assert penetration_volume(va, fa, vb, fb) == pytest.approx(8.0)


def test_batch_and_unit_guard():
    va, fa = box_mesh(np.zeros(3), np.array([4, 4, 4]) * CM)
    vb, fb = box_mesh(np.array([2, 0, 0]) * CM, np.array([6, 4, 4]) * CM)
    vc, _ = box_mesh(np.array([5, 0, 0]) * CM, np.array([9, 4, 4]) * CM)
    iv = penetration_volume_batch(np.stack([va, va]), fa, np.stack([vb, vc]), fb)
    np.testing.assert_allclose(iv, [32.0, 0.0])  # slab case, disjoint case
    with pytest.raises(ValueError, match="metres"):
        penetration_volume(va * 1000, fa, vb * 1000, fb)  # millimetres by mistake


def test_hand_sized_meshes_volume_and_speed():
    r = np.array([9.0, 4.5, 1.5]) * CM  # a hand-sized ellipsoid: 1026 vertices, 2048 faces
    va, f = ellipsoid(r)
    assert len(va) == 1026 and len(f) == 2048
    # the same ellipsoid twice: IV ~ its volume 4/3 pi 9 * 4.5 * 1.5 = 254.5 cm^3
    iv_self = penetration_volume(va, f, va, f)
    assert iv_self == pytest.approx(4 / 3 * np.pi * 9 * 4.5 * 1.5, rel=0.05)
    # crossing pair (second one turned 90 degrees about z): timing of a typical call
    rot = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    vb = va @ rot.T + [0.01, 0.0, 0.005]
    t0 = time.perf_counter()
    iv = penetration_volume(va, f, vb, f)
    dt = time.perf_counter() - t0
    assert 0 < iv < iv_self
    assert dt < 2.0, f"IV of a hand-sized pair took {dt:.2f} s"  # ~0.1 s unloaded
