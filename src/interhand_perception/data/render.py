"""A small vectorised z-buffer rasteriser and shading helpers (numpy only).

Conventions: camera-frame vertices in metres (OpenCV: x right, y down, z forward), pinhole
intrinsics ``K`` (3, 3), image of ``H x W`` pixels where pixel ``(i, j)`` (row, column) has
its centre at ``(j + 0.5, i + 0.5)`` in the projection ``K @ X`` (pixel ``i`` covers
``[i, i + 1)``, the crop convention of :mod:`interhand_perception.dir_net.crop`).

The rasteriser works on (triangle, pixel) candidate pairs taken from each triangle's
bounding box, in chunks, so there is no Python loop over triangles. Depth is resolved with a
per-pixel maximum of ``1 / z`` (``np.maximum.at``). Barycentric coordinates are perspective
correct: they interpolate camera-space attributes exactly.

Several meshes are rendered together by concatenating them (:func:`concat_meshes`), which
yields a per-face mesh label so that occlusion between meshes is handled by the one z-buffer.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

#: Upper bound of (triangle, pixel) candidate pairs processed at once.
_CHUNK_PAIRS = 1 << 20


class Raster(NamedTuple):
    """Output of :func:`rasterize`.

    Attributes:
        depth: (H, W) float32 camera z of the visible surface, ``inf`` where empty.
        face_id: (H, W) int32 index of the visible face, -1 where empty.
        bary: (H, W, 3) float32 perspective-correct barycentric coordinates (0 where empty).
    """

    depth: np.ndarray
    face_id: np.ndarray
    bary: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where a face is visible."""
        return self.face_id >= 0


def project(verts: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection.

    Args:
        verts: (..., 3) camera-frame points (z > 0).
        K: (3, 3) intrinsics.
    Returns:
        (..., 2) float64 pixel coordinates.
    """
    p = np.asarray(verts, dtype=np.float64) @ np.asarray(K, dtype=np.float64).T
    return p[..., :2] / p[..., 2:3]


def concat_meshes(meshes: Sequence[tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate meshes into one, keeping track of which mesh each face came from.

    Args:
        meshes: sequence of ``(verts (N_k, 3), faces (F_k, 3))``.
    Returns:
        verts (sum N_k, 3), faces (sum F_k, 3) int64 re-indexed, face_label (sum F_k,) int32
        holding ``k`` for the faces of mesh ``k``.
    """
    verts, faces, labels = [], [], []
    offset = 0
    for k, (v, f) in enumerate(meshes):
        verts.append(np.asarray(v, dtype=np.float64))
        faces.append(np.asarray(f, dtype=np.int64) + offset)
        labels.append(np.full(len(f), k, dtype=np.int32))
        offset += len(v)
    return np.concatenate(verts), np.concatenate(faces), np.concatenate(labels)


def _screen_coefficients(uv: np.ndarray, z: np.ndarray, faces: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-face affine maps from pixel position to screen barycentrics and to 1/z.

    Args:
        uv: (N, 2) projected vertices; z: (N,) depths; faces: (F, 3).
    Returns:
        lam (F, 2, 3): ``lambda_k(x, y) = lam[f, k] @ (x, y, 1)`` for k = 0, 1
        (``lambda_2 = 1 - lambda_0 - lambda_1``); invz (F, 3): ``1/z = invz[f] @ (x, y, 1)``;
        valid (F,) bool (non-degenerate).
    """
    p0, p1, p2 = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
    e1, e2 = p1 - p0, p2 - p0
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    valid = np.abs(det) > 1e-12
    inv = np.where(valid, 1.0 / np.where(valid, det, 1.0), 0.0)
    # lambda_1 = cross(p - p0, e2) / det ... solved for (lambda_1, lambda_2)
    l1 = np.stack([e2[:, 1] * inv, -e2[:, 0] * inv,
                   (-e2[:, 1] * p0[:, 0] + e2[:, 0] * p0[:, 1]) * inv], axis=1)
    l2 = np.stack([-e1[:, 1] * inv, e1[:, 0] * inv,
                   (e1[:, 1] * p0[:, 0] - e1[:, 0] * p0[:, 1]) * inv], axis=1)
    l0 = -l1 - l2
    l0[:, 2] += 1.0
    lam = np.stack([l0, l1], axis=1)
    iz = 1.0 / z[faces]  # (F, 3)
    invz = iz[:, 0:1] * l0 + iz[:, 1:2] * l1 + iz[:, 2:3] * l2
    return lam, invz, valid


def _candidate_boxes(uv: np.ndarray, faces: np.ndarray, size: tuple[int, int]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer pixel bounding boxes of the faces whose centres may be covered.

    Returns:
        j0 (F,), i0 (F,), width (F,), height (F,) int64 (width/height 0 when empty).
    """
    h, w = size
    tri = uv[faces]  # (F, 3, 2)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    j0 = np.clip(np.ceil(lo[:, 0] - 0.5), 0, w).astype(np.int64)
    j1 = np.clip(np.floor(hi[:, 0] - 0.5), -1, w - 1).astype(np.int64)
    i0 = np.clip(np.ceil(lo[:, 1] - 0.5), 0, h).astype(np.int64)
    i1 = np.clip(np.floor(hi[:, 1] - 0.5), -1, h - 1).astype(np.int64)
    return j0, i0, np.maximum(j1 - j0 + 1, 0), np.maximum(i1 - i0 + 1, 0)


def _chunks(counts: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Split face indices into contiguous ranges whose pair counts stay near ``limit``."""
    csum = np.cumsum(counts)
    out, start = [], 0
    n = len(counts)
    while start < n:
        base = csum[start - 1] if start else 0
        stop = int(np.searchsorted(csum, base + limit, side="right"))
        stop = max(stop, start + 1)
        out.append((start, min(stop, n)))
        start = stop
    return out


def _pairs(face_ids: np.ndarray, wd: np.ndarray, ht: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand faces into (face, row offset, column offset) candidate pairs over their boxes.

    Returns:
        tri (P,) int64 face ids, di (P,) and dj (P,) int32 offsets from the box corner.
    """
    counts = (wd[face_ids] * ht[face_ids]).astype(np.int64)
    tri = np.repeat(face_ids, counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    local = local.astype(np.int32)
    width = np.repeat(wd[face_ids].astype(np.int32), counts)
    di = local // width
    return tri, di, local - di * width


def rasterize(verts: np.ndarray, faces: np.ndarray, K: np.ndarray, size: tuple[int, int],
              cull_backfaces: bool = False, near: float = 1e-3) -> Raster:
    """Z-buffer rasterisation of a triangle mesh into an ``H x W`` image.

    Args:
        verts: (N, 3) camera-frame vertices.
        faces: (F, 3) int vertex indices (counter-clockwise seen from outside).
        K: (3, 3) intrinsics.
        size: ``(H, W)``.
        cull_backfaces: skip faces whose outward normal points away from the camera (only
            correct for closed meshes; about halves the work).
        near: faces with a vertex closer than this (metres) are dropped.
    Returns:
        :class:`Raster` with depth (H, W), face_id (H, W), bary (H, W, 3).
    """
    h, w = int(size[0]), int(size[1])
    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    z = verts[:, 2]
    uv = project(np.where(z[:, None] > near, verts, 1.0), K)
    lam, invz, valid = _screen_coefficients(uv, np.maximum(z, near), faces)
    valid &= (z[faces] > near).all(axis=1)
    if cull_backfaces:
        tri = verts[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        valid &= np.einsum("fk,fk->f", normal, tri.mean(axis=1)) < 0.0
    j0, i0, wd, ht = _candidate_boxes(uv, faces, (h, w))
    counts = np.where(valid, wd * ht, 0)
    live = np.flatnonzero(counts)

    # Affine functions re-based at each box's first pixel centre (float64), then stored as
    # float32 rows (value, d/dcolumn, d/drow) for lambda_0, lambda_1 and 1/z: per pair only
    # small offsets multiply the slopes, so float32 keeps sub-1e-5 precision.
    affine = np.concatenate([lam, invz[:, None]], axis=1)  # (F, 3, 3)
    at0 = (affine[:, :, 0] * (j0 + 0.5)[:, None] + affine[:, :, 1] * (i0 + 0.5)[:, None]
           + affine[:, :, 2])
    coef = np.concatenate([at0, affine[:, :, 0], affine[:, :, 1]], axis=1).T.astype(np.float32)
    best = np.zeros(h * w, dtype=np.float32)  # max 1/z per pixel (0 = empty)
    face_buf = np.full(h * w, -1, dtype=np.int64)
    for a, b in _chunks(counts[live], _CHUNK_PAIRS):
        tri, di, dj = _pairs(live[a:b], wd, ht)
        di, dj = di.astype(np.float32), dj.astype(np.float32)
        l0 = coef[0][tri] + coef[3][tri] * dj + coef[6][tri] * di
        l1 = coef[1][tri] + coef[4][tri] * dj + coef[7][tri] * di
        inside = (l0 >= 0.0) & (l1 >= 0.0) & (l0 + l1 <= 1.0)
        tri, di, dj = tri[inside], di[inside], dj[inside]
        pix = (i0[tri] + di.astype(np.int64)) * w + (j0[tri] + dj.astype(np.int64))
        d = coef[2][tri] + coef[5][tri] * dj + coef[8][tri] * di
        np.maximum.at(best, pix, d)
        win = d >= best[pix]
        face_buf[pix[win]] = tri[win]

    face_id = face_buf.reshape(h, w).astype(np.int32)
    depth = np.full((h, w), np.inf, dtype=np.float32)
    bary = np.zeros((h, w, 3), dtype=np.float32)
    cov = np.flatnonzero(face_buf >= 0)
    if len(cov):
        f = face_buf[cov]
        x = (cov % w) + 0.5
        y = (cov // w) + 0.5
        c = lam[f]
        l0 = c[:, 0, 0] * x + c[:, 0, 1] * y + c[:, 0, 2]
        l1 = c[:, 1, 0] * x + c[:, 1, 1] * y + c[:, 1, 2]
        screen = np.clip(np.stack([l0, l1, 1.0 - l0 - l1], axis=1), 0.0, 1.0)
        persp = screen / z[faces[f]]
        total = persp.sum(axis=1, keepdims=True)
        bary.reshape(-1, 3)[cov] = persp / total
        depth.reshape(-1)[cov] = 1.0 / total[:, 0]
    return Raster(depth=depth, face_id=face_id, bary=bary)


def interpolate(attr: np.ndarray, faces: np.ndarray, raster: Raster,
                background: float = 0.0) -> np.ndarray:
    """Interpolate per-vertex attributes over the visible surface.

    Args:
        attr: (N, C) per-vertex values.
        faces: (F, 3) faces used for the raster.
        raster: output of :func:`rasterize`.
        background: value of empty pixels.
    Returns:
        (H, W, C) float32.
    """
    attr = np.asarray(attr, dtype=np.float32)
    h, w = raster.face_id.shape
    out = np.full((h, w, attr.shape[1]), background, dtype=np.float32)
    out[raster.mask] = interpolate_visible(attr, faces, raster)
    return out


def interpolate_visible(attr: np.ndarray, faces: np.ndarray, raster: Raster) -> np.ndarray:
    """Like :func:`interpolate` but only for covered pixels, in row-major order.

    Returns:
        (M, C) float32 where M = ``raster.mask.sum()``.
    """
    fid = raster.face_id.reshape(-1)
    cov = np.flatnonzero(fid >= 0)
    idx = np.asarray(faces)[fid[cov]]  # (M, 3)
    b = raster.bary.reshape(-1, 3)[cov]
    a = np.asarray(attr, dtype=np.float32)
    return b[:, 0:1] * a[idx[:, 0]] + b[:, 1:2] * a[idx[:, 1]] + b[:, 2:3] * a[idx[:, 2]]


def face_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised face normals (length = 2 x area).

    Returns:
        (F, 3) float64, pointing outside for counter-clockwise faces.
    """
    tri = np.asarray(verts, dtype=np.float64)[np.asarray(faces)]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals.

    Args:
        verts: (N, 3); faces: (F, 3).
    Returns:
        (N, 3) float64 unit vectors (zero for unreferenced vertices).
    """
    fn = face_normals(verts, faces)
    n = np.zeros((len(verts), 3))
    for k in range(3):
        np.add.at(n, np.asarray(faces)[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.maximum(norm, 1e-12)


def shade(normals: np.ndarray, points: np.ndarray, albedo: np.ndarray,
          light_dirs: np.ndarray, light_colours: np.ndarray, ambient: np.ndarray,
          specular: float = 0.1, shininess: float = 20.0) -> np.ndarray:
    """Lambert + ambient + Blinn-Phong specular shading of surface points.

    Args:
        normals: (M, 3) normals (need not be unit).
        points: (M, 3) camera-frame positions (the camera is at the origin).
        albedo: (M, 3) or (3,) linear RGB reflectance in [0, 1].
        light_dirs: (L, 3) directions *towards* the lights (need not be unit).
        light_colours: (L, 3) RGB intensities.
        ambient: (3,) RGB ambient intensity.
        specular: strength of the (white) highlight.
        shininess: Blinn-Phong exponent.
    Returns:
        (M, 3) float32 linear RGB (not clipped).
    """
    n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    view = -points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    # two-sided lighting: surfaces seen from behind (the open wrist) use the flipped normal
    n = np.where((n * view).sum(axis=1, keepdims=True) < 0.0, -n, n)
    l = light_dirs / np.linalg.norm(light_dirs, axis=1, keepdims=True)
    diffuse = np.clip(n @ l.T, 0.0, None) @ light_colours  # (M, 3)
    half = l[None, :, :] + view[:, None, :]
    half /= np.maximum(np.linalg.norm(half, axis=2, keepdims=True), 1e-12)
    spec = np.clip(np.einsum("mc,mlc->ml", n, half), 0.0, None) ** shininess
    highlight = specular * (spec @ light_colours)
    return (albedo * (diffuse + ambient) + highlight).astype(np.float32)
