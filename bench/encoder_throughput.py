"""Encoder throughput: slices/s of spinefm's ViT vs a plain SDPA reference ViT of the same size.

Our ViT is timed in each architecture it can take (``--variants``): ``learnt`` (learnt positions, GELU:
every bundle so far), ``rope`` (DINOv3 ViT-S/B/L: 2-D RoPE, GELU, eps 1e-5) and ``rope-swiglu`` (DINOv3
S+/H+/7B); ``ratio_rope_over_learnt`` compares the first two in the same run. ``--timm`` adds timm's ViT
and its DINOv3 (Eva, RoPE) of the same size where timm imports (not beside the CPU torch here: noted).

Both models are built in the same process, with the same size, batch, dtype and
device, and timed alternately, so the ratio is meaningful even on a busy CPU.
The reference is a minimal timm-style ViT (fused qkv + F.scaled_dot_product_attention,
[CLS] + registers), the shape of the timm ViT-B/16-reg4 that ran ~9,900 slices/s
in bf16 at batch 256 on one H100.

    python bench/encoder_throughput.py                       # CPU: nano, 112 px, batch 32
    python bench/encoder_throughput.py --size base --img-size 224 --batch 256 --dtype bf16 --compile   # GPU
    python bench/encoder_throughput.py --size large --img-size 224 --batch 128 --dtype bf16 --timm    # ViT-L/16
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

from spinefm.vit import VIT_SIZES, ViTConfig, VisionTransformer


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, int(dim * mlp_ratio)), nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class RefViT(nn.Module):
    """Reference: patch conv, [CLS] + registers, learnt positions, pre-norm SDPA blocks, final norm."""

    def __init__(self, dim: int, depth: int, heads: int, img_size: int, patch: int = 16, registers: int = 4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.reg = nn.Parameter(torch.zeros(1, registers, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + (img_size // patch) ** 2, dim))
        self.blocks = nn.Sequential(*[RefBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        t = torch.cat([t[:, :1], self.reg.expand(t.shape[0], -1, -1), t[:, 1:]], 1)
        return self.norm(self.blocks(t))[:, 0]


def time_model(model, x, iters: int, warmup: int, device) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="nano", choices=list(VIT_SIZES))
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--img-size", type=int, default=112)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternate ours/reference this many times; best round counts")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--timm", action="store_true",
                   help="also time timm's own ViT of this size with 4 registers (random init; where timm is installed)")
    p.add_argument("--variants", default="learnt,rope,rope-swiglu", help="our ViT architectures to time")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "fp32": torch.float32,
             "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    cfg = ViTConfig(size=args.size, img_size=args.img_size, depth=args.depth)
    dim, depth, heads = cfg.dims()
    arch = {"learnt": {}, "rope": {"pos_embed": "rope", "norm_eps": 1e-5},
            "rope-swiglu": {"pos_embed": "rope", "ffn": "swiglu", "norm_eps": 1e-5}}
    variants = [v for v in args.variants.split(",") if v]
    models = {}
    for v in variants:
        vcfg = ViTConfig(size=args.size, img_size=args.img_size, depth=args.depth, **arch[v])
        models["spinefm" if v == "learnt" else f"spinefm_{v}"] = VisionTransformer(vcfg).to(device, dtype).eval()
    ours = next(iter(models.values()))
    models["reference_sdpa"] = RefViT(dim, depth, heads, args.img_size, registers=cfg.num_registers).to(device, dtype).eval()
    notes = []
    if args.timm:  # the reference point was measured with timm's ViT-B/16-reg4
        try:
            import timm
        except ImportError as exc:  # PyPI torchvision does not load beside the CPU torch wheel
            notes.append(f"timm not importable here ({exc}); timm rows left out")
        else:
            common = dict(pretrained=False, num_classes=0, embed_dim=dim, depth=depth, num_heads=heads,
                          img_size=args.img_size)
            models["timm"] = timm.create_model("vit_base_patch16_224", reg_tokens=cfg.num_registers,
                                               **common).to(device, dtype).eval()
            models["timm_dinov3"] = timm.create_model("vit_base_patch16_dinov3", global_pool="token",
                                                      **common).to(device, dtype).eval()
    if args.compile:
        models = {k: torch.compile(m) for k, m in models.items()}
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device, dtype=dtype)
    best = {k: float("inf") for k in models}
    for _ in range(args.rounds):
        for k, m in models.items():
            best[k] = min(best[k], time_model(m, x, args.iters, args.warmup, device))
    rate = {k: args.batch * args.iters / v for k, v in best.items()}
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, "
                                                                              f"{torch.get_num_threads()} threads)",
        "size": args.size, "embed_dim": dim, "depth": depth, "heads": heads, "img_size": args.img_size,
        "batch": args.batch, "dtype": str(dtype).replace("torch.", ""), "compile": args.compile,
        "params_m": round(sum(p.numel() for p in ours.parameters()) / 1e6, 2),
        "slices_per_s": {k: round(v, 1) for k, v in rate.items()},
    }
    if "spinefm" in rate:
        result["ratio_spinefm_over_reference"] = round(rate["spinefm"] / rate["reference_sdpa"], 3)
    if "spinefm" in rate and "spinefm_rope" in rate:
        result["ratio_rope_over_learnt"] = round(rate["spinefm_rope"] / rate["spinefm"], 3)
    if "timm" in rate and "spinefm" in rate:
        result["ratio_spinefm_over_timm"] = round(rate["spinefm"] / rate["timm"], 3)
    if "timm_dinov3" in rate and "spinefm_rope" in rate:
        result["ratio_spinefm_rope_over_timm_dinov3"] = round(rate["spinefm_rope"] / rate["timm_dinov3"], 3)
    if notes:
        result["notes"] = notes
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
