"""Intra-hand graph convolution over the 21-joint kinematic tree (paper 3.2.2).

Each layer mixes a joint only with itself and the joints it shares a bone with: the edge
weights are learnable but masked by the skeleton adjacency (self loops included) and
normalised per row with a softmax, so one layer has exactly a one-bone receptive field.

``node_weights=True`` gives every joint its own self/neighbour transforms (the "semantic" GCN
of the reference release, 2 x 21 x dim^2 weights per layer, ~11M parameters at T = 2 for both
hands); the default shares one pair of transforms across joints.
"""
from __future__ import annotations

import torch
from torch import nn

from ..hand_model.joints import adjacency


class GraphConv(nn.Module):
    """One masked graph convolution with separate self / neighbour transforms.

    ``out_i = a_ii * W_self x_i + sum_{j ~ i, j != i} a_ij * W_nbr x_j + b``, with
    ``a_i. = softmax over the allowed entries of row i`` of learnable logits. With
    ``node_weights`` the transforms are per joint (``W_self[i]``, ``W_nbr[j]``).

    Args:
        adj: (J, J) 0/1 adjacency including self loops.
        dim_in, dim_out: channels.
        node_weights: per-joint transforms instead of shared ones.
    Forward: x (B, J, dim_in) -> (B, J, dim_out).
    """

    def __init__(self, adj: torch.Tensor, dim_in: int, dim_out: int, node_weights: bool = False) -> None:
        super().__init__()
        adj = adj.float()
        if not torch.all(adj.diagonal() > 0):
            raise ValueError("GraphConv adjacency needs self loops")
        num = adj.shape[0]
        self.register_buffer("mask", adj > 0, persistent=False)
        self.register_buffer("eye", torch.eye(num), persistent=False)
        self.edge_logits = nn.Parameter(torch.zeros(adj.shape))
        self.node_weights = node_weights
        if node_weights:
            bound = (6.0 / (dim_in + dim_out)) ** 0.5
            self.w_self = nn.Parameter(torch.empty(num, dim_in, dim_out).uniform_(-bound, bound))
            self.w_nbr = nn.Parameter(torch.empty(num, dim_in, dim_out).uniform_(-bound, bound))
            self.bias = nn.Parameter(torch.zeros(dim_out))
        else:
            self.self_lin = nn.Linear(dim_in, dim_out, bias=False)
            self.nbr_lin = nn.Linear(dim_in, dim_out)

    def edge_weights(self) -> torch.Tensor:
        """(J, J) row-normalised weights, exactly zero outside the adjacency."""
        neg = torch.full_like(self.edge_logits, float("-inf"))
        return torch.softmax(torch.where(self.mask, self.edge_logits, neg), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.edge_weights().to(x.dtype)
        eye = self.eye.to(x.dtype)
        diag = (a * eye).sum(dim=-1)  # (J,)
        off = a * (1.0 - eye)
        if self.node_weights:
            xs = x.unsqueeze(-2)  # (B, J, 1, C) @ (J, C, D) -> (B, J, 1, D)
            h_self = torch.matmul(xs, self.w_self).squeeze(-2)
            h_nbr = torch.matmul(xs, self.w_nbr).squeeze(-2)
            return diag[None, :, None] * h_self + torch.matmul(off, h_nbr) + self.bias
        return diag[None, :, None] * self.self_lin(x) + self.nbr_lin(torch.matmul(off, x))


class IntraHandGCN(nn.Module):
    """Residual stack of :class:`GraphConv` layers for one hand.

    Each layer: ``x = x + ReLU(LayerNorm(GraphConv(x)))`` (LayerNorm is per joint, so the
    neighbourhood structure is preserved exactly).

    Args:
        dim: joint feature channels.
        num_layers: graph-conv layers (0 = identity).
        adj: (J, J) adjacency with self loops; default the 21-joint skeleton.
        node_weights: per-joint transforms (see :class:`GraphConv`).
    Forward: x (B, J, dim) -> (B, J, dim).
    """

    def __init__(self, dim: int, num_layers: int = 4, adj: torch.Tensor | None = None,
                 node_weights: bool = False) -> None:
        super().__init__()
        if adj is None:
            adj = torch.from_numpy(adjacency(self_loops=True))
        self.convs = nn.ModuleList(GraphConv(adj, dim, dim, node_weights) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_layers))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = x + self.act(norm(conv(x)))
        return x
