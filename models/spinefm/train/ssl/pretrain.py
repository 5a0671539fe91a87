"""``pretrain_encoder``: the in-process entry point (tests, notebooks, the demo bundle)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ...vit import VisionTransformer
from .config import SSLConfig
from .data import SliceTensorDataset
from ..schedules import capped_momentum
from .trainer import Trainer


def default_local_size(img_size: int, patch_size: int) -> int:
    """96/224 of the global crop, rounded to whole patches (96 at 224, 32 at 64)."""
    return max(patch_size, round(img_size * 96 / 224 / patch_size) * patch_size)


def pretrain_encoder(
    encoder: VisionTransformer,
    slices,
    *,
    steps: int,
    batch_size: int = 16,
    gram_steps: int = 0,
    seed: int = 0,
    n_local: int = 4,
    local_size: int | None = None,
    base_lr: float | None = None,
    axial=None,
    out_dir: Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    **overrides,
) -> dict:
    """Self-supervised pretraining of ``encoder`` in place; it ends with the teacher's weights.

    ``slices``: (N, 3, H, W) normalised tensor or a Dataset of such slices.
    ``overrides``: any other ``SSLConfig`` field (head sizes, loss weights, ...). For short
    runs the teacher momentum defaults to ``capped_momentum`` (0.9 at 30 steps).
    Returns ``{"history": [per-step records], "config": dict, "checkpoint": path | None}``.
    """
    vc = encoder.config
    total = steps + gram_steps
    dataset = slices if isinstance(slices, SliceTensorDataset) else SliceTensorDataset(slices, axial)
    batch_size = min(batch_size, len(dataset))  # a small bundle of slices still trains
    cfg = SSLConfig(
        vit_size=vc.size, img_size=vc.img_size, patch_size=vc.patch_size, num_registers=vc.num_registers,
        drop_path=vc.drop_path, steps=steps, gram_steps=gram_steps, batch_size=batch_size, seed=seed,
        n_local=n_local, local_size=local_size or default_local_size(vc.img_size, vc.patch_size),
        warmup_steps=max(1, total // 10), warmup_teacher_temp_steps=max(1, total // 3),
        checkpoint_every=0, log_every=1,
    )
    if base_lr is not None:
        cfg.base_lr = base_lr
    cfg.momentum_teacher = capped_momentum(cfg.momentum_teacher, total)
    cfg = replace(cfg, **overrides)
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    was_training = encoder.training
    trainer = Trainer(cfg, dataset, out_dir, backbone=encoder.to(device), device=device, resume=False, progress=progress)
    history = trainer.train()
    checkpoint = trainer.export() if out_dir is not None else None
    with torch.no_grad():
        encoder.load_state_dict(trainer.arch.teacher["backbone"].state_dict())
    for p in encoder.parameters():
        p.requires_grad_(True)
    encoder.train(was_training)
    return {"history": history, "config": cfg.to_dict(), "checkpoint": checkpoint}
