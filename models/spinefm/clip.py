"""Tri-modal CLIP alignment: T1 series, T2 series and the report text.

T1 and T2 are not aligned to each other directly (worse than concatenation in
the paper) but each through the report: symmetric InfoNCE between the case
embedding (mean of the normalised T1 and T2 projections) and the report, plus
the same loss for each sequence alone so that a study with only T1 or only T2
still lands in the shared space.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import gather_with_grad
from .pooling import GatedAttentionPooler


def info_nce(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, gather: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched (image_i, text_i); inputs L2-normalised.

    With DDP, negatives come from all ranks; positives are the local rows.
    """
    if gather:
        all_image, all_text = gather_with_grad(image), gather_with_grad(text)
    else:
        all_image, all_text = image, text
    offset = 0
    if all_image.shape[0] != image.shape[0]:
        import torch.distributed as dist

        offset = dist.get_rank() * image.shape[0]
    scale = logit_scale.exp().clamp(max=100.0)
    labels = torch.arange(image.shape[0], device=image.device) + offset
    logits_i = scale * image @ all_text.t()
    logits_t = scale * text @ all_image.t()
    return 0.5 * (F.cross_entropy(logits_i.float(), labels) + F.cross_entropy(logits_t.float(), labels))


@dataclass
class ClipConfig:
    hidden: int = 256          # pooler width
    proj_dim: int = 1024       # shared embedding width
    text_dim: int = 768        # text encoder width (BiomedBERT 768, MiniLM 384)
    dropout: float = 0.1
    temperature_init: float = 0.07
    single_weight: float = 0.5  # weight of the T1-only and T2-only terms

    def to_dict(self) -> dict:
        return asdict(self)


class SeriesBranch(nn.Module):
    """Slice embeddings of one series -> pooled -> projected, L2-normalised series embedding."""

    def __init__(self, in_dim: int, cfg: ClipConfig):
        super().__init__()
        self.pooler = GatedAttentionPooler(in_dim, cfg.hidden, dropout=cfg.dropout)
        self.proj = nn.Linear(cfg.hidden, cfg.proj_dim)

    def forward(self, slices: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, attn = self.pooler(slices, mask)
        return F.normalize(self.proj(pooled), dim=-1), attn


def case_embedding(t1: torch.Tensor | None, t2: torch.Tensor | None,
                   has_t1: torch.Tensor | None = None, has_t2: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the available normalised projections, re-normalised (cosine space)."""
    parts, weights = [], []
    for emb, has in ((t1, has_t1), (t2, has_t2)):
        if emb is None:
            continue
        w = torch.ones(emb.shape[0], 1, device=emb.device) if has is None else has.float().view(-1, 1)
        parts.append(emb * w)
        weights.append(w)
    if not parts:
        raise ValueError("case_embedding needs at least one of T1 or T2")
    total = sum(parts) / sum(weights).clamp(min=1.0)
    return F.normalize(total, dim=-1)


class TriModalCLIP(nn.Module):
    """Poolers and projections for T1 and T2, the text projection and the learnt temperature."""

    def __init__(self, t1_dim: int, t2_dim: int, cfg: ClipConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ClipConfig()
        self.t1 = SeriesBranch(t1_dim, cfg)
        self.t2 = SeriesBranch(t2_dim, cfg)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.proj_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature_init)))

    def encode_text(self, text_features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(text_features), dim=-1)

    def loss(self, t1: torch.Tensor, t1_mask: torch.Tensor, t2: torch.Tensor, t2_mask: torch.Tensor,
             text_features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Slice embeddings (B, N, D) with masks (B, N); a case may lack T1 or T2 (all-False mask).

        Returns the loss terms (``loss`` is the total) and the embeddings they were computed on
        (``z_case``, ``z_t1``, ``z_t2``, ``has_t1``, ``has_t2``).
        """
        has_t1, has_t2 = t1_mask.any(1), t2_mask.any(1)
        z1, _ = self.t1(t1, t1_mask)
        z2, _ = self.t2(t2, t2_mask)
        zt = self.encode_text(text_features)
        case = case_embedding(z1, z2, has_t1, has_t2)
        out = {"case": info_nce(case, zt, self.logit_scale)}
        total = out["case"]
        for name, z, has in (("t1", z1, has_t1), ("t2", z2, has_t2)):
            if has.sum() >= 2:
                out[name] = info_nce(z[has], zt[has], self.logit_scale, gather=False)
                total = total + self.cfg.single_weight * out[name]
        out["loss"] = total
        # The embeddings themselves (not losses), for auxiliary objectives on the same forward pass.
        out.update(z_case=case, z_t1=z1, z_t2=z2, has_t1=has_t1, has_t2=has_t2)
        return out
