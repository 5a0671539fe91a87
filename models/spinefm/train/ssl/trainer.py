"""The pretraining loop: schedules, EMA, Gram phase, DDP, checkpoints, logs.

Every random draw of step ``s`` (crops, masks, drop-path) is seeded from
(seed, s, rank) and the data order from (seed, epoch), so resuming from a
checkpoint reproduces the uninterrupted run exactly on the same hardware.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ... import distributed as dist
from .augment import MultiCropAugmentation
from .checkpoint import export_encoder, load_checkpoint, restore, save_checkpoint
from .config import SSLConfig
from .masking import MaskingGenerator, sample_masks
from .meta_arch import SSLMetaArch
from ..schedules import cosine, linear_warmup, scaled_lr


class _SkipSampler(Sampler):
    """A ``DistributedSampler`` epoch with its first ``skip`` indices dropped (mid-epoch resume)."""

    def __init__(self, inner: DistributedSampler, skip: int):
        self.inner, self.skip = inner, skip

    def __iter__(self):
        return iter(list(self.inner)[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 4099 + rank) % (2**63 - 1)


class Trainer:
    CHECKPOINT = "checkpoint.pt"
    ENCODER = "encoder.safetensors"
    LOG = "log.jsonl"

    def __init__(
        self,
        cfg: SSLConfig,
        dataset: Dataset,
        out_dir: Path | None = None,
        *,
        backbone=None,
        device: torch.device | str | None = None,
        resume: bool = True,
        progress: bool = True,
        num_workers: int = 0,
    ):
        self.cfg = cfg
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = torch.device(device) if device is not None else dist.init_from_env()[2]
        self.rank, self.world = dist.rank(), dist.world_size()
        self.progress = progress and dist.is_main()
        torch.manual_seed(cfg.seed)  # identical initialisation on every rank
        self.arch = SSLMetaArch(cfg, backbone).to(self.device)
        self.arch.train()
        self.params = [p for p in self.arch.student.parameters() if p.requires_grad]
        self.last_layer_params = [p for n, p in self.arch.student.named_parameters() if n.endswith("last_layer")]
        self.optimizer = torch.optim.AdamW(self.arch.param_groups(), lr=0.0, betas=cfg.adamw_betas)
        self.peak_lr = scaled_lr(cfg.base_lr, cfg.batch_size * self.world, cfg.lr_scaling)
        self.augment = MultiCropAugmentation(cfg.augment_config())
        bb = self.arch.student["backbone"]
        self.grid = (cfg.img_size // bb.patch_size, cfg.img_size // bb.patch_size)
        self.mask_gen = MaskingGenerator(self.grid, max_num_patches=max(1, self.grid[0] * self.grid[1] // 2))
        if len(dataset) < cfg.batch_size * self.world:
            raise ValueError(f"dataset has {len(dataset)} slices, fewer than one global batch ({cfg.batch_size} x {self.world})")
        self.dataset, self.num_workers = dataset, num_workers
        self.sampler = DistributedSampler(dataset, num_replicas=self.world, rank=self.rank, shuffle=True, seed=cfg.seed, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // cfg.batch_size
        self.step = 0
        self.history: list[dict] = []
        if resume and self.out_dir is not None and (self.out_dir / self.CHECKPOINT).exists():
            state = load_checkpoint(self.out_dir / self.CHECKPOINT, map_location=self.device)
            self.step = restore(state, self.arch, self.optimizer)

    # -- data -------------------------------------------------------------------
    def _batches(self, start_step: int):
        """Yield (step, batch) from ``start_step`` on, an epoch at a time."""
        step = start_step
        while True:
            epoch, offset = divmod(step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch)
            loader = DataLoader(
                self.dataset, batch_size=self.cfg.batch_size, drop_last=True, num_workers=self.num_workers,
                sampler=_SkipSampler(self.sampler, offset * self.cfg.batch_size),
                pin_memory=self.device.type == "cuda",
            )
            for batch in loader:
                yield step, batch
                step += 1
                if step % self.steps_per_epoch == 0:
                    break

    # -- schedules -----------------------------------------------------------
    def schedule(self, step: int) -> dict[str, float]:
        cfg, total = self.cfg, self.cfg.total_steps
        return {
            "lr": cosine(step, total, self.peak_lr, cfg.min_lr, cfg.warmup_steps),
            "wd": cosine(step, total, cfg.weight_decay, cfg.weight_decay_end),
            "momentum": cosine(step, total, cfg.momentum_teacher, cfg.final_momentum_teacher),
            "teacher_temp": linear_warmup(step, cfg.warmup_teacher_temp_steps, cfg.warmup_teacher_temp, cfg.teacher_temp),
        }

    def _apply(self, sched: dict[str, float]) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = sched["lr"] * g["lr_mult"]
            g["weight_decay"] = sched["wd"] * g["wd_mult"]

    # -- loop -------------------------------------------------------------------
    def train_step(self, step: int, batch) -> dict:
        cfg, dev = self.cfg, self.device
        x, axial = (batch[0], batch[1]) if isinstance(batch, (list, tuple)) else (batch, None)
        seed = _step_seed(cfg.seed, step, self.rank)
        torch.manual_seed(seed)  # drop-path
        gen = torch.Generator(device=dev).manual_seed(seed)
        x = x.to(dev, non_blocking=True)
        crops = self.augment(x, gen, axial)
        b = x.shape[0]
        masks = sample_masks(2 * b, self.grid, cfg.mask_ratio, cfg.mask_probability, random.Random(seed), self.mask_gen).to(dev)

        use_gram = cfg.gram_steps > 0 and step >= cfg.steps
        if use_gram and self.arch.gram_teacher is None:
            self.arch.start_gram_phase()
        elif use_gram and cfg.gram_update_every and step > cfg.steps and (step - cfg.steps) % cfg.gram_update_every == 0:
            self.arch.refresh_gram_teacher()

        sched = self.schedule(step)
        self._apply(sched)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else nullcontext()
        with amp:
            loss, logs = self.arch.compute_losses(crops["global_crops"], crops["local_crops"], masks, sched["teacher_temp"], use_gram)
        if not math.isfinite(logs["loss"]):
            raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        dist.all_reduce_grads(self.params)
        if step < cfg.freeze_last_layer_steps:
            for p in self.last_layer_params:
                p.grad = None  # prototypes frozen for the first steps (DINO stability trick)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_grad) if cfg.clip_grad > 0 else torch.tensor(0.0)
        self.optimizer.step()
        self.arch.update_teacher(sched["momentum"])
        return {"step": step, **logs, **sched, "grad_norm": float(grad_norm), "masked": int(masks.sum())}

    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.out_dir is not None and dist.is_main():
            with open(self.out_dir / self.LOG, "a") as f:
                f.write(json.dumps(record) + "\n")

    def save(self) -> Path | None:
        if self.out_dir is None or not dist.is_main():
            return None
        return save_checkpoint(self.out_dir / self.CHECKPOINT, self.arch, self.optimizer, self.step)

    def train(self, until: int | None = None) -> list[dict]:
        """Train to ``until`` (default: the end of both phases); returns this call's log records."""
        cfg = self.cfg
        end = min(until if until is not None else cfg.total_steps, cfg.total_steps)
        if self.out_dir is not None and dist.is_main():
            self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = None
        if self.progress and end > self.step:
            from tqdm import tqdm

            bar = tqdm(total=end, initial=self.step, desc="ssl", dynamic_ncols=True)
        t0 = time.perf_counter()
        if end > self.step:
            for step, batch in self._batches(self.step):
                record = self.train_step(step, batch)
                self.step = step + 1
                record["epoch"] = step // self.steps_per_epoch
                record["time_s"] = round(time.perf_counter() - t0, 3)
                if cfg.log_every and (step % cfg.log_every == 0 or self.step == end):
                    self._log(record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}")
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < end:
                    self.save()
                if self.step >= end:
                    break
        if bar is not None:
            bar.close()
        self.save()
        return self.history

    def export(self) -> Path | None:
        """Write the teacher backbone as ``encoder.safetensors`` (rank 0)."""
        if self.out_dir is None or not dist.is_main():
            return None
        return export_encoder(
            self.out_dir / self.ENCODER, self.arch.teacher["backbone"],
            {"step": self.step, "ssl_config": json.dumps(self.cfg.to_dict())},
        )
