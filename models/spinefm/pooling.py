"""Slice -> series: gated attention-MIL pooling (Ilse et al. 2018), as in the paper.

A series is a bag of slice embeddings of variable length; padding masks keep
padded slices out of the softmax so batches of studies with different slice
counts give the same result as one study at a time.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` ignoring positions where ``mask`` is False; all-masked rows give zeros."""
    if mask is None:
        return scores.softmax(dim)
    scores = scores.masked_fill(~mask, float("-inf"))
    out = scores.softmax(dim)
    return torch.nan_to_num(out, nan=0.0)


class GatedAttentionPooler(nn.Module):
    """phi = Linear+ReLU+Dropout -> tanh(V h) * sigmoid(U h) -> w -> masked softmax -> weighted sum.

    ``forward(x (B, N, D), mask (B, N) bool True=valid)`` returns ``(pooled (B, hidden), attn (B, N))``.
    """

    def __init__(self, in_dim: int, hidden: int = 256, attn_dim: int | None = None, dropout: float = 0.1):
        super().__init__()
        attn_dim = attn_dim or hidden
        self.phi = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attn_v = nn.Linear(hidden, attn_dim)  # tanh branch
        self.attn_u = nn.Linear(hidden, attn_dim)  # sigmoid gate
        self.attn_w = nn.Linear(attn_dim, 1)
        self.out_dim = hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.phi(x)
        scores = self.attn_w(torch.tanh(self.attn_v(h)) * torch.sigmoid(self.attn_u(h))).squeeze(-1)
        attn = masked_softmax(scores.float(), mask).to(h.dtype)
        return torch.einsum("bn,bnd->bd", attn, h), attn


def pad_bags(bags: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (n_i, D) -> padded (B, max n, D) and mask (B, max n) True=valid."""
    n = max(b.shape[0] for b in bags)
    out = bags[0].new_zeros(len(bags), n, bags[0].shape[-1])
    mask = torch.zeros(len(bags), n, dtype=torch.bool, device=bags[0].device)
    for i, b in enumerate(bags):
        out[i, : b.shape[0]] = b
        mask[i, : b.shape[0]] = True
    return out, mask
