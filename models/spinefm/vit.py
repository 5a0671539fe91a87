"""Vision Transformer with register tokens (DINOv2/DINOv3 style), patch 16.

Small and explicit, after timm's ``VisionTransformer`` and DINOv2's
``DinoVisionTransformer``: patch embedding, [CLS] + register tokens, learnt
position embeddings (interpolated for other crop sizes), pre-norm blocks using
``scaled_dot_product_attention``, LayerScale. ``prepare_tokens`` / ``blocks`` /
``norm`` are public so the synthesizer can run the blocks of two encoders
layer by layer, and ``masks`` lets iBOT replace patches with a mask token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

VIT_SIZES = {
    # name: (embed_dim, depth, num_heads)
    "nano": (64, 2, 2),      # tests and the CPU default bundle
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}


@dataclass
class ViTConfig:
    size: str = "tiny"
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_registers: int = 4
    mlp_ratio: float = 4.0
    layerscale_init: float = 1e-5
    drop_path: float = 0.0
    embed_dim: int | None = None  # override the size table
    depth: int | None = None
    num_heads: int | None = None

    def dims(self) -> tuple[int, int, int]:
        d, n, h = VIT_SIZES[self.size]
        return self.embed_dim or d, self.depth or n, self.num_heads or h

    def to_dict(self) -> dict:
        return asdict(self)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # B, N, D


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if p == 0.0 or not training:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= p
    return x * keep / (1 - p)


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, layerscale_init: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layerscale_init)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.ls1(self.attn(self.norm1(x))), self.drop_path, self.training)
        return x + drop_path(self.ls2(self.mlp(self.norm2(x))), self.drop_path, self.training)


class VisionTransformer(nn.Module):
    """ViT-{nano,tiny,small,base,large}/16 with register tokens.

    ``forward_features`` returns a dict: ``cls`` (B, D), ``registers`` (B, R, D),
    ``patches`` (B, N, D), all after the final norm; ``forward`` returns ``cls``.
    """

    def __init__(self, config: ViTConfig | None = None):
        super().__init__()
        self.config = config = config or ViTConfig()
        dim, depth, heads = config.dims()
        self.embed_dim, self.num_registers = dim, config.num_registers
        self.patch_size = config.patch_size
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, dim)
        grid = config.img_size // config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, config.num_registers, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        rates = torch.linspace(0, config.drop_path, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(dim, heads, config.mlp_ratio, config.layerscale_init, r) for r in rates
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def interpolate_pos_encoding(self, n_patches: int, h: int, w: int) -> torch.Tensor:
        pos = self.pos_embed
        n_pos = pos.shape[1] - 1
        gh, gw = h // self.patch_size, w // self.patch_size
        if n_patches == n_pos and gh == gw:
            return pos
        side = int(math.sqrt(n_pos))
        patch_pos = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos.float(), size=(gh, gw), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
        return torch.cat([pos[:, :1], patch_pos], dim=1)

    def prepare_tokens(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Image (B, C, H, W) -> tokens (B, 1 + R + N, D). ``masks`` (B, N) bool: iBOT masking."""
        b, _, h, w = x.shape
        tokens = self.patch_embed(x)
        if masks is not None:
            tokens = torch.where(masks.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens.shape[1] - 1, h, w)
        regs = self.register_tokens.expand(b, -1, -1)
        return torch.cat([tokens[:, :1], regs, tokens[:, 1:]], dim=1)

    def split_tokens(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        r = self.num_registers
        return {"cls": tokens[:, 0], "registers": tokens[:, 1 : 1 + r], "patches": tokens[:, 1 + r :]}

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        tokens = self.prepare_tokens(x, masks)
        for block in self.blocks:
            tokens = block(tokens)
        return self.split_tokens(self.norm(tokens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["cls"]
