"""timm state dicts -> our ViT: ``Eva`` (timm's DINOv3, RoPE) and ``VisionTransformer`` (DINOv2, learnt positions).

A timm state dict does not say its head count, norm eps or RoPE period: they come from the
directory's config.json (``architecture``, optional ``model_args``), else from the architecture
name (``vit_large_patch16_dinov3`` -> 16 heads, eps 1e-5, period 100), else from the caller
(``--num-heads`` ...); without any of them the conversion stops rather than guess.
Position embeddings that cover [CLS] and registers (timm's ``no_embed_class=False``) are folded into
those tokens, which is exact because the tokens are constants.
"""

from __future__ import annotations

import math
import re

import torch

from ..vit import VisionTransformer, ViTConfig
from . import CheckpointError, Source, build_encoder

HEADS_BY_SIZE = {"tiny": 3, "small": 6, "small_plus": 6, "base": 12, "large": 16, "huge": 16, "huge_plus": 20,
                 "giant": 24, "gigantic": 16, "7b": 32}


def architecture_of(config: dict | None) -> str:
    if not config:
        return ""
    return str(config.get("architecture") or config.get("model_name") or "").split(".")[0]


def heads_from_name(arch: str) -> int | None:
    m = re.match(r"vit_(.+?)_patch\d+", arch)
    return HEADS_BY_SIZE.get(m.group(1)) if m else None


def _grid_fold(src: Source, ours: dict, n_reg: int, dim: int, origin: str) -> int:
    """Learnt pos_embed (1, P, D) -> ours (1, 1 + grid^2, D); returns the grid side."""
    pos = src.take("pos_embed")
    n = pos.shape[1]
    for prefix in (0, 1, 1 + n_reg):
        side = math.isqrt(max(n - prefix, 0))
        if side * side == n - prefix and side > 0:
            break
    else:
        raise CheckpointError(f"{origin}: wrong shape for 'pos_embed': {tuple(pos.shape)} is not a square grid "
                              f"(+ 0, 1 or {1 + n_reg} prefix tokens)")
    cls_pos = pos[:, :1] if prefix >= 1 else torch.zeros(1, 1, dim, dtype=pos.dtype)
    if prefix == 1 + n_reg and n_reg:  # registers have positions in this layout: fold them into the tokens
        ours["register_tokens"] = ours["register_tokens"] + pos[:, 1:1 + n_reg]
    ours["pos_embed"] = torch.cat([cls_pos, pos[:, prefix:]], dim=1)
    src.names["pos_embed"] = "pos_embed"
    return side


def convert_timm(state: dict[str, torch.Tensor], config: dict | None, origin: str, num_heads: int | None = None,
                 norm_eps: float | None = None, rope_theta: float | None = None,
                 img_size: int | None = None) -> tuple[VisionTransformer, dict]:
    src = Source(state, origin)
    eva = src.has("blocks.0.gamma_1") or src.has("blocks.0.attn.q_bias") or src.has("blocks.0.mlp.fc1_g.weight") \
        or not src.has("pos_embed")
    arch = architecture_of(config)
    model_args = (config or {}).get("model_args") or {}
    heads = num_heads or model_args.get("num_heads") or heads_from_name(arch)
    if not heads:
        raise CheckpointError(f"{origin}: a timm state dict does not say its number of attention heads; "
                              "convert its directory with timm's config.json, or pass --num-heads")
    dinov3 = eva or "dinov3" in arch
    eps = norm_eps or (1e-5 if dinov3 else 1e-6)
    ours: dict[str, torch.Tensor] = {}
    cls = src.take("cls_token")
    dim = cls.shape[-1]
    ours["cls_token"] = cls.reshape(1, 1, dim)
    ours["register_tokens"] = src.take("reg_token") if src.has("reg_token") else torch.zeros(1, 0, dim)
    n_reg = ours["register_tokens"].shape[1]
    ours["mask_token"] = src.take_or("mask_token", torch.zeros(1, dim)).reshape(1, dim)
    ours["patch_embed.proj.weight"] = src.take("patch_embed.proj.weight")
    ours["patch_embed.proj.bias"] = src.take_or("patch_embed.proj.bias", torch.zeros(dim))
    patch = ours["patch_embed.proj.weight"].shape[-1]
    learnt = src.has("pos_embed")
    side = _grid_fold(src, ours, n_reg, dim, origin) if learnt else None
    depth = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    if depth == 0:
        raise CheckpointError(f"{origin}: missing key 'blocks.0.norm1.weight' (no transformer blocks)")
    zero, one = torch.zeros(dim), torch.ones(dim)
    gated, hidden = src.has("blocks.0.mlp.fc1_g.weight"), None
    for i in range(depth):
        p = f"blocks.{i}."
        for n in ("norm1", "norm2"):
            ours[f"{p}{n}.weight"], ours[f"{p}{n}.bias"] = src.take(f"{p}{n}.weight"), src.take(f"{p}{n}.bias")
        ours[f"{p}attn.qkv.weight"] = src.take(f"{p}attn.qkv.weight")
        src.names[f"{p}attn.qkv.weight"] = f"{p}attn.qkv.weight"
        if src.has(f"{p}attn.q_bias"):  # Eva: q and v biases, k fixed at zero
            ours[f"{p}attn.qkv.bias"] = torch.cat([src.take(f"{p}attn.q_bias"), zero, src.take(f"{p}attn.v_bias")])
        else:
            ours[f"{p}attn.qkv.bias"] = src.take_or(f"{p}attn.qkv.bias", torch.zeros(3 * dim))
        ours[f"{p}attn.proj.weight"] = src.take(f"{p}attn.proj.weight")
        ours[f"{p}attn.proj.bias"] = src.take_or(f"{p}attn.proj.bias", zero)
        ours[f"{p}ls1.gamma"] = src.take_or(f"{p}gamma_1", src.take_or(f"{p}ls1.gamma", one))
        ours[f"{p}ls2.gamma"] = src.take_or(f"{p}gamma_2", src.take_or(f"{p}ls2.gamma", one))
        if gated:
            g, x = src.take(f"{p}mlp.fc1_g.weight"), src.take(f"{p}mlp.fc1_x.weight")
            ours[f"{p}mlp.w12.weight"] = torch.cat([g, x])
            ours[f"{p}mlp.w12.bias"] = torch.cat([src.take_or(f"{p}mlp.fc1_g.bias", torch.zeros(g.shape[0])),
                                                  src.take_or(f"{p}mlp.fc1_x.bias", torch.zeros(x.shape[0]))])
            ours[f"{p}mlp.w3.weight"] = src.take(f"{p}mlp.fc2.weight")
            ours[f"{p}mlp.w3.bias"] = src.take_or(f"{p}mlp.fc2.bias", zero)
            hidden = g.shape[0]
            src.names[f"{p}mlp.w12.weight"] = f"{p}mlp.fc1_g.weight (+ fc1_x)"
        else:
            w1 = src.take(f"{p}mlp.fc1.weight")
            ours[f"{p}mlp.fc1.weight"] = w1
            ours[f"{p}mlp.fc1.bias"] = src.take_or(f"{p}mlp.fc1.bias", torch.zeros(w1.shape[0]))
            ours[f"{p}mlp.fc2.weight"] = src.take(f"{p}mlp.fc2.weight")
            ours[f"{p}mlp.fc2.bias"] = src.take_or(f"{p}mlp.fc2.bias", zero)
            hidden = w1.shape[0]
            src.names[f"{p}mlp.fc1.weight"] = f"{p}mlp.fc1.weight"
    ours["norm.weight"], ours["norm.bias"] = src.take("norm.weight"), src.take("norm.bias")
    for k in state:  # a classifier head is not part of the encoder
        if k.startswith("head."):
            src.skip(k)
    size = side * patch if side else (img_size or int(model_args.get("img_size", 224)))
    cfg = ViTConfig(size="tiny", img_size=size, patch_size=patch, in_chans=ours["patch_embed.proj.weight"].shape[1],
                    num_registers=n_reg, embed_dim=dim, depth=depth, num_heads=int(heads), layerscale_init=1.0,
                    pos_embed="learnt" if learnt else "rope",
                    rope_theta=float(rope_theta or model_args.get("rope_temperature", 100.0)),
                    ffn="swiglu" if gated else "gelu", mlp_hidden=hidden, norm_eps=float(eps))
    return build_encoder(cfg, ours, src), {"architecture": arch or ("timm Eva" if eva else "timm VisionTransformer")}
