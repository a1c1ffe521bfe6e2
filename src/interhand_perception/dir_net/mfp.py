"""Multi-plane feature projection (MFP, paper 3.2.3): joint features back onto the image map.

Three variants (``DIRConfig.mfp_mode``):

* ``"bone"`` (release variant, default): one plane per bone and hand. A cell whose centre
  lies closer than ``radius`` cells to the projected 2D bone segment gets
  ``(1 - t) * f_parent + t * f_child``, ``t`` in [0, 1] the position of the centre's
  orthogonal projection along the bone (clamped to the segment); other cells are zero.
  2 hands x 20 bones x C channels.
* ``"joint"`` (paper): one plane per joint and hand, the feature splatted with a separable
  tent footprint of half-width ``radius`` cells (``radius = 1`` is the bilinear splat).
  2 hands x 21 joints x C channels.
* ``"single"`` (ablation): the bone splats of both hands averaged into one C-channel plane.

``radius = 16 / stride`` cells: 1 cell on the stride-16 map, 2 cells on the stride-8 map,
i.e. a fixed 16-pixel footprint in the input crop.

Cell units: on an (h, w) map, cell (i, j) covers x in [j, j + 1), y in [i, i + 1) and its
centre is (j + 0.5, i + 0.5); a normalised coordinate ``u`` in [-1, 1] maps to
``x = (u + 1) * w / 2`` (the ``grid_sample(align_corners=False)`` convention).
"""
from __future__ import annotations

import torch
from torch import nn

from ..hand_model.joints import BONES, NUM_JOINTS, SIDES

MFP_REFERENCE_STRIDE = 16


def splat_radius(stride: int) -> float:
    """Footprint radius in cells of a map with the given stride (16 -> 1, 8 -> 2)."""
    return MFP_REFERENCE_STRIDE / float(stride)


def cell_centres(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(h * w, 2) cell centres ``(x, y)`` in cell units, row-major (y outer), like's dtype/device."""
    ys = torch.arange(h, device=like.device, dtype=like.dtype) + 0.5
    xs = torch.arange(w, device=like.device, dtype=like.dtype) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def to_cells(uv: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(..., 2) normalised ``(u, v)`` in [-1, 1] -> (..., 2) cell units ``(x, y)``."""
    # Python-number scales: a tensor made from a list here would be a host-to-device copy
    # (a sync on CUDA) in every forward.
    return torch.stack([(uv[..., 0] + 1.0) * (w / 2.0), (uv[..., 1] + 1.0) * (h / 2.0)], dim=-1)


def centres_for(centres: torch.Tensor | None, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """``centres`` (a precomputed (h * w, 2) buffer) in like's dtype, or :func:`cell_centres`."""
    if centres is None or centres.shape[0] != h * w:
        return cell_centres(h, w, like)
    return centres.to(like.dtype)


def segment_weights(a: torch.Tensor, b: torch.Tensor, h: int, w: int, radius: float,
                    centres: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend weights of K segments on an (h, w) map.

    Args:
        a, b: (B, K, 2) segment endpoints in cell units (no gradient is taken through them).
        h, w: map size; radius: footprint radius in cells (strict ``distance < radius``).
        centres: optional (h * w, 2) :func:`cell_centres` (a module buffer); None builds them.
    Returns:
        (wa, wb), each (B, K, h * w): ``(1 - t)`` and ``t`` inside the footprint, 0 outside.
    """
    p = centres_for(centres, h, w, a)  # (P, 2)
    d = (b - a)[:, :, None, :]  # (B, K, 1, 2)
    ap = p[None, None] - a[:, :, None, :]  # (B, K, P, 2)
    len2 = (d * d).sum(-1).clamp_min(1e-12)  # (B, K, 1)
    t = ((ap * d).sum(-1) / len2).clamp(0.0, 1.0)  # (B, K, P)
    dist2 = ((ap - t[..., None] * d) ** 2).sum(-1)
    inside = (dist2 < radius * radius).to(a.dtype)
    return (1.0 - t) * inside, t * inside


def splat_segments(a: torch.Tensor, b: torch.Tensor, fa: torch.Tensor, fb: torch.Tensor,
                   h: int, w: int, radius: float, centres: torch.Tensor | None = None) -> torch.Tensor:
    """Splat K segments with linearly blended endpoint features.

    Args:
        a, b: (B, K, 2) endpoints in cell units; fa, fb: (B, K, C) endpoint features;
        centres: optional (h * w, 2) cell centres.
    Returns:
        (B, K, C, h, w) planes (see :func:`segment_weights`).
    """
    wa, wb = segment_weights(a, b, h, w, radius, centres)
    out = wa[:, :, None, :] * fa[..., None] + wb[:, :, None, :] * fb[..., None]
    return out.reshape(out.shape[0], out.shape[1], out.shape[2], h, w)


def point_weights(q: torch.Tensor, h: int, w: int, radius: float,
                  centres: torch.Tensor | None = None) -> torch.Tensor:
    """Tent weights ``max(0, 1 - |dx| / r) * max(0, 1 - |dy| / r)`` of K points on an (h, w) map.

    Args:
        q: (B, K, 2) points in cell units; centres: optional (h * w, 2) cell centres.
    Returns:
        (B, K, h * w).
    """
    diff = (centres_for(centres, h, w, q)[None, None] - q[:, :, None, :]).abs() / radius  # (B, K, P, 2)
    return torch.relu(1.0 - diff).prod(dim=-1)


def splat_points(q: torch.Tensor, f: torch.Tensor, h: int, w: int, radius: float,
                 centres: torch.Tensor | None = None) -> torch.Tensor:
    """Splat K points with a separable tent footprint of half-width ``radius`` cells.

    Args:
        q: (B, K, 2) points in cell units; f: (B, K, C) features; centres: optional cell centres.
    Returns:
        (B, K, C, h, w); weight :func:`point_weights`.
    """
    wgt = point_weights(q, h, w, radius, centres)  # (B, K, P)
    out = wgt[:, :, None, :] * f[..., None]
    return out.reshape(out.shape[0], out.shape[1], out.shape[2], h, w)


class MultiPlaneProjection(nn.Module):
    """Projection of joint features to planes + conv enhancement added to the map.

    Args:
        mode: "bone" | "joint" | "single".
        channels: C, joint-feature channels (64).
        width: channels of the decoder map.
        kernel: kernel of the first enhancement conv (3 as in the release, or 1).
    Forward:
        fmap: (B, width, h, w) fused map; joints2d: {side: (B, 21, 2)} in [-1, 1] (detached
        here); feats: {side: (B, 21, C)}; radius: footprint in cells; size: (h, w) as Python
        ints (static, so tracing records no shape logic).
        returns (B, width, h, w) = fmap + conv(planes).

    ``map_size`` (h, w), when given, precomputes the cell centres of that map as a buffer
    (non-persistent, like the bone indices): the forward then builds no constant tensor.
    """

    def __init__(self, mode: str, channels: int, width: int, kernel: int = 3,
                 map_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        if mode not in ("bone", "joint", "single"):
            raise ValueError(f"unknown MFP mode {mode!r}")
        self.mode = mode
        planes = {"bone": 2 * len(BONES), "joint": 2 * NUM_JOINTS, "single": 1}[mode]
        self.in_channels = planes * channels
        parent = [p for p, _ in BONES]
        child = [c for _, c in BONES]
        self.register_buffer("parent", torch.tensor(parent), persistent=False)
        self.register_buffer("child", torch.tensor(child), persistent=False)
        # bone ends of both hands in the concatenated 42-joint order (left first)
        self.register_buffer("bone_parent", torch.tensor(parent + [p + NUM_JOINTS for p in parent]), persistent=False)
        self.register_buffer("bone_child", torch.tensor(child + [c + NUM_JOINTS for c in child]), persistent=False)
        centres = None if map_size is None else cell_centres(*map_size, torch.zeros(()))
        self.register_buffer("centres", centres, persistent=False)
        self.enhance = nn.Sequential(
            nn.Conv2d(self.in_channels, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 1),
        )

    def project(self, joints2d: dict, feats: dict, h: int, w: int, radius: float) -> torch.Tensor:
        """Planes of both hands, left first: (B, in_channels, h, w)."""
        q = torch.cat([to_cells(joints2d[s].detach(), h, w) for s in SIDES], dim=1)  # (B, 42, 2)
        f = torch.cat([feats[s] for s in SIDES], dim=1)  # (B, 42, C)
        bsz = f.shape[0]
        if self.mode == "joint":
            planes = splat_points(q, f, h, w, radius, self.centres)
            return planes.reshape(bsz, -1, h, w)
        par, chi = self.bone_parent, self.bone_child
        a, b, fa, fb = q[:, par], q[:, chi], f[:, par], f[:, chi]
        if self.mode == "bone":
            return splat_segments(a, b, fa, fb, h, w, radius, self.centres).reshape(bsz, -1, h, w)
        # single plane: average of the bone splats covering each cell
        wa, wb = (t.to(f.dtype) for t in segment_weights(a, b, h, w, radius, self.centres))  # (B, 40, P)
        total = torch.matmul(fa.transpose(1, 2), wa) + torch.matmul(fb.transpose(1, 2), wb)  # (B, C, P)
        cover = (wa + wb).sum(dim=1, keepdim=True).clamp_min(1.0)  # (B, 1, P)
        return (total / cover).reshape(bsz, -1, h, w)

    def forward(self, fmap: torch.Tensor, joints2d: dict, feats: dict, radius: float,
                size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        return fmap + self.enhance(self.project(joints2d, feats, h, w, radius))
