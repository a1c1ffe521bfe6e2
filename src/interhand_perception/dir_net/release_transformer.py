"""Inter-hand transformer of the release variant: blocks 1..L of L + 1 built, shared LayerNorm.

The release builds ``L + 1`` pre-LN blocks (L = 3: four blocks) but its forward starts at the
second one; after *each* block it applies one shared LayerNorm, and it ends with a head
``LayerNorm -> Linear(dim -> out_dim)``. The first block's weights are in the checkpoint and
never used; they are kept here so that the checkpoint loads strictly.

``x = tokens + pos_embed``; for k in 1..L: ``x = block_norm(block_k(x))``;
``out = head(head_norm(x))``. The blocks' and ``block_norm``'s LayerNorms use eps 1e-6, the
head's LayerNorm the default 1e-5, as in the release.
"""
from __future__ import annotations

import torch
from torch import nn

from .transformer import TransformerBlock

#: LayerNorm epsilon of the release's blocks and of the shared per-block norm.
BLOCK_NORM_EPS = 1e-6


class BlockSkippingTransformer(nn.Module):
    """Position embedding, ``depth`` used blocks (+1 unused), shared norm, projection head.

    Args:
        num_tokens: 42 (left joints then right joints).
        dim: token width (128); out_dim: output width (64).
        depth: blocks run (3); ``depth + 1`` are built, block 0 unused.
        heads, mlp_ratio: block settings (4, 2.0).
    Forward: tokens (B, num_tokens, dim) -> (B, num_tokens, out_dim).
    """

    def __init__(self, num_tokens: int = 42, dim: int = 128, out_dim: int = 64, depth: int = 3,
                 heads: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth + 1))
        for blk in self.blocks:
            blk.norm1.eps = blk.norm2.eps = BLOCK_NORM_EPS
        self.block_norm = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.head_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens + self.pos_embed
        for blk in self.blocks[1:]:
            x = self.block_norm(blk(x))
        return self.head(self.head_norm(x))


__all__ = ["BLOCK_NORM_EPS", "BlockSkippingTransformer"]
