"""Inter-hand transformer over the 42 joint tokens of both hands (paper 3.2.2).

Pre-LayerNorm blocks (attention + MLP, both residual) with a learnable position embedding
per token (token k < 21: left joint k; k >= 21: right joint k - 21).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention. x (B, N, dim) -> (B, N, dim)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, N, d/heads)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x += Attn(LN(x)); x += MLP(LN(x))``. x (B, N, dim) -> (B, N, dim)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class InterHandTransformer(nn.Module):
    """Position embedding + ``depth`` pre-LN blocks + final LayerNorm.

    Args:
        num_tokens: 42 (21 joints x 2 hands, left first).
        dim, depth, heads, mlp_ratio: block settings.
    Forward: tokens (B, num_tokens, dim) -> (B, num_tokens, dim).
    """

    def __init__(self, num_tokens: int = 42, dim: int = 128, depth: int = 3, heads: int = 4,
                 mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(num_tokens, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)
