"""Fast hand-hand interpenetration measure and a translation resolver (per frame, CPU).

The evaluation's interpenetration volume (:mod:`evaluation.penetration_volume`: 5 mm voxels,
generalised winding number) costs 10-300 ms per pair. Here a few milliseconds suffice.

**Inside test and depth (nearest-vertex signed distance).** For a vertex ``p`` of one hand, let
``q`` be the nearest vertex of the other hand (k-d tree) and ``n_q`` that hand's outward unit
vertex normal (area-weighted mean of the adjacent face normals). The signed distance to the
tangent plane at ``q`` is ``s = (p - q) . n_q``; ``p`` is inside when ``s < 0`` and its
penetration depth is ``-s`` (exact near a locally flat surface; misjudged only within about a
vertex spacing, ~3 mm, of an edge or a fingertip). Being a distance to the *nearest* surface,
the depth saturates at about half the thickness of the part it is in. Only vertices inside
the other hand's axis-aligned bounding box are tested; when the two boxes do not overlap the
measure is exactly 0 and nothing else is computed.

**Volume (divergence theorem).** The intersection ``R = A n B`` of two closed hands is bounded
by the part of A's surface inside B and the part of B's surface inside A, each with its own
outward normal (which is also outward for R). Hence ``vol(R) = 1/3 \\oint (x - c) . n dS``
for any point ``c``, discretised over the inside vertices with their Voronoi-like areas
``a_i`` (a third of the adjacent triangles' area)::

    volume = 1/3 * sum_{i inside the other hand} a_i (x_i - c) . n_i

with ``c`` the mean of the inside vertices (it limits the error of the ragged seam). On
synthetic scenes with one hand pushed 1-4 cm into the other this agrees with the voxel volume
without any fitted factor (docs/penetration.md); it is clamped at 0. For an open mesh (MANO,
open at the wrist) the formula misses the hole's cap, which only matters when the wrists
themselves overlap. Face orientation does not matter: normals are flipped when the mesh's
signed volume ``sum det(v0, v1, v2) / 6`` is negative.

**Resolver (mode "translate").** Moving the right hand by ``+t u / 2`` and the left by
``-t u / 2`` changes the signed distance of a left vertex inside the right hand by
``-t (u . n_q)`` and of a right vertex inside the left hand by ``+t (u . n_q)``: each
penetrating vertex has a relative push direction ``g_i`` (``-n_q``, resp. ``+n_q``) and, to first
order, gets out after ``t_i = depth_i / (u . g_i)``. Candidate directions: the mean push
``u ~ sum a_i depth_i g_i`` (else the centroid, then the wrist difference, when it cancels) and,
when pushes disagree (``|sum a d g| < 0.5 sum a d``: a deep overlap), both signs of the
thinnest principal axis of the penetrating vertices (flat hands on each other overlap least
across the palms). Along each fixed ``u``, ``t`` grows by ``max_i t_i`` (at least 1 mm and half
the distance travelled) until no vertex is deeper than ``tol_mm``, then bisection shrinks the
bracket to 4 mm; the candidate needing the smallest ``t`` is bisected to ``resolution_mm``, so the
move is minimal along its ``u`` to within that. Translating only offsets the k-d tree queries.
Joints, vertices and wrists move with their hand, rotations are kept, ``right_minus_left``
gains ``t u``.

Future work: a finger-adjustment mode (bend the penetrating fingers, as Im2Hands-style
refinement does) instead of moving whole hands; a direction prior from the image (the
network's relative depth is the least certain part of the placement).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence, Union

import numpy as np
from scipy.spatial import cKDTree

#: Faces of the two hands: {"left": (F, 3), "right": (F, 3)}, a (left, right) pair, or one (F, 3).
Faces = Union[Mapping[str, np.ndarray], Sequence[np.ndarray], np.ndarray]
MODES: tuple[str, ...] = ("translate", "none")
#: A pair counts as separated when no vertex is deeper than this inside the other hand (mm).
DEFAULT_TOL_MM = 1.0
#: Bisection stops when the bracket on the separation is this short (mm).
DEFAULT_RESOLUTION_MM = 0.5
_MIN_STEP = 1e-3  # metres
_MIN_COS = 0.25  # vertices pushed at more than ~75 deg from u do not set the linear step
_COARSE_MM = 4.0  # resolution at which the candidate directions are compared
_COHERENT = 0.5  # push coherence above which the push direction is used alone


@dataclass(frozen=True)
class HandSurface:
    """One hand mesh prepared for the inside test.

    Attributes:
        vertices: (V, 3) float64 metres.
        normals: (V, 3) outward unit vertex normals.
        areas: (V,) vertex areas (a third of the adjacent triangles' area), m^2.
        lo, hi: (3,) bounding box corners.
        tree: k-d tree over ``vertices``.
    """

    vertices: np.ndarray
    normals: np.ndarray
    areas: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    tree: cKDTree


@dataclass(frozen=True)
class Contact:
    """Penetration of a pair when the right hand is offset by ``offset`` (left hand fixed).

    Attributes:
        offset: (3,) metres added to the right hand.
        depth: (2, V) metres, > 0 for vertices inside the other hand (index 0 = left).
        push: (2, V, 3) relative push directions ``g_i`` (see the module docstring); zero
            for vertices that are not inside.
        volume_cm3, max_depth_mm, num_inside: the summary.
    """

    offset: np.ndarray
    depth: np.ndarray
    push: np.ndarray
    volume_cm3: float
    max_depth_mm: float
    num_inside: int


def vertex_normals_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward unit vertex normals and vertex areas of a triangle mesh.

    Args:
        vertices: (V, 3) metres.
        faces: (F, 3) int triangles, either consistent orientation.
    Returns:
        normals (V, 3) (flipped if the mesh's signed volume is negative), areas (V,) m^2.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    v0, v1, v2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    fn = np.cross(v1 - v0, v2 - v0)  # (F, 3), |fn| = 2 * area
    face_area = 0.5 * np.linalg.norm(fn, axis=1)
    idx = f.ravel()
    n = len(v)
    normals = np.stack([np.bincount(idx, np.repeat(fn[:, k], 3), minlength=n) for k in range(3)], axis=1)
    areas = np.bincount(idx, np.repeat(face_area / 3.0, 3), minlength=n)
    if np.einsum("ij,ij->", v0, np.cross(v1, v2)) < 0:  # 6 x signed volume
        normals = -normals
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-15)
    return normals, areas


def hand_surface(vertices: np.ndarray, faces: np.ndarray) -> HandSurface:
    """:class:`HandSurface` of (V, 3) vertices (metres) and (F, 3) faces."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    normals, areas = vertex_normals_areas(v, faces)
    return HandSurface(v, normals, areas, v.min(axis=0), v.max(axis=0), cKDTree(v))


def boxes_overlap(lo_a: np.ndarray, hi_a: np.ndarray, lo_b: np.ndarray, hi_b: np.ndarray) -> bool:
    """Whether two axis-aligned boxes (each (3,) corners) overlap with positive volume."""
    return bool(np.all(np.minimum(hi_a, hi_b) > np.maximum(lo_a, lo_b)))


def _inside_depth(points: np.ndarray, other: HandSurface) -> tuple[np.ndarray, np.ndarray]:
    """Depth of points inside ``other`` and the normal at their nearest vertex.

    Args:
        points: (P, 3) metres, in ``other``'s frame.
    Returns:
        depth (P,) metres (0 outside), normal (P, 3) (zero outside).
    """
    depth = np.zeros(len(points))
    normal = np.zeros((len(points), 3))
    cand = np.nonzero(np.all((points >= other.lo) & (points <= other.hi), axis=1))[0]
    if len(cand):
        _, j = other.tree.query(points[cand])
        s = np.einsum("ij,ij->i", points[cand] - other.vertices[j], other.normals[j])
        ins = s < 0
        depth[cand[ins]] = -s[ins]
        normal[cand[ins]] = other.normals[j[ins]]
    return depth, normal


def _empty_contact(offset: np.ndarray, n: int) -> Contact:
    """A :class:`Contact` without any penetration (hands of ``n`` vertices)."""
    return Contact(offset, np.zeros((2, n)), np.zeros((2, n, 3)), 0.0, 0.0, 0)


def contact(left: HandSurface, right: HandSurface, offset: np.ndarray | None = None) -> Contact:
    """Penetration of ``left`` and ``right`` shifted by ``offset`` (module docstring).

    Args:
        left, right: the two hands (same vertex count).
        offset: (3,) metres added to the right hand; None = 0.
    Returns:
        :class:`Contact`.
    """
    off = np.zeros(3) if offset is None else np.asarray(offset, dtype=np.float64).reshape(3)
    if not boxes_overlap(left.lo, left.hi, right.lo + off, right.hi + off):
        return _empty_contact(off, len(left.vertices))
    d_left, n_left = _inside_depth(left.vertices - off, right)  # left vertices in the right hand
    d_right, n_right = _inside_depth(right.vertices + off, left)
    depth = np.stack([d_left, d_right])
    push = np.stack([-n_left, n_right])
    ins_l, ins_r = d_left > 0, d_right > 0
    num = int(ins_l.sum() + ins_r.sum())
    if num == 0:
        return _empty_contact(off, len(left.vertices))
    pts = np.concatenate([left.vertices[ins_l], right.vertices[ins_r] + off])
    nrm = np.concatenate([left.normals[ins_l], right.normals[ins_r]])
    area = np.concatenate([left.areas[ins_l], right.areas[ins_r]])
    vol = np.einsum("ij,ij,i->", pts - pts.mean(axis=0), nrm, area) / 3.0
    return Contact(off, depth, push, max(float(vol), 0.0) * 1e6, float(depth.max()) * 1e3, num)


def _as_pair(vertices: Any, faces: Faces) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(left, right) float64 (V, 3) vertex arrays and (left, right) (F, 3) face arrays.

    Args:
        vertices: (2, V, 3) or a pair of (V, 3), index 0 = left.
        faces: see :data:`Faces`.
    """
    verts = [np.asarray(v, dtype=np.float64).reshape(-1, 3) for v in vertices]
    if len(verts) != 2:
        raise ValueError(f"expected two hands (left, right), got {len(verts)}")
    single = isinstance(faces, np.ndarray) and faces.ndim == 2
    pair = [faces["left"], faces["right"]] if isinstance(faces, Mapping) else [faces] * 2 if single else faces
    fcs = [np.asarray(f) for f in pair]
    if len(verts[0]) != len(verts[1]):
        raise ValueError(f"both hands need the same vertex count, got {len(verts[0])} and {len(verts[1])}")
    return verts, fcs


def surfaces(vertices: Any, faces: Faces) -> tuple[HandSurface, HandSurface] | None:
    """Both hands' :class:`HandSurface`, or None (nothing built) when their bounding boxes
    do not overlap. ``vertices``: (2, V, 3) metres, index 0 = left."""
    verts, fcs = _as_pair(vertices, faces)
    (lo_l, lo_r), (hi_l, hi_r) = (v.min(axis=0) for v in verts), (v.max(axis=0) for v in verts)
    if not boxes_overlap(lo_l, hi_l, lo_r, hi_r):
        return None
    return hand_surface(verts[0], fcs[0]), hand_surface(verts[1], fcs[1])


def summary(c: Contact, per_vertex: bool = True) -> dict:
    """The public dict of a :class:`Contact`: volume_cm3, max_depth_mm, num_inside and, with
    ``per_vertex``, depth_mm ((2, V) float32 per-vertex depth, 0 outside; index 0 = left)."""
    out = {"volume_cm3": c.volume_cm3, "max_depth_mm": c.max_depth_mm, "num_inside": c.num_inside}
    return {**out, "depth_mm": (c.depth * 1e3).astype(np.float32)} if per_vertex else out


def measure_penetration(vertices: Any, faces: Faces) -> dict:
    """Fast interpenetration of two hands (a few ms; exactly 0 when the boxes are disjoint).

    Args:
        vertices: (2, V, 3) metres (index 0 = left, 1 = right), or a pair of (V, 3).
        faces: {"left": (F, 3), "right": (F, 3)} (e.g. ``HandReconstructor.faces``), a pair,
            or one (F, 3) array for both.
    Returns:
        ``{"volume_cm3": float, "max_depth_mm": float, "num_inside": int,
        "depth_mm": (2, V) float32}`` (see :func:`summary`).
    """
    pair = surfaces(vertices, faces)
    if pair is None:
        return summary(_empty_contact(np.zeros(3), len(np.asarray(vertices[0]).reshape(-1, 3))))
    return summary(contact(*pair))


def push_direction(c: Contact, left: HandSurface, right: HandSurface,
                   wrists: np.ndarray | None = None) -> tuple[np.ndarray, str, float]:
    """Unit direction ``u`` along which the right hand should move away from the left.

    ``u ~ sum_i a_i depth_i g_i`` over penetrating vertices ("push"); if that mean is shorter
    than 20% of ``sum a_i depth_i`` (pushes cancel), the vertex centroid difference right - left
    ("centroid"), then the wrist difference ``wrists[1] - wrists[0]`` ((2, 3), optional,
    "wrist"), then +x ("x").

    Returns:
        ((3,) float64 unit vector, its source name, coherence ``|sum a d g| / sum a d`` in
        [0, 1]: 1 when every vertex is pushed the same way).
    """
    w = np.stack([left.areas, right.areas]) * c.depth  # (2, V)
    total = float(w.sum())
    mean = np.einsum("hv,hvk->k", w, c.push)
    coherence = float(np.linalg.norm(mean)) / total if total > 0 else 0.0
    if coherence >= 0.2:
        return mean / np.linalg.norm(mean), "push", coherence
    candidates = [(right.vertices.mean(axis=0) + c.offset - left.vertices.mean(axis=0), "centroid")]
    if wrists is not None:
        wr = np.asarray(wrists, dtype=np.float64)
        candidates.append((wr[1] - wr[0] + c.offset, "wrist"))
    for d, name in candidates:
        if np.linalg.norm(d) > 1e-3:
            return d / np.linalg.norm(d), name, coherence
    return np.array([1.0, 0.0, 0.0]), "x", coherence


def candidate_directions(c: Contact, left: HandSurface, right: HandSurface,
                         wrists: np.ndarray | None = None) -> list[tuple[np.ndarray, str]]:
    """Directions the resolver tries: :func:`push_direction` and, when its coherence is below
    0.5 (a deep or tangled overlap), both signs of the thinnest principal axis of the
    penetrating vertices ("thin+", "thin-"; two flat hands lying on each other overlap least
    across the palms). Near-duplicates (cosine > 0.95) are dropped.

    Returns:
        list of ((3,) unit vector, name), the push direction first.
    """
    u, name, coherence = push_direction(c, left, right, wrists)
    out = [(u, name)]
    if coherence >= _COHERENT:
        return out
    pts = np.concatenate([left.vertices[c.depth[0] > 0], right.vertices[c.depth[1] > 0] + c.offset])
    if len(pts) >= 4:
        _, vecs = np.linalg.eigh(np.cov(pts.T))
        for u, name in ((vecs[:, 0], "thin+"), (-vecs[:, 0], "thin-")):
            if all(float(u @ v) < 0.95 for v, _ in out):
                out.append((u, name))
    return out


def linear_step(c: Contact, u: np.ndarray) -> float:
    """First-order separation still needed along ``u`` (metres): ``max_i depth_i / (u . g_i)``
    over penetrating vertices with ``u . g_i > 0.25``; 0 when there are none."""
    cos = c.push @ u  # (2, V)
    ok = (c.depth > 0) & (cos > _MIN_COS)
    return float((c.depth[ok] / cos[ok]).max()) if ok.any() else 0.0


@dataclass
class Bracket:
    """Search state along ``u``: ``t_lo`` penetrates (contact ``c_lo``), ``t_hi`` (None until
    found) is separated (contact ``c_hi``); ``evals`` measure evaluations so far."""

    u: np.ndarray
    name: str
    t_lo: float
    c_lo: Contact
    t_hi: float | None = None
    c_hi: Contact | None = None
    evals: int = 0


def search_along(left: HandSurface, right: HandSurface, b: Bracket, base: np.ndarray,
                 tol_mm: float, max_evals: int, resolution_mm: float) -> Bracket:
    """Bracket, then bisect, the smallest separating ``t`` along ``b.u`` (updates ``b``).

    While no separated ``t`` is known, ``t`` grows from ``t_lo`` by :func:`linear_step` (at
    least 1 mm and half the distance travelled); then ``[t_lo, t_hi]`` is bisected until it is
    shorter than ``resolution_mm``. At most ``max_evals`` evaluations in all (``b.evals``).

    Args:
        base: (3,) offset of the right hand at ``t = 0`` (metres).
    """
    while b.evals < max_evals and (b.t_hi is None or (b.t_hi - b.t_lo) * 1e3 > resolution_mm):
        if b.t_hi is None:
            t = b.t_lo + max(linear_step(b.c_lo, b.u), _MIN_STEP, 0.5 * b.t_lo)
        else:
            t = 0.5 * (b.t_lo + b.t_hi)
        c_t = contact(left, right, base + t * b.u)
        b.evals += 1
        if c_t.max_depth_mm <= tol_mm:
            b.t_hi, b.c_hi = t, c_t
        else:
            b.t_lo, b.c_lo = t, c_t
    return b


def separate(left: HandSurface, right: HandSurface, start: Contact, tol_mm: float, max_iters: int,
             resolution_mm: float, wrists: np.ndarray | None = None) -> tuple[Bracket, int]:
    """Smallest relative shift over :func:`candidate_directions`.

    Each candidate is bracketed and bisected to ``_COARSE_MM`` (``max_iters`` evaluations
    each); the one separated with the smallest ``t`` (or, if none is, the least deep) is then
    bisected to ``resolution_mm`` (up to ``max_iters`` more evaluations).

    Returns:
        (the winning :class:`Bracket`, total measure evaluations).
    """
    base = start.offset
    coarse = max(_COARSE_MM, resolution_mm)
    runs = []
    for u, name in candidate_directions(start, left, right, wrists):
        runs.append(search_along(left, right, Bracket(u, name, 0.0, start), base, tol_mm, max_iters, coarse))
    done = [b for b in runs if b.t_hi is not None]
    best = min(done, key=lambda b: b.t_hi) if done else min(runs, key=lambda b: b.c_lo.max_depth_mm)
    search_along(left, right, best, base, tol_mm, best.evals + max_iters, resolution_mm)
    return best, sum(b.evals for b in runs)


def translate_hands(placed: Any, shift: np.ndarray) -> Any:
    """A copy of a :class:`~.placement.PlacedHands` with hand ``h`` moved by ``shift[h]``.

    Args:
        placed: PlacedHands (joints (2, 21, 3), vertices (2, V, 3), wrist (2, 3), ...).
        shift: (2, 3) metres (index 0 = left).
    Returns:
        PlacedHands with joints, vertices (dtype kept), wrist and ``right_minus_left`` updated;
        the other fields are shared with ``placed``.
    """
    s = np.asarray(shift, dtype=np.float64).reshape(2, 3)
    verts = np.asarray(placed.vertices)
    wrist = np.asarray(placed.wrist, dtype=np.float64) + s
    return replace(placed, joints=np.asarray(placed.joints) + s[:, None, :],
                   vertices=(verts + s[:, None, :]).astype(verts.dtype), wrist=wrist,
                   right_minus_left=wrist[1] - wrist[0])


def resolve(placed: Any, faces: Faces, mode: str = "translate", max_iters: int = 24,
            tol_mm: float = DEFAULT_TOL_MM, resolution_mm: float = DEFAULT_RESOLUTION_MM) -> tuple[Any, dict]:
    """Move two placed hands apart until they no longer interpenetrate (module docstring).

    Args:
        placed: PlacedHands (camera frame, metres; vertices (2, V, 3)).
        faces: {"left": (F, 3), "right": (F, 3)}, a pair, or one (F, 3).
        mode: "translate" (each hand moves by half the separation) or "none" (measure only).
        max_iters: most measure evaluations per candidate direction (bracketing + coarse
            bisection), and again for the final bisection.
        tol_mm: separated when no vertex is deeper than this inside the other hand.
        resolution_mm: bisection stops at this bracket length.
    Returns:
        (PlacedHands, report) with report ``{"mode", "before": {volume_cm3, max_depth_mm,
        num_inside}, "after": {...}, "moved_mm": relative separation ``t`` in mm,
        "shift": (2, 3) metres applied per hand, "direction": (3,) unit ``u`` (right moves
        along +u) or None, "direction_from": "push" | "centroid" | "wrist" | "x" | "thin+" |
        "thin-" or None, "evaluations": int, "converged": bool (no vertex deeper than
        ``tol_mm`` at the end), "ms": float}``. ``placed`` itself is returned when nothing moves.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    t0 = time.perf_counter()
    pair = surfaces(placed.vertices, faces)
    report = {"mode": mode, "moved_mm": 0.0, "shift": np.zeros((2, 3)), "direction": None,
              "direction_from": None, "evaluations": 1, "converged": True}
    c0 = contact(*pair) if pair is not None else _empty_contact(np.zeros(3), np.shape(placed.vertices)[1])
    report["before"] = report["after"] = summary(c0, per_vertex=False)
    report["converged"] = c0.max_depth_mm <= tol_mm
    if mode == "none" or report["converged"]:
        report["ms"] = (time.perf_counter() - t0) * 1e3
        return placed, report
    best, evals = separate(*pair, c0, tol_mm, max_iters, resolution_mm, np.asarray(placed.wrist))
    t, c_end = (best.t_hi, best.c_hi) if best.t_hi is not None else (best.t_lo, best.c_lo)
    shift = np.stack([-0.5 * t * best.u, 0.5 * t * best.u])
    report.update(after=summary(c_end, per_vertex=False), moved_mm=t * 1e3, shift=shift, direction=best.u,
                  direction_from=best.name, evaluations=evals + 1, converged=best.t_hi is not None)
    out = translate_hands(placed, shift)
    report["ms"] = (time.perf_counter() - t0) * 1e3
    return out, report
