"""KoLeo regulariser (Sablayrolles et al. 2019, used by DINOv2).

Kozachenko-Leonenko differential-entropy estimator on L2-normalised [CLS]
features: -mean log distance to the nearest neighbour in the batch. Pushing
nearest neighbours apart spreads features uniformly over the sphere, which
helps retrieval and kNN use of the embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KoLeoLoss(nn.Module):
    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, D): features of one crop (normalised here). 0 for B < 2."""
        if x.shape[0] < 2:
            return x.sum() * 0.0
        x = F.normalize(x.float(), dim=-1, eps=self.eps)
        with torch.no_grad():
            sim = x @ x.t()
            sim.fill_diagonal_(-2.0)  # never pick yourself
            nn_idx = sim.argmax(dim=1)
        dist = F.pairwise_distance(x, x[nn_idx], eps=self.eps)
        return -torch.log(dist + self.eps).mean()
