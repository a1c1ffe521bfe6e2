"""Semantic graph convolution of the release variant (intra-hand GCN, paper 3.2.2).

The release's layer keeps two learnable edge-weight sets, each normalised by its own row
softmax: one over the self loops only (so each row holds a single entry and its weight is
exactly 1) and one over the skeleton neighbours without self loops. Each joint has its own
self and neighbour transforms:

``out_i = W_self[i]^T x_i + sum_{j ~ i} softmax_i(e_nbr)_j W_nbr[j]^T x_j + b``

A layer is ``ReLU(BatchNorm1d(conv(x)))``; four layers per hand, no residual.
(``gcn.py`` instead mixes self and neighbours in one softmax, with a residual and LayerNorm.)
"""
from __future__ import annotations

import torch
from torch import nn

from ..hand_model.joints import adjacency


def masked_row_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scatter edge logits into a matrix and normalise each row over its edges.

    Args:
        logits: (E,) one value per True entry of ``mask``, in row-major order of the entries.
        mask: (J, J) bool; every row needs at least one True entry.
    Returns:
        (J, J) weights, rows summing to 1, exactly 0 where ``mask`` is False.
    """
    full = torch.full(mask.shape, float("-inf"), dtype=logits.dtype, device=logits.device)
    full = full.masked_scatter(mask, logits)
    return torch.softmax(full, dim=-1)


def scatter_row_softmax(logits: torch.Tensor, index: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """:func:`masked_row_softmax` from precomputed buffers (no tensor built per call).

    Args:
        logits: (E,) one value per edge.
        index: (E,) long, the edges' flat positions ``row * J + col`` in row-major order
            (``mask.flatten().nonzero()[:, 0]``).
        fill: (J, J) ``-inf`` everywhere (the value of the entries that are not edges).
    Returns:
        (J, J) weights, rows summing to 1, exactly 0 off the edges.
    """
    full = fill.to(logits.dtype).flatten().scatter(0, index, logits)
    return torch.softmax(full.reshape(fill.shape), dim=-1)


class SemanticGraphConv(nn.Module):
    """Graph convolution with per-joint weights and separate self / neighbour softmaxes.

    Args:
        adj: (J, J) 0/1 skeleton adjacency *without* self loops.
        dim_in, dim_out: channels.
    Parameters:
        weight (2, J, dim_in, dim_out): ``[0]`` self transforms, ``[1]`` neighbour transforms;
        self_logits (1, J); nbr_logits (1, E), E = number of directed edges of ``adj`` (40 for
        the hand), in row-major order of ``adj``'s nonzero entries; bias (dim_out,).
    Forward: x (B, J, dim_in) -> (B, J, dim_out).
    """

    def __init__(self, adj: torch.Tensor, dim_in: int, dim_out: int) -> None:
        super().__init__()
        num = adj.shape[0]
        nbr = adj > 0
        if bool(nbr.diagonal().any()):
            raise ValueError("SemanticGraphConv takes the adjacency without self loops")
        self.register_buffer("self_mask", torch.eye(num, dtype=torch.bool), persistent=False)
        self.register_buffer("nbr_mask", nbr, persistent=False)
        self.register_buffer("self_index", self.self_mask.flatten().nonzero()[:, 0], persistent=False)
        self.register_buffer("nbr_index", nbr.flatten().nonzero()[:, 0], persistent=False)
        self.register_buffer("neg_inf", torch.full((num, num), float("-inf")), persistent=False)
        self.weight = nn.Parameter(torch.empty(2, num, dim_in, dim_out))
        nn.init.xavier_uniform_(self.weight, gain=1.414)
        self.self_logits = nn.Parameter(torch.ones(1, num))
        self.nbr_logits = nn.Parameter(torch.ones(1, int(nbr.sum())))
        self.bias = nn.Parameter(torch.zeros(dim_out))

    def edge_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(self (J, J), neighbour (J, J)) row-normalised weights; the first is the identity."""
        return (scatter_row_softmax(self.self_logits[0], self.self_index, self.neg_inf),
                scatter_row_softmax(self.nbr_logits[0], self.nbr_index, self.neg_inf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_self, a_nbr = (a.to(x.dtype) for a in self.edge_weights())
        # one (B, C) @ (C, D) product per joint, joints as the batch of a bmm: (J, B, C) @ (J, C, D).
        # (x arrives transposed from the previous layer's BatchNorm1d; broadcasting a (B, J, 1, C)
        # against (J, C, D) instead made AOTAutograd's matmul decomposition view a non-viewable
        # expand at batch > 1, which failed torch.compile.)
        xj = x.transpose(0, 1)
        h_self = torch.bmm(xj, self.weight[0]).transpose(0, 1)  # (B, J, D)
        h_nbr = torch.bmm(xj, self.weight[1]).transpose(0, 1)
        return torch.matmul(a_self, h_self) + torch.matmul(a_nbr, h_nbr) + self.bias


class SemanticGCNLayer(nn.Module):
    """``ReLU(BatchNorm1d(SemanticGraphConv(x)))``, the norm over channels. (B, J, C) -> (B, J, D)."""

    def __init__(self, adj: torch.Tensor, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.conv = SemanticGraphConv(adj, dim_in, dim_out)
        self.norm = nn.BatchNorm1d(dim_out)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        return self.act(y)


class SemanticGCN(nn.Module):
    """``num_layers`` :class:`SemanticGCNLayer` in sequence over the 21-joint skeleton.

    Forward: x (B, 21, dim) -> (B, 21, dim).
    """

    def __init__(self, dim: int, num_layers: int = 4, adj: torch.Tensor | None = None) -> None:
        super().__init__()
        if adj is None:
            adj = torch.from_numpy(adjacency(self_loops=False))
        self.layers = nn.Sequential(*(SemanticGCNLayer(adj, dim, dim) for _ in range(num_layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


__all__ = ["SemanticGCN", "SemanticGCNLayer", "SemanticGraphConv", "masked_row_softmax", "scatter_row_softmax"]
