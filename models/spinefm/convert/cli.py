"""``spinefm convert-encoder SRC --out encoder.safetensors``: a published checkpoint as our encoder file.

The output is the encoder format ``spinefm pretrain`` exports (safetensors + ``vit_config``
metadata, spinefm.train.ssl.checkpoint), which ``spinefm align --init-encoder`` starts from.
``--check`` also runs a random batch through the converted encoder and reports finite features.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import FORMATS, convert_checkpoint


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="transformers save_pretrained directory, timm state dict (file or directory), "
                                  "or a spinefm encoder.safetensors")
    p.add_argument("--out", required=True, help="encoder.safetensors to write")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--num-heads", type=int, default=None, help="timm state dict without config.json: heads")
    p.add_argument("--norm-eps", type=float, default=None, help="timm: LayerNorm eps (default by architecture)")
    p.add_argument("--rope-theta", type=float, default=None, help="timm Eva/DINOv3: RoPE period (default 100)")


def run(args) -> int:
    from ..train.ssl.checkpoint import export_encoder

    overrides = {k: v for k, v in (("num_heads", args.num_heads), ("norm_eps", args.norm_eps),
                                   ("rope_theta", args.rope_theta)) if v is not None}
    if overrides and args.format not in ("auto", "timm"):
        raise SystemExit("--num-heads/--norm-eps/--rope-theta apply to timm state dicts only")
    model, info = convert_checkpoint(args.source, args.format, **overrides)
    out = export_encoder(Path(args.out), model, metadata={"converted_from": json.dumps(info)})
    c = model.config
    dim, depth, heads = c.dims()
    print(f"{out}: {info.get('architecture', info['format'])} -> ViT dim {dim}, depth {depth}, heads {heads}, "
          f"patch {c.patch_size}, registers {c.num_registers}, positions {c.pos_embed}, ffn {c.ffn}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    return 0
