"""Geometry of the built-in hand: a box-modelled quad cage, one Catmull-Clark level, limit surface.

The surface is built in three steps, all written for this project:

1. **Topology** (:func:`cage_topology`): a palm block (9 x 3 vertex grid swept from the wrist
   cap to the knuckles), four fingers extruded from its distal face (each a ring of 8 cage
   vertices per station plus a domed cap) and a thumb extruded from its radial side. Every cage
   vertex carries a *tag* saying which part and station it belongs to.
2. **Placement** (:func:`cage_targets`): the tags are turned into 3D points on elliptical
   cross-sections around a skeleton (:func:`skeleton`) whose proportions depend on 10 shape
   factors (:data:`SHAPE_SPECS`).
3. **Smoothing** (:func:`subdivision_operator`): one Catmull-Clark step followed by projection to
   the limit surface. Both are linear, so the whole surface is ``M @ cage``; solving
   ``M[:n0] @ cage = targets`` would make the limit surface pass through the designed points
   (:mod:`.builtin` goes half-way, which keeps the surface smooth and close to the design).

Frame (canonical, right hand): palm facing -y, fingers along -x, thumb on the +z side, metres.
"""
from __future__ import annotations

import numpy as np

#: Palm columns from the ulnar (-z) to the radial (+z) side; finger ``i`` owns columns 2i..2i+2.
COLUMN_FINGERS: tuple[str, ...] = ("little", "ring", "middle", "index")

#: Shape directions: (name, relative change per standard deviation of beta).
SHAPE_SPECS: tuple[tuple[str, float], ...] = (
    ("scale", 0.06), ("finger_length", 0.05), ("palm_width", 0.05),
    ("finger_thickness", 0.06), ("thumb_length", 0.06), ("palm_length", 0.05),
    ("palm_thickness", 0.06), ("index_vs_ring", 0.03), ("little_length", 0.06),
    ("finger_taper", 0.25),
)

WRIST = np.array([0.094, 0.0, 0.0])
# finger: (mcp_x, mcp_z, fan_deg, proximal, middle, distal+pad lengths, half width)
FINGER_DESIGN: dict[str, tuple[float, ...]] = {
    "index": (0.004, 0.021, 5.0, 0.040, 0.024, 0.022, 0.0100),
    "middle": (0.000, 0.000, 0.5, 0.044, 0.028, 0.023, 0.0103),
    "ring": (0.004, -0.019, -5.0, 0.041, 0.027, 0.023, 0.0097),
    "little": (0.014, -0.038, -13.0, 0.033, 0.020, 0.020, 0.0086),
}
REST_CURL_DEG = (4.0, 6.0, 4.0)          # MCP, PIP, DIP flexion of the relaxed rest pose
FINGER_TAPER = (1.0, 0.97, 0.90, 0.85, 0.80, 0.66)   # half width at the 6 finger rings
DEPTH_RATIO = 0.88                        # finger half depth / half width
THUMB_CMC = np.array([0.066, -0.006, 0.032])
THUMB_DIRS = ((-0.78, -0.28, 0.56), (-0.86, -0.20, 0.46), (-0.90, -0.15, 0.40))
THUMB_LENGTHS = (0.044, 0.031, 0.028)
THUMB_PRONATION_DEG = 50.0
# palm stations 0..4: x, z_min, z_max, y_dorsal, y_palmar
PALM_STATIONS = np.array([
    [0.108, -0.026, 0.030, 0.0155, -0.0165],
    [0.090, -0.030, 0.032, 0.0150, -0.0165],
    [0.063, -0.040, 0.035, 0.0140, -0.0170],
    [0.036, -0.046, 0.036, 0.0130, -0.0150],
    [0.016, -0.048, 0.035, 0.0125, -0.0135],
])
PALM_ALIGN = (0.0, 0.1, 0.35, 0.65, 0.9)  # how much palm columns follow the finger columns
RADIAL_SHIFT = (0.0, 0.0, -0.004, -0.010, 0.0)  # +x shift of the radial edge (thumb base)
for _a in (WRIST, THUMB_CMC, PALM_STATIONS):
    _a.setflags(write=False)


# ----------------------------------------------------------------------------- small math
def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix. axis (3,), angle radians -> (3, 3)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def slerp_frames(r0: np.ndarray, r1: np.ndarray, t: float) -> np.ndarray:
    """Rotation between frames r0 and r1 (3, 3 column frames) at fraction t -> (3, 3)."""
    rel = r1 @ r0.T
    angle = np.arccos(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0))
    if angle < 1e-9:
        return r0.copy()
    axis = np.array([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]])
    return rotation(axis, t * angle) @ r0


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# ----------------------------------------------------------------------------- topology
def _extrude(quads: list, tags: list, region: list, retag) -> None:
    """Extrude the faces ``region`` (indices into ``quads``) in place.

    Every vertex of the region is duplicated (tag ``retag(old_tag)``), the region faces move to
    the copies and a wall quad joins each boundary edge to its copy. Old vertices left unused are
    removed later by :func:`cage_topology`.
    """
    directed = {(q[i], q[(i + 1) % 4]) for r in region for q in [quads[r]] for i in range(4)}
    copy = {}
    for r in region:
        for v in quads[r]:
            if v not in copy:
                copy[v] = len(tags)
                tags.append(retag(tags[v]))
    for a, b in sorted(directed):
        if (b, a) not in directed:
            quads.append([a, b, copy[b], copy[a]])
    for r in region:
        quads[r] = [copy[v] for v in quads[r]]


def cage_topology() -> tuple[np.ndarray, list]:
    """Quad cage of the hand and the tag of each cage vertex.

    Returns:
        quads: (Q, 4) int64, counter-clockwise seen from outside.
        tags: list of N0 tuples: ("palm", station, column, row), ("finger", name, ring, u, v)
            or ("thumb", ring, u, v); u, v in {-1, 0, 1} index the 3 x 3 patch of a limb.
    """
    tags: list = [("palm", 0, c, r) for c in range(9) for r in range(3)]
    quads: list = []
    for c in range(8):
        for r in range(2):
            a, b, cc, d = 3 * c + r, 3 * (c + 1) + r, 3 * (c + 1) + r + 1, 3 * c + r + 1
            quads.append([a, b, cc, d])          # faces -x: the moving front
            quads.append([d, cc, b, a])          # faces +x: the wrist cap
    front = list(range(0, 32, 2))
    for s in range(1, 6):
        _extrude(quads, tags, front, lambda t, s=s: ("palm", s, t[2], t[3]))

    def limb_region(pred):
        return [i for i, q in enumerate(quads) if all(pred(tags[v]) for v in q)]

    thumb = limb_region(lambda t: t[0] == "palm" and t[2] == 8 and 1 <= t[1] <= 3)
    for k in range(1, 7):
        def retag(t, k=k):
            u, v = (2 - t[1], t[3] - 1) if t[0] == "palm" else t[2:]
            return ("thumb", k, u, v)
        _extrude(quads, tags, thumb, retag)
    for i, name in enumerate(COLUMN_FINGERS):
        region = [q for q in front
                  if all(tags[v][0] == "palm" and 2 * i <= tags[v][2] <= 2 * i + 2 for v in quads[q])]
        for k in range(1, 7):
            def retag(t, k=k, i=i, name=name):
                u, v = (t[2] - 2 * i - 1, t[3] - 1) if t[0] == "palm" else t[3:]
                return ("finger", name, k, u, v)
            _extrude(quads, tags, region, retag)
    used = sorted({v for q in quads for v in q})
    remap = {old: new for new, old in enumerate(used)}
    return (np.array([[remap[v] for v in q] for q in quads], dtype=np.int64),
            [tags[v] for v in used])


# ----------------------------------------------------------------------------- subdivision
def _edges(quads: np.ndarray) -> tuple[np.ndarray, dict]:
    """Unique undirected edges (E, 2) and a map (a, b) -> edge id for both directions."""
    index: dict = {}
    edges = []
    for q in quads:
        for i in range(4):
            a, b = int(q[i]), int(q[(i + 1) % 4])
            if (a, b) not in index:
                index[(a, b)] = index[(b, a)] = len(edges)
                edges.append((a, b))
    return np.array(edges, dtype=np.int64), index


def catmull_clark(quads: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One Catmull-Clark step of a closed quad mesh as a linear operator.

    Args:
        quads: (Q, 4) int faces; n: number of vertices N0.
    Returns:
        S: (N0 + Q + E, N0) float64 with ``new_verts = S @ verts`` (old vertices keep their ids,
        then one face point per quad, then one edge point per edge).
        new_quads: (4Q, 4) int64.
    """
    edges, eid = _edges(quads)
    nq, ne = len(quads), len(edges)
    s = np.zeros((n + nq + ne, n))
    face_rows = np.zeros((nq, n))
    for f, q in enumerate(quads):
        face_rows[f, q] = 0.25
    s[n:n + nq] = face_rows
    edge_faces: list = [[] for _ in range(ne)]
    vert_faces: list = [[] for _ in range(n)]
    vert_edges: list = [[] for _ in range(n)]
    for f, q in enumerate(quads):
        for i in range(4):
            edge_faces[eid[(int(q[i]), int(q[(i + 1) % 4]))]].append(f)
            vert_faces[int(q[i])].append(f)
    for e, (a, b) in enumerate(edges):
        vert_edges[a].append(e)
        vert_edges[b].append(e)
        row = s[n + nq + e]
        row[[a, b]] += 0.25
        row += 0.25 * face_rows[edge_faces[e]].sum(axis=0)
    for v in range(n):
        k = len(vert_edges[v])
        row = s[v]
        row += face_rows[vert_faces[v]].sum(axis=0) / k ** 2
        for e in vert_edges[v]:
            row[edges[e]] += 1.0 / k ** 2
        row[v] += (k - 3.0) / k
    new_quads = []
    for f, q in enumerate(quads):
        e = [n + nq + eid[(int(q[i]), int(q[(i + 1) % 4]))] for i in range(4)]
        for i in range(4):
            new_quads.append([int(q[i]), e[i], n + f, e[i - 1]])
    return s, np.array(new_quads, dtype=np.int64)


def limit_operator(quads: np.ndarray, n: int) -> np.ndarray:
    """Catmull-Clark limit-position masks of an all-quad mesh: (N, N) with ``lim = L @ verts``."""
    lim = np.zeros((n, n))
    nbr: list = [set() for _ in range(n)]
    diag: list = [[] for _ in range(n)]
    for q in quads:
        for i in range(4):
            v = int(q[i])
            nbr[v].update((int(q[i - 1]), int(q[(i + 1) % 4])))
            diag[v].append(int(q[(i + 2) % 4]))
    for v in range(n):
        k = len(nbr[v])
        lim[v, v] += k * k
        lim[v, sorted(nbr[v])] += 4.0
        np.add.at(lim[v], diag[v], 1.0)
        lim[v] /= k * (k + 5.0)
    return lim


def subdivision_operator(quads: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cage -> limit surface operator M (N1, N0) and the fine quads (4Q, 4)."""
    s, fine = catmull_clark(quads, n)
    return limit_operator(fine, s.shape[0]) @ s, fine


def triangulate(quads: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Split each quad (Q, 4) along its shorter diagonal -> (2Q, 3) int64, winding kept."""
    p = verts[quads]
    d02 = np.linalg.norm(p[:, 0] - p[:, 2], axis=1)
    d13 = np.linalg.norm(p[:, 1] - p[:, 3], axis=1)
    a = np.where(d02 <= d13, 0, 1)[:, None]
    idx = (a + np.array([[0, 1, 2, 0, 2, 3]])) % 4
    return np.take_along_axis(quads, idx, axis=1).reshape(-1, 3)


# ----------------------------------------------------------------------------- design
JOINT0 = {"index": 1, "middle": 4, "little": 7, "ring": 10, "thumb": 13}   # MANO skin order


def shape_factors(betas=None) -> dict:
    """Multipliers of the design quantities for shape coefficients betas (<= 10,)."""
    b = np.zeros(len(SHAPE_SPECS))
    if betas is not None:
        b[:len(betas)] = np.asarray(betas, dtype=np.float64)
    return {name: 1.0 + std * bk for (name, std), bk in zip(SHAPE_SPECS, b)}


def _limb(base: np.ndarray, frames: list, lengths) -> dict:
    """Chain of 3 bones: joints (4, 3) = base, 2nd, 3rd joint, tip; frames (3, 3, 3) (l, n, d)."""
    joints = [np.asarray(base, dtype=np.float64)]
    for fr, ln in zip(frames, lengths):
        joints.append(joints[-1] + ln * fr[:, 2])
    return {"joints": np.array(joints), "frames": np.array(frames), "lengths": np.array(lengths)}


def _station(limb: dict, bone: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Point at fraction t of ``bone`` and its (3, 3) frame (joint frames are half-way)."""
    fr = limb["frames"]
    frame = slerp_frames(fr[bone - 1], fr[bone], 0.5) if (t == 0.0 and bone > 0) else fr[bone]
    return limb["joints"][bone] + t * limb["lengths"][bone] * fr[bone][:, 2], frame


def skeleton(f: dict) -> dict:
    """Design skeleton for shape factors ``f`` (see :func:`shape_factors`), before global scale.

    Returns a dict: "wrist" (3,), and per finger name (and "thumb") a limb dict with
    joints (4, 3), frames (3, 3, 3) and lengths (3,); fingers also carry "width".
    """
    out = {"wrist": WRIST.copy()}
    x_scale = lambda x: WRIST[0] + (x - WRIST[0]) * f["palm_length"]   # noqa: E731
    z0 = -0.005
    curls = np.cumsum(np.radians(REST_CURL_DEG))
    for name, (mx, mz, fan, l1, l2, l3, w) in FINGER_DESIGN.items():
        ly = f["finger_length"] * {"index": f["index_vs_ring"], "ring": 1.0 / f["index_vs_ring"],
                                   "little": f["little_length"]}.get(name, 1.0)
        spread = rotation([0.0, 1.0, 0.0], np.radians(fan))
        base = spread @ np.column_stack([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
        frames = [rotation(base[:, 0], c) @ base for c in curls]
        mcp = np.array([x_scale(mx), 0.0, z0 + (mz - z0) * f["palm_width"]])
        out[name] = _limb(mcp, frames, np.array([l1, l2, l3]) * ly)
        out[name]["width"] = w * f["finger_thickness"] * f["palm_width"] ** 0.7
    frames = []
    for d in THUMB_DIRS:
        d = _unit(d)
        phi = np.radians(THUMB_PRONATION_DEG)
        n = np.array([0.0, np.cos(phi), np.sin(phi)])
        n = _unit(n - (n @ d) * d)
        frames.append(np.column_stack([np.cross(n, d), n, d]))
    cmc = np.array([x_scale(THUMB_CMC[0]), THUMB_CMC[1] * f["palm_thickness"],
                    z0 + (THUMB_CMC[2] - z0) * f["palm_width"]])
    out["thumb"] = _limb(cmc, frames, np.array(THUMB_LENGTHS) * f["thumb_length"])
    out["thumb"]["width"] = 0.0127 * f["finger_thickness"]
    return out


def scale_about(p: np.ndarray, centre: np.ndarray, s: float) -> np.ndarray:
    """Points p (..., 3) scaled by s about centre (3,)."""
    return centre + (p - centre) * s


def _ring_point(centre, frame, rl, rn, u, v) -> np.ndarray:
    """Point of an elliptical cross-section at patch position (u, v) in {-1, 0, 1}^2."""
    th = np.arctan2(v, u)
    return centre + rl * np.cos(th) * frame[:, 0] + rn * np.sin(th) * frame[:, 1]


def _finger_base(sk: dict, f: dict, i: int, u: int, v: int) -> np.ndarray:
    """Cage point of finger ``i`` (column order) where it leaves the palm's distal face."""
    limb = sk[COLUMN_FINGERS[i]]
    centre = limb["joints"][0] + (0.0095 - 0.0065 * v) * limb["frames"][0][:, 2]
    rn = (0.0115 if v > 0 else 0.0125) * f["palm_thickness"]
    return _ring_point(centre, limb["frames"][0], 1.02 * limb["width"], rn, u, v)


def _palm_point(sk: dict, f: dict, s: int, c: int, r: int) -> np.ndarray:
    """Cage point of the palm at station s (0 wrist .. 5 knuckles), column c, row r."""
    if s == 5:
        i = min(c // 2, 3)
        if c % 2 == 0 and 0 < c < 8:
            p = 0.5 * (_finger_base(sk, f, i - 1, 1, r - 1) + _finger_base(sk, f, i, -1, r - 1))
            p[0] -= (0.006, 0.006, 0.003)[r]
            p[1] *= 0.9
            return p
        return _finger_base(sk, f, i, c - 2 * i - 1, r - 1)
    x, zmin, zmax, yd, yp = PALM_STATIONS[s]
    zmid = -0.005
    zmin, zmax = zmid + (zmin - zmid) * f["palm_width"], zmid + (zmax - zmid) * f["palm_width"]
    yd, yp = yd * f["palm_thickness"], yp * f["palm_thickness"]
    cols = np.array([_palm_point(sk, f, 5, k, 1 if k in (0, 8) else 0)[2] for k in range(9)])
    xs = np.array([sk[COLUMN_FINGERS[min(k // 2, 3)]]["joints"][0][0] for k in range(9)])
    a = PALM_ALIGN[s]
    frac = (1 - a) * c / 8.0 + a * (cols[c] - cols[0]) / (cols[8] - cols[0])
    z = zmin + (zmax - zmin) * frac
    x = x + RADIAL_SHIFT[s] * max(0.0, c - 6.0) / 2.0
    x = WRIST[0] + (x - WRIST[0]) * f["palm_length"] + a * (xs[c] - xs[4])
    q = ((z - zmid) / (0.5 * (zmax - zmin))) ** 2
    thenar = np.exp(-((c - 8) / 1.5) ** 2) * (0.0, 0.25, 0.3, 0.1, 0.0)[s]
    hypo = np.exp(-(c / 1.5) ** 2) * (0.0, 0.1, 0.12, 0.08, 0.0)[s]
    if r == 1:
        side = -0.0035 if c == 0 else 0.0035
        return np.array([x + (0.004 if s == 0 and 0 < c < 8 else 0.0),
                         0.5 * (yd + yp) if c in (0, 8) else 0.0, z + (side if c in (0, 8) else 0)])
    if r == 2:
        return np.array([x, yd * (1.0 - 0.3 * q), z])
    return np.array([x, yp * (1.0 - 0.15 * q + thenar + hypo), z])


def _finger_ring(sk: dict, f: dict, name: str, k: int, u: int, v: int) -> np.ndarray:
    """Cage point of ring k (1..6) of a finger; (k=6, u=v=0) is the fingertip."""
    limb = sk[name]
    if k == 6 and u == 0 and v == 0:
        return limb["joints"][3]
    taper = 1.0 - (1.0 - np.array(FINGER_TAPER)) * f["finger_taper"]
    rl = limb["width"] * taper[k - 1]
    l3 = limb["lengths"][2]
    bone, t = ((0, 0.5), (1, 0.0), (1, 0.5), (2, 0.0), (2, 0.45), (2, 1.0 - 0.55 * rl / l3))[k - 1]
    centre, frame = _station(limb, bone, t)
    if k == 5:
        centre = centre - 0.1 * rl * frame[:, 1]
    return _ring_point(centre, frame, rl, DEPTH_RATIO * rl, u, v)


THUMB_RINGS = ((1.0, 1.0, 1.05, 0.90), (1.5, 1.0, 0.98, 0.84), (2.0, 1.0, 0.94, 0.80),
               (2.45, 1.0, 0.87, 0.74))      # rings 2..5: bone + t, frame mix, rl, rn (x width)
THUMB_LOFT = (0.4, np.array([0.0, -0.005, 0.008]))  # ring 1: blend base -> ring 2, bulge


def _thumb_ring(sk: dict, f: dict, k: int, u: int, v: int) -> np.ndarray:
    """Cage point of thumb ring k (1..6); (k=6, u=v=0) is the tip, ring 1 is a loft."""
    limb = sk["thumb"]
    w = limb["width"]
    if k == 1:                 # a loft from the radial face of the palm (station 1..3) to ring 2
        base = _palm_point(sk, f, 2 - u, 8, v + 1)
        t, bulge = THUMB_LOFT
        bulge = bulge * f["palm_thickness"] * (0.5 + 0.5 * u)  # thenar side, not the web side
        return base + t * (_thumb_ring(sk, f, 2, u, v) - base) + bulge
    if k == 6:
        if u == 0 and v == 0:
            return limb["joints"][3]
        rl = 0.72 * w
        centre, frame = _station(limb, 2, 1.0 - 0.55 * rl / limb["lengths"][2])
        return _ring_point(centre, frame, rl, 0.85 * rl, u, v)
    where, mix, rl, rn = THUMB_RINGS[k - 2]
    centre, frame = _station(limb, int(where), where - int(where))
    if mix < 1.0:
        frame = slerp_frames(np.eye(3), frame, mix)
    return _ring_point(centre, frame, rl * w, rn * w, u, v)


def cage_targets(tags: list, f: dict) -> np.ndarray:
    """Designed positions (N0, 3) of the cage vertices for shape factors ``f``."""
    sk = skeleton(f)
    pts = []
    for t in tags:
        if t[0] == "palm":
            pts.append(_palm_point(sk, f, *t[1:]))
        elif t[0] == "finger":
            pts.append(_finger_ring(sk, f, *t[1:]))
        else:
            pts.append(_thumb_ring(sk, f, *t[1:]))
    return scale_about(np.array(pts), sk["wrist"], f["scale"])
