"""transformers' DINOv3ViTModel / Dinov2Model / Dinov2WithRegistersModel -> our ViT.

Reads both the names ``save_pretrained`` writes (``layer.N``, ``attention.attention.query``,
``mlp.weights_in``) and the in-memory ones of transformers 5 (``model.layer.N``,
``attention.q_proj``, ``mlp.gate_proj``). q, k and v become our fused qkv (a missing bias is
zero, as DINOv3's key bias is); SwiGLU's gate and up become our fused w12.
"""

from __future__ import annotations

import torch

from ..vit import VisionTransformer, ViTConfig
from . import CheckpointError, Source, build_encoder


def _int_size(value, what: str, origin: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise CheckpointError(f"{origin}: non-square {what} {value} is not supported")
        value = value[0]
    return int(value)


def _first(src: Source, *keys: str) -> str:
    """The first module name whose ``.weight`` the checkpoint has (else the first, for the error)."""
    for k in keys:
        if src.has(k + ".weight"):
            return k
    return keys[0]


def _attention(src: Source, ours: dict, p: str, q: str, dim: int) -> None:
    """Our blocks.i.attn from the checkpoint's prefix ``p`` (query/key/value/output names resolved)."""
    names = {"q": (f"{p}attention.q_proj", f"{p}attention.attention.query"),
             "k": (f"{p}attention.k_proj", f"{p}attention.attention.key"),
             "v": (f"{p}attention.v_proj", f"{p}attention.attention.value"),
             "o": (f"{p}attention.o_proj", f"{p}attention.output.dense")}
    found = {n: _first(src, *cands) for n, cands in names.items()}
    weights = [src.take(found[n] + ".weight") for n in "qkv"]
    zero = torch.zeros(dim)
    biases = [src.take_or(found[n] + ".bias", zero) for n in "qkv"]
    ours[f"{q}attn.qkv.weight"], ours[f"{q}attn.qkv.bias"] = torch.cat(weights), torch.cat(biases)
    ours[f"{q}attn.proj.weight"] = src.take(found["o"] + ".weight")
    ours[f"{q}attn.proj.bias"] = src.take_or(found["o"] + ".bias", zero)
    src.names[f"{q}attn.qkv.weight"] = found["q"] + ".weight (+ key, value)"
    src.names[f"{q}attn.proj.weight"] = found["o"] + ".weight"


def _mlp(src: Source, ours: dict, p: str, q: str, gated: bool, dim: int) -> int:
    """Our blocks.i.mlp; returns the hidden width found in the checkpoint."""
    if gated:
        if src.has(f"{p}mlp.weights_in.weight"):  # Dinov2 as saved: gate and up fused, in that order
            w12 = src.take(f"{p}mlp.weights_in.weight")
            b12 = src.take_or(f"{p}mlp.weights_in.bias", torch.zeros(w12.shape[0]))
            down = f"{p}mlp.weights_out"
        else:
            gate, up = src.take(f"{p}mlp.gate_proj.weight"), src.take(f"{p}mlp.up_proj.weight")
            w12 = torch.cat([gate, up])
            b12 = torch.cat([src.take_or(f"{p}mlp.gate_proj.bias", torch.zeros(gate.shape[0])),
                             src.take_or(f"{p}mlp.up_proj.bias", torch.zeros(up.shape[0]))])
            down = f"{p}mlp.down_proj"
        ours[f"{q}mlp.w12.weight"], ours[f"{q}mlp.w12.bias"] = w12, b12
        ours[f"{q}mlp.w3.weight"] = src.take(down + ".weight")
        ours[f"{q}mlp.w3.bias"] = src.take_or(down + ".bias", torch.zeros(dim))
        src.names[f"{q}mlp.w12.weight"] = f"{p}mlp gate/up"
        return w12.shape[0] // 2
    up, down = _first(src, f"{p}mlp.fc1", f"{p}mlp.up_proj"), _first(src, f"{p}mlp.fc2", f"{p}mlp.down_proj")
    w1 = src.take(up + ".weight")
    ours[f"{q}mlp.fc1.weight"], ours[f"{q}mlp.fc1.bias"] = w1, src.take_or(up + ".bias", torch.zeros(w1.shape[0]))
    ours[f"{q}mlp.fc2.weight"] = src.take(down + ".weight")
    ours[f"{q}mlp.fc2.bias"] = src.take_or(down + ".bias", torch.zeros(dim))
    src.names[f"{q}mlp.fc1.weight"] = up + ".weight"
    return w1.shape[0]


def _layer_prefix(src: Source, model_type: str) -> str:
    if model_type == "dinov3_vit":
        return "model.layer." if src.has("model.layer.0.norm1.weight") else "layer."
    return "encoder.layer."


def convert_transformers(state: dict[str, torch.Tensor], config: dict, origin: str) -> tuple[VisionTransformer, dict]:
    model_type = config["model_type"]
    dinov3 = model_type == "dinov3_vit"
    dim, depth, heads = int(config["hidden_size"]), int(config["num_hidden_layers"]), int(config["num_attention_heads"])
    patch = _int_size(config.get("patch_size", 16), "patch_size", origin)
    img = _int_size(config.get("image_size", 224), "image_size", origin)
    gated = bool(config.get("use_gated_mlp") if dinov3 else config.get("use_swiglu_ffn"))
    act = config.get("hidden_act", "gelu")
    if dinov3 and gated and act != "silu":
        raise CheckpointError(f"{origin}: gated MLP with hidden_act {act!r} is not supported (SwiGLU uses silu)")
    if not gated and act != "gelu":
        raise CheckpointError(f"{origin}: MLP with hidden_act {act!r} is not supported (gelu only)")
    src = Source(state, origin)
    ours: dict[str, torch.Tensor] = {}
    emb = "embeddings."
    ours["cls_token"] = src.take(emb + "cls_token").reshape(1, 1, dim)
    ours["mask_token"] = src.take_or(emb + "mask_token", torch.zeros(1, dim)).reshape(1, dim)
    n_reg = int(config.get("num_register_tokens", 0) or 0)
    ours["register_tokens"] = src.take(emb + "register_tokens") if n_reg else torch.zeros(1, 0, dim)
    patch_key = emb + ("patch_embeddings" if dinov3 else "patch_embeddings.projection")
    ours["patch_embed.proj.weight"] = src.take(patch_key + ".weight")
    ours["patch_embed.proj.bias"] = src.take_or(patch_key + ".bias", torch.zeros(dim))
    src.names["patch_embed.proj.weight"] = patch_key + ".weight"
    if not dinov3:
        ours["pos_embed"] = src.take(emb + "position_embeddings")
        src.names["pos_embed"] = emb + "position_embeddings"
    layer = _layer_prefix(src, model_type)
    hidden = None
    for i in range(depth):
        p, q = f"{layer}{i}.", f"blocks.{i}."
        for n in ("norm1", "norm2"):
            ours[f"{q}{n}.weight"], ours[f"{q}{n}.bias"] = src.take(f"{p}{n}.weight"), src.take(f"{p}{n}.bias")
        _attention(src, ours, p, q, dim)
        ours[f"{q}ls1.gamma"] = src.take_or(f"{p}layer_scale1.lambda1", torch.ones(dim))
        ours[f"{q}ls2.gamma"] = src.take_or(f"{p}layer_scale2.lambda1", torch.ones(dim))
        hidden = _mlp(src, ours, p, q, gated, dim)
    final = "norm." if dinov3 else "layernorm."
    ours["norm.weight"], ours["norm.bias"] = src.take(final + "weight"), src.take(final + "bias")
    for k in state:  # a pooler or a classification head is not part of the encoder
        if k.startswith(("pooler.", "classifier.")):
            src.skip(k)
    if src.has(f"{layer}{depth}.norm1.weight"):
        raise CheckpointError(f"{origin}: unexpected key '{layer}{depth}.norm1.weight' (config.json says "
                              f"{depth} layers)")
    cfg = ViTConfig(size="tiny", img_size=img, patch_size=patch, in_chans=int(config.get("num_channels", 3)),
                    num_registers=n_reg, embed_dim=dim, depth=depth, num_heads=heads,
                    layerscale_init=float(config.get("layerscale_value", 1.0)),
                    pos_embed="rope" if dinov3 else "learnt",
                    rope_theta=float(config.get("rope_theta", 100.0)),
                    rope_rescale=config.get("pos_embed_rescale") if dinov3 else None,
                    ffn="swiglu" if gated else "gelu", mlp_hidden=hidden,
                    norm_eps=float(config.get("layer_norm_eps", 1e-5 if dinov3 else 1e-6)))
    arch = {"dinov3_vit": "DINOv3ViTModel", "dinov2": "Dinov2Model",
            "dinov2_with_registers": "Dinov2WithRegistersModel"}[model_type]
    return build_encoder(cfg, ours, src), {"architecture": arch}
