"""Attention-pooling projector: slice embeddings -> a fixed number of LM image tokens.

CoCa-style attentional pooler: ``n_queries`` learnt queries cross-attend to the
concatenated T1 and T2 slice embeddings (a learnt sequence-type embedding tells
them apart; one learnt null key keeps attention defined when a study has no
slices), then a 2-layer MLP maps to the LM width. Release numbers: 64 queries,
up to 350 slices, LM width 4096.
"""

from __future__ import annotations

import torch
from torch import nn

SEQ_KEYS = ("t1", "t2")


class AttentionPoolProjector(nn.Module):
    def __init__(self, in_dim: int, lm_dim: int, n_queries: int = 64, pool_dim: int | None = None,
                 n_heads: int = 8, max_slices: int = 350):
        super().__init__()
        pool_dim = pool_dim or in_dim
        if pool_dim % n_heads:
            raise ValueError(f"pool_dim {pool_dim} not divisible by n_heads {n_heads}")
        self.in_dim, self.lm_dim, self.n_queries, self.max_slices = in_dim, lm_dim, n_queries, max_slices
        self.seq_embed = nn.Parameter(torch.zeros(len(SEQ_KEYS), in_dim))
        self.null_key = nn.Parameter(torch.zeros(1, in_dim))
        self.norm_in = nn.LayerNorm(in_dim)
        self.queries = nn.Parameter(torch.randn(n_queries, pool_dim) * 0.02)
        self.attn = nn.MultiheadAttention(pool_dim, n_heads, kdim=in_dim, vdim=in_dim, batch_first=True)
        self.norm_out = nn.LayerNorm(pool_dim)
        self.mlp = nn.Sequential(nn.Linear(pool_dim, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim))

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "lm_dim": self.lm_dim, "n_queries": self.n_queries,
                "pool_dim": self.queries.shape[1], "n_heads": self.attn.num_heads,
                "max_slices": self.max_slices}

    def pack(self, studies: list[dict[str, torch.Tensor] | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenate T1 then T2 slices per study (capped), pad: ([B, N, D], pad mask [B, N])."""
        device = self.null_key.device
        bags = []
        for emb in studies:
            parts = [self.null_key]
            for i, key in enumerate(SEQ_KEYS):
                x = (emb or {}).get(key)
                if x is None or x.numel() == 0:
                    continue
                if x.dim() != 2 or x.shape[1] != self.in_dim:
                    raise ValueError(f"slice embeddings[{key!r}] must be [n_slices, {self.in_dim}], "
                                     f"got {tuple(x.shape)}")
                parts.append(x.to(device=device, dtype=self.null_key.dtype) + self.seq_embed[i])
            bag = torch.cat(parts)[: self.max_slices + 1]
            bags.append(bag)
        n = max(b.shape[0] for b in bags)
        x = self.null_key.new_zeros(len(bags), n, self.in_dim)
        pad = torch.ones(len(bags), n, dtype=torch.bool, device=device)
        for i, b in enumerate(bags):
            x[i, : b.shape[0]] = b
            pad[i, : b.shape[0]] = False
        return x, pad

    def forward(self, studies: list[dict[str, torch.Tensor] | None]) -> torch.Tensor:
        """[B, n_queries, lm_dim] image tokens."""
        x, pad = self.pack(studies)
        kv = self.norm_in(x)
        q = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1)
        pooled, _ = self.attn(q, kv, kv, key_padding_mask=pad, need_weights=False)
        return self.mlp(self.norm_out(pooled + q))
