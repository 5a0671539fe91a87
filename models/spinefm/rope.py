"""2-D rotary position embedding of DINOv3, for the patch tokens of a ViT.

Numerically the RoPE of DINOv3 (and of transformers' ``DINOv3ViTModel`` and
timm's ``RotaryEmbeddingDinoV3``): patch centres at ``(i + 0.5) / n`` mapped to
[-1, 1] separately for rows and columns, periods ``theta ** (4 k / head_dim)``
for ``k < head_dim / 4``, angles ``2 pi coord / period`` laid out as
[rows | columns] and tiled twice ("rotate half" layout). [CLS] and register
tokens are not rotated. No weights: the embedding depends only on the grid, so
any crop size works without interpolation.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate the last ``n_patches`` tokens of ``x`` (B, heads, N, head_dim); the prefix is left as is."""
    cos, sin = rope
    n_prefix = x.shape[-2] - cos.shape[-2]
    prefix, patches = x[..., :n_prefix, :], x[..., n_prefix:, :]
    patches = patches * cos.to(x.dtype) + rotate_half(patches) * sin.to(x.dtype)
    return torch.cat((prefix, patches), dim=-2)


class RopePositionEmbedding(nn.Module):
    """(grid rows, grid columns) -> (cos, sin), each (rows * columns, head_dim), in float32.

    ``rescale`` (DINOv3 trains with 2.0) multiplies the coordinates by a log-uniform factor in
    [1/rescale, rescale] per forward pass, in training mode only.
    """

    def __init__(self, head_dim: int, theta: float = 100.0, rescale: float | None = None):
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"RoPE needs a head dimension divisible by 4, got {head_dim}")
        self.head_dim, self.theta, self.rescale = head_dim, float(theta), rescale
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def periods(self, device) -> torch.Tensor:
        k = torch.arange(self.head_dim // 4, dtype=torch.float32, device=device)
        return self.theta ** (4.0 * k / self.head_dim)

    @staticmethod
    def coords(rows: int, cols: int, device) -> torch.Tensor:
        """(rows * cols, 2) patch centres (y, x) in [-1, 1]."""
        ys = torch.arange(0.5, rows, dtype=torch.float32, device=device) / rows
        xs = torch.arange(0.5, cols, dtype=torch.float32, device=device) / cols
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).flatten(0, 1)
        return 2.0 * grid - 1.0

    def forward(self, rows: int, cols: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        augment = self.training and self.rescale is not None
        key = (rows, cols, str(device))
        if not augment and key in self._cache:
            return self._cache[key]
        coords = self.coords(rows, cols, device)
        if augment:
            r = math.log(self.rescale)
            coords = coords * torch.empty(1, device=device).uniform_(-r, r).exp()
        angles = 2 * math.pi * coords[:, :, None] / self.periods(device)[None, None, :]
        angles = angles.flatten(1, 2).tile(2)  # (N, head_dim): [rows | cols] twice
        out = (angles.cos(), angles.sin())
        if not augment:
            self._cache[key] = out
        return out
