"""DINO projection head: MLP -> bottleneck -> L2-norm -> weight-normalised prototypes.

The L2-normalised bottleneck and unit-norm prototypes make the logits cosine
similarities, which keeps the softmax temperature meaningful and avoids the
collapse where a few prototypes grow large norms (DINO, DINOv2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DINOHead(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
    ):
        super().__init__()
        nlayers = max(1, nlayers)
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
            for _ in range(nlayers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        # Prototypes: weight normalisation with the gain fixed at 1 ("norm_last_layer"),
        # written out so the EMA teacher and checkpoints only see one plain tensor.
        self.last_layer = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.mlp.modules() if isinstance(self.mlp, nn.Sequential) else [self.mlp]:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.last_layer, std=0.02)

    def prototypes(self) -> torch.Tensor:
        return F.normalize(self.last_layer, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1, eps=1e-6)
        return F.linear(z, self.prototypes().to(z.dtype))
