"""Closed test meshes with known geometry (shared by the interpenetration tests)."""
from __future__ import annotations

import numpy as np


def ellipsoid(radii, n_rings=34, n_seg=32):
    """Closed UV ellipsoid: (n_rings - 2) * n_seg + 2 vertices, 2 * that - 4 faces."""
    u = np.linspace(0, np.pi, n_rings)[1:-1]
    w = np.linspace(0, 2 * np.pi, n_seg, endpoint=False)
    uu, ww = np.meshgrid(u, w, indexing="ij")
    v = np.stack([np.sin(uu) * np.cos(ww), np.sin(uu) * np.sin(ww), np.cos(uu)], -1)
    v = np.vstack([v.reshape(-1, 3), [[0, 0, 1], [0, 0, -1]]]) * radii
    top, bot, rings = len(v) - 2, len(v) - 1, n_rings - 2
    f = []
    for i in range(rings - 1):
        for j in range(n_seg):
            a, b = i * n_seg + j, i * n_seg + (j + 1) % n_seg
            f += [[a, a + n_seg, b], [b, a + n_seg, b + n_seg]]
    for j in range(n_seg):
        f += [[top, j, (j + 1) % n_seg],
              [bot, (rings - 1) * n_seg + (j + 1) % n_seg, (rings - 1) * n_seg + j]]
    return v, np.array(f)
