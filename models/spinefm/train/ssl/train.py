"""Command-line pretraining: ``add_arguments(parser)`` + ``run(args) -> Path``.

Single process: ``python -m spinefm.train.ssl.train --data DIR --out runs/t1``.
Multi-GPU / multi-node: the same under ``torchrun`` (WORLD_SIZE > 1 starts
the process group from the environment; ``--batch-size`` is per GPU).
Re-running with the same ``--out`` resumes from ``checkpoint.pt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ... import distributed as dist
from .config import SSLConfig
from .data import SliceFileDataset, phantom_dataset
from .pretrain import default_local_size
from ..schedules import capped_momentum
from .trainer import Trainer

# CLI options that override the preset's SSLConfig field of the same name
_OVERRIDES = (
    "vit_size", "img_size", "local_size", "n_local", "slice_size", "steps", "gram_steps", "batch_size",
    "base_lr", "warmup_steps", "centering", "head_prototypes", "gram_weight", "gram_teacher_scale",
    "drop_path", "momentum_teacher", "seed", "checkpoint_every", "log_every",
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    data = parser.add_argument_group("pretraining data (one of)")
    data.add_argument("--data", type=Path, help="directory of .pt/.npy/.npz slice files (see SliceFileDataset)")
    data.add_argument("--dataset", type=Path, default=None,
                      help="a spinefm dataset directory: slices of its train split for --sequence-group")
    data.add_argument("--phantom-studies", type=int, default=0, help="generate N spine_phantom studies instead")
    data.add_argument("--phantom-seed", type=int, default=0)
    data.add_argument("--sequence-group", choices=("t1", "t2"), default="t1",
                      help="slices for the T1 encoder, or T2+STIR+Dixon for the T2 encoder (phantoms, --dataset)")
    p = parser.add_argument_group("pretraining")
    p.add_argument("--out", type=Path, default=Path("runs/ssl"), help="run directory (checkpoint, log, encoder)")
    p.add_argument("--preset", choices=("cpu", "full"), default="cpu",
                   help="cpu: ViT-nano at 64 px for smoke runs; full: ViT-L/16 DINOv2/DINOv3 recipe")
    p.add_argument("--vit-size", choices=("nano", "tiny", "small", "base", "large"))
    p.add_argument("--img-size", type=int, help="global crop size (224 full scale)")
    p.add_argument("--local-size", type=int, help="local crop size (96 full scale)")
    p.add_argument("--n-local", type=int, help="local crops per image")
    p.add_argument("--slice-size", type=int, help="side the stored slices are resized to before cropping")
    p.add_argument("--steps", type=int, help="phase-1 iterations (DINO + iBOT + KoLeo)")
    p.add_argument("--gram-steps", type=int, help="phase-2 iterations with Gram anchoring (0: none)")
    p.add_argument("--batch-size", type=int, help="images per process (global batch = this x world size)")
    p.add_argument("--base-lr", type=float, help="lr at global batch 1024 (sqrt-scaled)")
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--centering", choices=("centering", "sinkhorn_knopp"))
    p.add_argument("--head-prototypes", type=int)
    p.add_argument("--gram-weight", type=float)
    p.add_argument("--gram-teacher-scale", type=float, help="Gram teacher input upsampling (2.0 full scale)")
    p.add_argument("--drop-path", type=float)
    p.add_argument("--momentum-teacher", type=float, help="initial EMA momentum (0.992; lower for short runs)")
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--device", help="default: cuda:LOCAL_RANK if available, else cpu")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    return parser


def config_from_args(args: argparse.Namespace) -> SSLConfig:
    cfg = SSLConfig.full_scale() if args.preset == "full" else SSLConfig()
    for name in _OVERRIDES:
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    if getattr(args, "img_size", None) is not None and getattr(args, "local_size", None) is None:
        cfg.local_size = default_local_size(cfg.img_size, cfg.patch_size)
    if getattr(args, "img_size", None) is not None and getattr(args, "slice_size", None) is None:
        cfg.slice_size = round(cfg.img_size * 256 / 224)
    if getattr(args, "momentum_teacher", None) is None:
        cfg.momentum_teacher = capped_momentum(cfg.momentum_teacher, cfg.total_steps)
    return cfg


def run(args: argparse.Namespace) -> Path:
    """Train (or resume) and return the path of ``encoder.safetensors`` (teacher backbone)."""
    cfg = config_from_args(args)
    device = dist.init_from_env()[2] if args.device is None else torch.device(args.device)
    if getattr(args, "dataset", None) is not None:
        from .data import dataset_slices

        dataset = dataset_slices(args.dataset, args.sequence_group, cfg.slice_size)
    elif args.data is not None:
        dataset = SliceFileDataset(args.data, size=cfg.slice_size)
    elif args.phantom_studies > 0:
        dataset = phantom_dataset(args.phantom_studies, args.phantom_seed, args.sequence_group, cfg.slice_size)
    else:
        raise SystemExit("give --dataset DIR, --data DIR or --phantom-studies N")
    trainer = Trainer(cfg, dataset, args.out, device=device, resume=not args.no_resume,
                      progress=not args.no_progress, num_workers=args.workers)
    trainer.train()
    path = trainer.export()
    dist.barrier()
    return path if path is not None else Path(args.out) / Trainer.ENCODER


def main(argv: list[str] | None = None) -> None:
    parser = add_arguments(argparse.ArgumentParser(prog="spinefm-ssl", description=__doc__.split("\n")[0]))
    path = run(parser.parse_args(argv))
    dist.cleanup()
    if dist.is_main():
        print(path)


if __name__ == "__main__":
    main()
