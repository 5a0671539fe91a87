"""Vision Transformer with register tokens (DINOv2/DINOv3 style).

Small and explicit, after timm's ``VisionTransformer`` and DINOv2's
``DinoVisionTransformer``: patch embedding, [CLS] + register tokens, pre-norm
blocks using ``scaled_dot_product_attention``, LayerScale. Two architectures
share the code, chosen by ``ViTConfig``:

* DINOv2 style (the default, every bundle so far): learnt position embeddings
  (interpolated for other crop sizes), GELU MLP, LayerNorm eps 1e-6;
* DINOv3 style: ``pos_embed="rope"`` (2-D rotary embedding on the patch tokens,
  spinefm.rope), ``ffn="swiglu"`` where the checkpoint has it, ``norm_eps=1e-5``.

``spinefm.convert`` loads published DINOv2/DINOv3 checkpoints into either.
``prepare_tokens`` / ``blocks`` / ``norm`` / ``rope_for`` are public so the
synthesizer can run the blocks of two encoders layer by layer, and ``masks``
lets iBOT replace patches with a mask token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .rope import RopePositionEmbedding, apply_rope

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
    pos_embed: str = "learnt"          # "learnt" (DINOv2) or "rope" (DINOv3: 2-D rotary, patch tokens only)
    rope_theta: float = 100.0          # RoPE base period (DINOv3: 100)
    rope_rescale: float | None = None  # training-only coordinate rescaling (DINOv3 pretraining: 2.0)
    ffn: str = "gelu"                  # "gelu" MLP or "swiglu" (gated SiLU; DINOv3 S+/H+/7B, DINOv2 giant)
    mlp_hidden: int | None = None      # feed-forward width; default mlp_ratio * dim (2/3 of it for swiglu, to x8)
    norm_eps: float = 1e-6             # LayerNorm eps (DINOv2 1e-6, DINOv3 1e-5)

    def dims(self) -> tuple[int, int, int]:
        d, n, h = VIT_SIZES[self.size]
        return self.embed_dim or d, self.depth or n, self.num_heads or h

    def ffn_hidden(self) -> int:
        if self.mlp_hidden:
            return int(self.mlp_hidden)
        dim = self.dims()[0]
        hidden = int(dim * self.mlp_ratio)
        return (int(hidden * 2 / 3) + 7) // 8 * 8 if self.ffn == "swiglu" else hidden

    def validate(self) -> None:
        if self.pos_embed not in ("learnt", "rope"):
            raise ValueError(f"ViTConfig.pos_embed must be 'learnt' or 'rope', got {self.pos_embed!r}")
        if self.ffn not in ("gelu", "swiglu"):
            raise ValueError(f"ViTConfig.ffn must be 'gelu' or 'swiglu', got {self.ffn!r}")
        dim, _, heads = self.dims()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {heads}")

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

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """Gated feed-forward: w3(silu(gate) * up), gate and up from one fused w12 (DINOv2's SwiGLUFFNFused)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * up)


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
    def __init__(self, dim: int, num_heads: int, hidden: int, layerscale_init: float, drop_path: float,
                 ffn: str = "gelu", norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = SwiGLU(dim, hidden) if ffn == "swiglu" else Mlp(dim, hidden)
        self.ls2 = LayerScale(dim, layerscale_init)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``rope``: the encoder's ``rope_for(image)`` (None with learnt position embeddings)."""
        x = x + drop_path(self.ls1(self.attn(self.norm1(x), rope)), self.drop_path, self.training)
        return x + drop_path(self.ls2(self.mlp(self.norm2(x))), self.drop_path, self.training)


class VisionTransformer(nn.Module):
    """ViT-{nano,tiny,small,base,large}/16 with register tokens, learnt positions or RoPE.

    ``forward_features`` returns a dict: ``cls`` (B, D), ``registers`` (B, R, D),
    ``patches`` (B, N, D), all after the final norm; ``forward`` returns ``cls``.
    """

    def __init__(self, config: ViTConfig | None = None):
        super().__init__()
        self.config = config = config or ViTConfig()
        config.validate()
        dim, depth, heads = config.dims()
        self.embed_dim, self.num_registers = dim, config.num_registers
        self.patch_size = config.patch_size
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, dim)
        grid = config.img_size // config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, config.num_registers, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.pos_embed = self.rope = None
        if config.pos_embed == "rope":
            self.rope = RopePositionEmbedding(dim // heads, config.rope_theta, config.rope_rescale)
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        rates = torch.linspace(0, config.drop_path, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(dim, heads, config.ffn_hidden(), config.layerscale_init, r, config.ffn, config.norm_eps)
            for r in rates
        )
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.pos_embed is not None:
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
        if self.pos_embed is not None:
            tokens = tokens + self.interpolate_pos_encoding(tokens.shape[1] - 1, h, w)
        regs = self.register_tokens.expand(b, -1, -1)
        return torch.cat([tokens[:, :1], regs, tokens[:, 1:]], dim=1)

    def rope_for(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rotary embedding for an image batch (B, C, H, W); None with learnt position embeddings."""
        if self.rope is None:
            return None
        return self.rope(x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size, x.device)

    def split_tokens(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        r = self.num_registers
        return {"cls": tokens[:, 0], "registers": tokens[:, 1 : 1 + r], "patches": tokens[:, 1 + r :]}

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        tokens = self.prepare_tokens(x, masks)
        rope = self.rope_for(x)
        for block in self.blocks:
            tokens = block(tokens, rope)
        return self.split_tokens(self.norm(tokens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["cls"]
