"""Interpenetration volume (IV) of two hand meshes by voxelisation (pure numpy).

IV (paper, Sec. 4): both meshes are voxelised with 0.5 cm voxels and the volume of the
voxels inside both hands is reported in cm^3. Here:

* The grid covers the intersection of the two meshes' axis-aligned bounding boxes (no voxel
  outside it can be inside both). It starts at the box's minimum corner: voxel ``(i, j, k)``
  has centre ``lo + (i + 0.5, j + 0.5, k + 0.5) * voxel`` and there are
  ``ceil(extent / voxel)`` voxels per axis. A voxel counts when its *centre* is inside both
  meshes.
* Inside/outside is decided with the **generalised winding number** (Jacobson et al. 2013):
  ``w(p) = sum over triangles of solid_angle(p, tri) / (4 pi)``, computed in closed form
  (Van Oosterom & Strackee) and vectorised. ``w`` is 1 inside and 0 outside a closed,
  consistently oriented mesh, with no special cases for rays through edges or vertices, and
  it degrades gracefully on meshes with holes (the MANO mesh is open at the wrist): a
  point is inside when ``|w| > 0.5`` (the absolute value makes the test independent of the
  face orientation).
* Cost is O(points x faces); the second mesh is only tested at the grid points already
  inside the first one. A pair of ~1000-vertex / 2000-face hand-sized meshes takes about
  0.1 s on one CPU core.

Units: vertices in metres, ``voxel`` in metres, volumes returned in cm^3.
"""
from __future__ import annotations

import numpy as np

#: Default voxel edge (metres): 0.5 cm as in the paper.
DEFAULT_VOXEL = 0.005

#: Default point-chunk target: points x faces values per block (keeps blocks cache sized).
_BLOCK_ELEMS = 1 << 15


def _mesh_arrays(verts, faces) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"verts must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError("faces index vertices out of range")
    if not np.all(np.isfinite(v)):
        raise ValueError("verts contain NaN/inf")
    return v, f


def winding_number(points, verts, faces, dtype=np.float64) -> np.ndarray:
    """Generalised winding number of a triangle mesh at query points.

    For each triangle with corners ``a, b, c`` relative to the point, the solid angle is
    ``Omega = 2 atan2(a . (b x c), |a||b||c| + (a.b)|c| + (b.c)|a| + (c.a)|b|)`` and
    ``w = sum(Omega) / (4 pi)``. Every term is expanded to be affine in the point
    (``a . b = v0.v1 - p.(v0 + v1) + p.p``, ``a . (b x c) = v0.(v1 x v2) - p.n``,
    ``|a|^2 = |p|^2 - 2 p.v0 + |v0|^2``) so that a block of points costs a few matrix
    products; coordinates are first centred on the mesh to limit cancellation.

    Args:
        points: (P, 3) query points, metres.
        verts: (V, 3) mesh vertices, metres.
        faces: (F, 3) int triangles (counter-clockwise seen from outside gives w = +1 inside).
        dtype: float64 (default, ~1e-12 agreement with the direct formula) or float32
            (about 3x faster, errors of ~1e-3 in w only for points within ~1e-6 m of the
            surface).

    Returns:
        (P,) float64 winding numbers (about 1 inside, 0 outside; points exactly on the
        surface get intermediate values).
    """
    v, f = _mesh_arrays(verts, faces)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.zeros(len(p), dtype=np.float64)
    if len(p) == 0 or len(f) == 0:
        return out
    centre = 0.5 * (v.min(axis=0) + v.max(axis=0))
    p, v = p - centre, v - centre
    v0, v1, v2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]  # (F, 3) each
    nf = len(f)
    # per-face constants, (F,) each, and the (3, 4F) matrix [v0+v1 | v1+v2 | v2+v0 | n]
    d01 = np.einsum("ij,ij->i", v0, v1)
    d12 = np.einsum("ij,ij->i", v1, v2)
    d20 = np.einsum("ij,ij->i", v2, v0)
    triple = np.einsum("ij,ij->i", v0, np.cross(v1, v2))
    normal = np.cross(v1 - v0, v2 - v0)
    w_mat = np.concatenate([v0 + v1, v1 + v2, v2 + v0, normal], axis=0).T.astype(dtype)
    d01, d12, d20, triple = (x.astype(dtype) for x in (d01, d12, d20, triple))
    vt = v.T.astype(dtype)  # (3, V)
    vv = (v * v).sum(axis=1).astype(dtype)  # (V,)
    f0, f1, f2 = f[:, 0], f[:, 1], f[:, 2]
    p = p.astype(dtype)
    chunk = max(1, _BLOCK_ELEMS // nf)
    for s in range(0, len(p), chunk):
        q = p[s : s + chunk]  # (C, 3)
        qq = (q * q).sum(axis=1, keepdims=True)  # (C, 1)
        dist = np.sqrt(np.maximum(qq - 2.0 * (q @ vt) + vv, 0.0))  # (C, V) |v - p|
        la, lb, lc = dist[:, f0], dist[:, f1], dist[:, f2]  # (C, F)
        m = q @ w_mat  # (C, 4F)
        ab = d01 + qq - m[:, :nf]
        bc = d12 + qq - m[:, nf : 2 * nf]
        ca = d20 + qq - m[:, 2 * nf : 3 * nf]
        det = triple - m[:, 3 * nf :]
        den = la * lb * lc + ab * lc + bc * la + ca * lb
        out[s : s + chunk] = np.arctan2(det, den).sum(axis=1, dtype=np.float64)
    return out / (2.0 * np.pi)  # sum(2 atan2) / (4 pi)


def points_inside_mesh(points, verts, faces, threshold: float = 0.5,
                       dtype=np.float64) -> np.ndarray:
    """Which points lie inside a (closed, or nearly closed) triangle mesh.

    Args:
        points: (P, 3) query points, metres.
        verts: (V, 3) mesh vertices.
        faces: (F, 3) int triangles (either consistent orientation).
        threshold: a point is inside when ``|winding number| > threshold``.
        dtype: arithmetic precision of :func:`winding_number`.

    Returns:
        (P,) bool.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    v, _ = _mesh_arrays(verts, faces)
    inside = np.zeros(len(p), dtype=bool)
    if len(p) == 0 or len(v) == 0:
        return inside
    # points outside the bounding box are outside: skip the expensive test for them
    lo, hi = v.min(axis=0), v.max(axis=0)
    cand = np.all((p >= lo) & (p <= hi), axis=1)
    if cand.any():
        inside[cand] = np.abs(winding_number(p[cand], v, faces, dtype)) > threshold
    return inside


def overlap_grid(verts_a, verts_b, voxel: float = DEFAULT_VOXEL,
                 max_voxels: int = 2_000_000) -> np.ndarray:
    """Voxel centres covering the intersection of two point sets' bounding boxes.

    Args:
        verts_a: (Va, 3) metres.
        verts_b: (Vb, 3) metres.
        voxel: voxel edge, metres.
        max_voxels: guard against unit mistakes (e.g. millimetres passed as metres).

    Returns:
        (P, 3) voxel centres ``lo + (idx + 0.5) * voxel``, ``P = prod(ceil((hi - lo) /
        voxel))``; (0, 3) when the boxes do not overlap.
    """
    if voxel <= 0:
        raise ValueError("voxel must be positive")
    a = np.asarray(verts_a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(verts_b, dtype=np.float64).reshape(-1, 3)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 3))
    lo = np.maximum(a.min(axis=0), b.min(axis=0))
    hi = np.minimum(a.max(axis=0), b.max(axis=0))
    ext = hi - lo
    if np.any(ext <= 0):
        return np.zeros((0, 3))
    # the small tolerance avoids an extra, empty layer when extent / voxel is an integer
    n = np.maximum(np.ceil(ext / voxel - 1e-9), 1).astype(np.int64)
    if int(np.prod(n)) > max_voxels:
        raise ValueError(f"overlap grid of {n.tolist()} voxels exceeds max_voxels={max_voxels}; "
                         f"are the vertices in metres?")
    axes = [lo[d] + (np.arange(n[d]) + 0.5) * voxel for d in range(3)]
    g = np.meshgrid(*axes, indexing="ij")
    return np.stack([x.ravel() for x in g], axis=1)


def penetration_volume(verts_a, faces_a, verts_b, faces_b,
                            voxel: float = DEFAULT_VOXEL, dtype=np.float32) -> float:
    """Interpenetration volume of two meshes, in cm^3.

    Args:
        verts_a: (Va, 3) vertices of mesh A, metres.
        faces_a: (Fa, 3) int triangles of mesh A.
        verts_b: (Vb, 3) vertices of mesh B, metres.
        faces_b: (Fb, 3) int triangles of mesh B.
        voxel: voxel edge in metres (0.005 = 0.5 cm, the paper's setting).
        dtype: precision of the inside test; float32 (default) is ~3x faster and only
            differs for voxel centres within ~1e-6 m of a surface, whose classification is
            arbitrary at a 5 mm voxel size anyway.

    Returns:
        ``(number of voxel centres inside both meshes) * voxel^3`` in cm^3.
    """
    va, _ = _mesh_arrays(verts_a, faces_a)
    vb, _ = _mesh_arrays(verts_b, faces_b)
    centres = overlap_grid(va, vb, voxel)
    if len(centres) == 0:
        return 0.0
    in_a = points_inside_mesh(centres, va, faces_a, dtype=dtype)
    centres = centres[in_a]
    if len(centres) == 0:
        return 0.0
    count = int(points_inside_mesh(centres, vb, faces_b, dtype=dtype).sum())
    return count * (voxel * 100.0) ** 3


def penetration_volume_batch(verts_a, faces_a, verts_b, faces_b,
                                  voxel: float = DEFAULT_VOXEL, dtype=np.float32) -> np.ndarray:
    """Interpenetration volume of N mesh pairs sharing their topology.

    Args:
        verts_a: (N, Va, 3) vertices of mesh A (e.g. the left hands), metres.
        faces_a: (Fa, 3) int triangles of A (same for every sample).
        verts_b: (N, Vb, 3) vertices of mesh B (e.g. the right hands), metres.
        faces_b: (Fb, 3) int triangles of B.
        voxel: voxel edge in metres.
        dtype: precision of the inside test (see :func:`penetration_volume`).

    Returns:
        (N,) volumes in cm^3.
    """
    va = np.asarray(verts_a, dtype=np.float64)
    vb = np.asarray(verts_b, dtype=np.float64)
    if va.ndim != 3 or vb.ndim != 3 or len(va) != len(vb):
        raise ValueError(f"expected (N, Va, 3) and (N, Vb, 3), got {va.shape} and {vb.shape}")
    return np.array([penetration_volume(a, faces_a, b, faces_b, voxel, dtype)
                     for a, b in zip(va, vb)], dtype=np.float64)
