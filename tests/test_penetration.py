"""Runtime interpenetration measure and resolver (pipeline/penetration.py).

Hands come from ground-truth synthetic test scenes (``data.scene.sample_scene``: both hands
posed a few millimetres apart, no rendering); the right hand is pushed into the left by known
amounts. Two spheres give a case with a closed-form answer.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from interhand_perception.data.scene import sample_scene
from interhand_perception.data.synthetic import SyntheticConfig, load_models, sample_rng
from interhand_perception.evaluation.penetration_volume import penetration_volume
from interhand_perception.pipeline.penetration import (
    DEFAULT_TOL_MM,
    measure_penetration,
    resolve,
    translate_hands,
)
from interhand_perception.pipeline.placement import PlacedHands

from mesh_shapes import ellipsoid  # tests/mesh_shapes.py

MM = 1e-3


@pytest.fixture(scope="module")
def models():
    return load_models()


@pytest.fixture(scope="module")
def faces(models):
    return {"left": np.asarray(models[0].faces), "right": np.asarray(models[1].faces)}


def scene(models, index: int):
    """(verts (2, V, 3), joints (2, 21, 3), unit direction from the right hand's vertex centroid
    to the left's) of test scene ``index``."""
    cfg = SyntheticConfig(version=1)  # the fixed scenes these tests were written against
    s = sample_scene(sample_rng("test", index, 0, cfg.version), cfg, models)
    d = s.verts[0].mean(axis=0) - s.verts[1].mean(axis=0)
    return s.verts.astype(np.float64), s.joints.astype(np.float64), d / np.linalg.norm(d)


def pushed(verts, joints, direction, shift_mm: float):
    """Copies with the right hand moved ``shift_mm`` along ``direction``."""
    v, j = verts.copy(), joints.copy()
    v[1] += shift_mm * MM * direction
    j[1] += shift_mm * MM * direction
    return v, j


def placed_from(verts, joints) -> PlacedHands:
    wrist = joints[:, 0].copy()
    return PlacedHands(joints=joints.copy(), vertices=verts.astype(np.float32), wrist=wrist,
                       wrist_rotation=np.repeat(np.eye(3)[None], 2, axis=0),
                       wrist_quaternion=np.tile([0.0, 0.0, 0.0, 1.0], (2, 1)),
                       right_minus_left=wrist[1] - wrist[0], depth_from="assumed")


def voxel_iv(verts, faces) -> float:
    return penetration_volume(verts[0], faces["left"], verts[1], faces["right"])


def uv_sphere(radius: float, centre, n_rings: int = 30, n_seg: int = 48):
    """Closed UV sphere ((n_rings - 2) * n_seg + 2 vertices), faces counter-clockwise outside."""
    v, f = ellipsoid([radius] * 3, n_rings=n_rings, n_seg=n_seg)
    return v + np.asarray(centre, float), f


def lens_volume(r: float, d: float) -> float:
    """Intersection volume of two balls of radius r with centres d apart (0 < d < 2r)."""
    return np.pi * (2 * r - d) ** 2 * (d ** 2 + 4 * d * r) / (12 * d)


# ----------------------------------------------------------------------------- the measure

def test_hands_apart_give_exact_zero_quickly(models, faces):
    verts, _, _ = scene(models, 0)
    verts[1] += np.array([0.5, 0.0, 0.0])  # boxes disjoint
    m = measure_penetration(verts, faces)
    assert (m["volume_cm3"], m["max_depth_mm"], m["num_inside"]) == (0.0, 0.0, 0)
    assert m["depth_mm"].shape == (2, verts.shape[1]) and not m["depth_mm"].any()
    times = []
    for _ in range(20):
        t = time.perf_counter()
        measure_penetration(verts, faces)
        times.append(time.perf_counter() - t)
    assert np.median(times) < 2e-3


def test_ground_truth_scene_is_clear(models, faces):
    verts, _, _ = scene(models, 9)
    m = measure_penetration(verts, faces)
    assert m["volume_cm3"] < 0.05 and m["max_depth_mm"] < DEFAULT_TOL_MM
    assert voxel_iv(verts, faces) == 0.0


def test_volume_grows_with_shift_and_agrees_with_voxels(models, faces):
    """Agreement tolerance (docs/penetration.md, 200 pushed pairs): |fast - voxel| <=
    0.3 voxel + 1 cm^3 per pair, and the sums within 20%."""
    fast_all, iv_all = [], []
    for index in (0, 9, 13):
        verts, joints, d = scene(models, index)
        vols, depths = [], []
        for shift in (10.0, 20.0, 30.0, 40.0):
            v, _ = pushed(verts, joints, d, shift)
            m = measure_penetration(v, faces)
            iv = voxel_iv(v, faces)
            vols.append(m["volume_cm3"])
            depths.append(m["max_depth_mm"])
            fast_all.append(m["volume_cm3"])
            iv_all.append(iv)
            assert abs(m["volume_cm3"] - iv) <= 0.3 * iv + 1.0, (index, shift, m["volume_cm3"], iv)
            assert m["num_inside"] == int((m["depth_mm"] > 0).sum())
            assert m["max_depth_mm"] == pytest.approx(float(m["depth_mm"].max()), abs=1e-3)
        assert vols[1] > 0 and np.all(np.diff(vols) > 0), vols
        # depth is to the nearest surface: it grows, then saturates near half a finger/palm thickness
        assert 0 < depths[0] < depths[1] and min(depths[1:]) > 5.0, depths
    assert 0.8 < sum(fast_all) / sum(iv_all) < 1.2


def test_measure_is_fast_on_overlapping_hands(models, faces):
    verts, joints, d = scene(models, 9)
    v, _ = pushed(verts, joints, d, 30.0)
    v[1] = v[0] + 0.003  # the worst case: every vertex in the other hand's box
    measure_penetration(v, faces)
    times = []
    for _ in range(15):
        t = time.perf_counter()
        measure_penetration(v, faces)
        times.append(time.perf_counter() - t)
    assert np.median(times) < 25e-3  # a few ms when the CPU is not shared


def test_face_orientation_and_input_forms_do_not_matter(models, faces):
    verts, joints, d = scene(models, 9)
    v, _ = pushed(verts, joints, d, 20.0)
    ref = measure_penetration(v, faces)
    flipped = {s: f[:, ::-1] for s, f in faces.items()}
    as_lists = measure_penetration([v[0], v[1]], [faces["left"], faces["right"]])
    for m in (measure_penetration(v, flipped), as_lists):
        assert m["volume_cm3"] == pytest.approx(ref["volume_cm3"], rel=1e-9)
        assert m["max_depth_mm"] == pytest.approx(ref["max_depth_mm"], rel=1e-9)


def test_spheres_match_the_closed_form_lens():
    r = 0.05
    va, f = uv_sphere(r, [0, 0, 0])
    for dist in (0.09, 0.08, 0.06):
        vb, _ = uv_sphere(r, [dist, 0, 0])
        m = measure_penetration(np.stack([va, vb]), f)
        assert m["volume_cm3"] == pytest.approx(lens_volume(r, dist) * 1e6, rel=0.05)
        assert m["max_depth_mm"] == pytest.approx((2 * r - dist) * 1e3, rel=0.05)


# ----------------------------------------------------------------------------- the resolver

def test_resolve_separates_with_a_near_minimal_move(models, faces):
    verts, joints, d = scene(models, 9)
    shift = 20.0
    v, j = pushed(verts, joints, d, shift)
    placed = placed_from(v, j)
    out, rep = resolve(placed, faces)
    assert rep["before"]["volume_cm3"] > 5.0 and rep["converged"]
    after = measure_penetration(out.vertices, faces)
    assert after["max_depth_mm"] <= DEFAULT_TOL_MM
    assert after["volume_cm3"] == pytest.approx(rep["after"]["volume_cm3"], abs=1e-6)
    assert voxel_iv(out.vertices, faces) <= 0.25  # at most 2 voxels of 0.125 cm^3
    # moving back by `shift` is enough, so the needed separation is at most that
    assert rep["moved_mm"] <= 1.25 * shift
    # minimal along the chosen direction: 2 mm less still penetrates
    back = translate_hands(out, -rep["shift"] * (2.0 / rep["moved_mm"]))
    assert measure_penetration(back.vertices, faces)["max_depth_mm"] > DEFAULT_TOL_MM


def test_resolve_finds_the_exact_separation_of_spheres():
    r, dist = 0.05, 0.08
    va, f = uv_sphere(r, [0, 0, 0])
    vb, _ = uv_sphere(r, [dist, 0, 0])
    joints = np.stack([np.zeros((21, 3)), np.tile([dist, 0, 0], (21, 1))])
    out, rep = resolve(placed_from(np.stack([va, vb]), joints), f)
    need_mm = (2 * r - dist) * 1e3
    assert need_mm - 2.0 <= rep["moved_mm"] <= need_mm + 1.0
    assert abs(rep["direction"] @ [1.0, 0.0, 0.0]) > 0.99
    np.testing.assert_allclose(rep["shift"][0], -rep["shift"][1])  # each hand moves half


def test_resolve_keeps_everything_consistent(models, faces):
    verts, joints, d = scene(models, 0)
    v, j = pushed(verts, joints, d, 25.0)
    placed = placed_from(v, j)
    snapshot = (placed.joints.copy(), placed.vertices.copy(), placed.wrist.copy())
    out, rep = resolve(placed, faces)
    assert rep["moved_mm"] > 0
    shift = rep["shift"]  # (2, 3)
    np.testing.assert_allclose(shift[0], -shift[1])
    assert np.linalg.norm(shift[1] - shift[0]) * 1e3 == pytest.approx(rep["moved_mm"])
    np.testing.assert_allclose(out.joints - placed.joints, np.broadcast_to(shift[:, None], placed.joints.shape),
                               atol=1e-12)
    np.testing.assert_allclose(out.vertices - placed.vertices,
                               np.broadcast_to(shift[:, None], placed.vertices.shape), atol=1e-6)
    np.testing.assert_allclose(out.wrist, placed.wrist + shift)
    np.testing.assert_allclose(out.wrist, out.joints[:, 0])
    np.testing.assert_allclose(out.right_minus_left, out.wrist[1] - out.wrist[0])
    np.testing.assert_allclose(out.right_minus_left - placed.right_minus_left,
                               rep["moved_mm"] * MM * rep["direction"])
    assert out.vertices.dtype == np.float32
    assert out.wrist_rotation is placed.wrist_rotation and out.depth_from == placed.depth_from
    for a, b in zip(snapshot, (placed.joints, placed.vertices, placed.wrist)):  # input untouched
        np.testing.assert_array_equal(a, b)


def test_resolve_is_a_no_op_without_penetration(models, faces):
    verts, joints, _ = scene(models, 9)
    for v in (verts, verts + np.array([[0.0, 0, 0], [0.5, 0, 0]])[:, None]):
        placed = placed_from(v, joints)
        out, rep = resolve(placed, faces)
        assert out is placed and rep["moved_mm"] == 0.0 and rep["converged"]
        assert rep["direction"] is None and not rep["shift"].any()


def test_mode_none_measures_only(models, faces):
    verts, joints, d = scene(models, 9)
    placed = placed_from(*pushed(verts, joints, d, 20.0))
    out, rep = resolve(placed, faces, mode="none")
    assert out is placed and rep["moved_mm"] == 0.0 and not rep["converged"]
    assert rep["before"] == rep["after"] and rep["before"]["volume_cm3"] > 0
    with pytest.raises(ValueError, match="mode"):
        resolve(placed, faces, mode="fingers")


# ----------------------------------------------------------------------------- the report

def test_report_row_and_summary(models, faces):
    from interhand_perception.evaluation.penetration_report import (
        format_penetration_report, mrrpe_mm, sample_row, summarise)

    verts, joints, d = scene(models, 9)
    v, j = pushed(verts, joints, d, 20.0)
    row = sample_row(placed_from(v, j), faces, verts, joints)
    assert row["iv_before"] > 1.0 and row["iv_after"] <= 0.25 and row["iv_gt"] == 0.0
    assert row["fast_after"] < 0.1 and row["depth_after"] <= DEFAULT_TOL_MM
    # the ground truth's right_minus_left is off by the push before, by the push - the move after
    assert row["mrrpe_before"] == pytest.approx(20.0, abs=1e-6)
    assert row["mrrpe_after"] <= row["mrrpe_before"] + row["moved_mm"] + 1e-6
    assert mrrpe_mm(joints[1, 0] - joints[0, 0], joints) == 0.0
    rep = {"summary": summarise([row, row]), "checkpoint": "x"}
    assert rep["summary"]["iv_before"]["mean"] == row["iv_before"]
    assert "| voxel IV before (cm^3) |" in format_penetration_report(rep)


# ----------------------------------------------------------------------------- in the node's post-processing
def test_post_processing_measures_only_when_read_unless_it_resolves(models, faces, monkeypatch):
    """resolve_penetration off: the frame's path does not pay for the measure (~2.4 ms); the
    report measures the published vertices when first read (the node: once per diagnostics
    period) and keeps the value. On: measured and resolved in the frame, as before."""
    from interhand_perception.pipeline import postprocess
    from interhand_perception.pipeline.frame import FrameResult
    from interhand_perception.pipeline.placement import Intrinsics

    def frame_of(placed):
        return FrameResult(placed=placed, result=None, box=np.zeros(3), confidence=np.ones(2),
                           pose=np.zeros((2, 48)), betas=np.zeros((2, 10)))

    verts, joints, d = scene(models, 9)
    v, j = pushed(verts, joints, d, 20.0)
    frame = frame_of(placed_from(v, j))
    calls = []
    real = postprocess.measure_penetration
    monkeypatch.setattr(postprocess, "measure_penetration", lambda *a: calls.append(1) or real(*a))
    both = np.array([True, True])
    intr = Intrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)

    lazy = postprocess.PostProcessor(postprocess.PostConfig(smoothing=False), faces)
    out, _valid, report = lazy(frame, both, 0.0, intr)
    assert calls == []
    want = real(out.placed.vertices, faces)["volume_cm3"]
    out.placed.vertices[:] = 0.0  # the caller's arrays may change afterwards: the report kept a copy
    values = report["penetration"].values()
    assert calls == [1] and report["penetration"].values() is values
    assert values["penetration_cm3"] == pytest.approx(want) and values["penetration_cm3"] > 5.0
    assert values["penetration_after_cm3"] == values["penetration_cm3"] and values["separation_mm"] == 0.0

    frame = frame_of(placed_from(v, j))
    eager = postprocess.PostProcessor(postprocess.PostConfig(smoothing=False, resolve_penetration=True), faces)
    _out, _valid, report = eager(frame, both, 0.0, intr)
    assert calls == [1, 1]
    values = report["penetration"].values()
    assert values["penetration_cm3"] > 5.0 and values["penetration_after_cm3"] <= 0.5 and values["separation_mm"] > 0
    _out, _valid, report = eager(frame, np.array([True, False]), 0.0, intr)
    assert "penetration" not in report  # one hand: nothing to measure
