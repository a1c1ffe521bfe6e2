"""Small building blocks of the release variant of DIR (``DIRConfig.variant = "release"``).

Each block reproduces the computation of the corresponding part of the authors' public release
(read for facts only; no code of it is used):

* :class:`PreActResidual`: the decoder's residual unit, pre-activation (BN, ReLU before each
  conv) with a 1x1 -> 3x3 -> 1x1 bottleneck of half the output width and a 1x1 projection
  shortcut when the widths differ.
* :class:`PointMLP`: ``Conv1d(1x1), BatchNorm1d, ReLU, Conv1d(1x1)`` applied per token, used for
  the sampled joint features, the coordinate embeddings and the projected-feature embedding.
* :func:`robust_rot6d_to_matrix`: the "robust" 6D rotation, which orthonormalises the two
  predicted columns symmetrically instead of Gram-Schmidt.
"""
from __future__ import annotations

import torch
from torch import nn

#: Smallest vector norm divided by in :func:`normalize` (as in the release's 6D conversion).
NORM_EPS = 1e-8


class PreActResidual(nn.Module):
    """Pre-activation bottleneck residual unit.

    ``y = conv3(R(bn3(conv2(R(bn2(conv1(R(bn1(x)))))))) + skip(x)`` with R = ReLU, conv1 1x1
    (cin -> cout/2), conv2 3x3 (cout/2 -> cout/2), conv3 1x1 (cout/2 -> cout), every conv with
    a bias; ``skip`` is a 1x1 conv with bias when ``cin != cout``, else the identity.

    Forward: x (B, cin, h, w) -> (B, cout, h, w).
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.norm1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 1)
        self.norm2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.norm3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.act(self.norm1(x)))
        y = self.conv2(self.act(self.norm2(y)))
        y = self.conv3(self.act(self.norm3(y)))
        return y + (x if self.skip is None else self.skip(x))


class PointMLP(nn.Sequential):
    """Per-token two-layer MLP with batch normalisation over channels.

    Layers (state-dict indices 0, 1, 3): ``Conv1d(cin, cout, 1)``, ``BatchNorm1d(cout)``, ReLU,
    ``Conv1d(cout, cout, 1)``.

    Forward: x (B, N, cin) -> (B, N, cout) (tokens along N; the convs see (B, C, N)).
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv1d(cin, cout, 1), nn.BatchNorm1d(cout), nn.ReLU(), nn.Conv1d(cout, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def normalize(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors along the last axis, the norm clamped below at :data:`NORM_EPS`. (..., 3)."""
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(NORM_EPS)


def robust_rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Symmetric ("robust") 6D -> rotation matrix.

    With ``a = n(x[:3])``, ``b = n(x[3:])`` (n = normalise), the bisector ``m = n(a + b)`` and
    its orthogonal ``o = n(a - b)`` (orthogonal because a and b are unit vectors) give the
    columns ``c0 = n(m + o)``, ``c1 = n(m - o)``: two orthonormal vectors at +-45 degrees from
    the bisector, so both predicted directions are treated alike (Gram-Schmidt keeps ``a`` and
    bends ``b``). ``c2 = n(c0 x c1)``.

    Args:
        x: (..., 6) two 3-vectors, in the order of the first two columns.
    Returns:
        (..., 3, 3) rotation matrices with columns ``c0, c1, c2``.
    """
    a, b = normalize(x[..., :3]), normalize(x[..., 3:6])
    mid, orth = normalize(a + b), normalize(a - b)
    c0, c1 = normalize(mid + orth), normalize(mid - orth)
    c2 = normalize(torch.linalg.cross(c0, c1, dim=-1))
    return torch.stack([c0, c1, c2], dim=-1)


__all__ = ["NORM_EPS", "PointMLP", "PreActResidual", "normalize", "robust_rot6d_to_matrix"]
