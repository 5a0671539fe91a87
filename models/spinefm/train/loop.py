"""The one optimisation loop of the encoder stages (align, synth) and the optimizer step every fit shares.

A stage says what one step computes (its ``nn.Module`` on a batch of case
indices) and what is special about it (which parameters are clipped, what
happens after the optimizer step, what the progress bar shows); the loop owns
the rest, once: resume from ``<out>/checkpoint.pt``, epochs over
``index_loader`` batches (DistributedSampler epochs under torchrun), the
warmup + cosine lr of every parameter group, autocast, backward, the optimizer
step, progress, and a checkpoint every ``--save-every`` steps and at the end.
The order of these operations is fixed, so a stage's random draws, and with
them its numbers, do not depend on which stage runs the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .common import Checkpointer, autocast, index_loader, progress
from .schedules import cosine_lr, stage_warmup


def set_lrs(opt: torch.optim.Optimizer, base_lrs: list[float], step: int, total: int) -> None:
    """Each parameter group's lr at ``step`` of ``total``: its base lr on the stages' warmup + cosine schedule."""
    for g, base in zip(opt.param_groups, base_lrs):
        g["lr"] = cosine_lr(step, total, stage_warmup(total), base)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: Iterable[torch.Tensor] | None = None,
                   max_norm: float = 1.0) -> None:
    """zero_grad, backward, optionally clip the gradient norm of ``clip`` to ``max_norm``, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip, max_norm)
    opt.step()


class StageLoop:
    """A stage's resumable epoch/step loop over batches of case indices.

    Built right after the optimizer: the base lrs are read before a resumed
    checkpoint overwrites the groups' lrs with the last scheduled ones. ``step``
    is the step the run starts (or resumes) at, for stages that seed from it.
    """

    def __init__(self, args, state: nn.Module, opt: torch.optim.Optimizer, n_cases: int):
        self.args, self.state, self.opt = args, state, opt
        self.base_lrs = [g["lr"] for g in opt.param_groups]
        self.ckpt = Checkpointer(args.out, enabled=not args.no_resume)
        self.step = self.ckpt.load(state, opt)
        self.loader = index_loader(n_cases, args.batch_size, args.seed)
        self.total = args.max_steps or max(1, math.ceil(args.epochs * len(self.loader)))

    def run(self, stage: str, module: nn.Module, inputs: Callable[[list[int]], tuple], device: torch.device, *,
            clip: Iterable[torch.Tensor] | None = None, after_step: Callable[[], None] | None = None,
            postfix: Callable[[dict], dict] = lambda out: {}) -> dict[str, torch.Tensor]:
        """Train ``module(*inputs(batch))`` (a dict with "loss") to ``total`` steps; returns the last step's output."""
        bar = progress(range(self.step, self.total), self.total - self.step, stage, self.args.no_progress)
        module.train()
        epoch = self.step // max(1, len(self.loader))
        out = {"loss": torch.tensor(float("nan"))}
        while self.step < self.total:
            if hasattr(self.loader.sampler, "set_epoch"):
                self.loader.sampler.set_epoch(epoch)
            for batch in self.loader:
                if self.step >= self.total:
                    break
                set_lrs(self.opt, self.base_lrs, self.step, self.total)
                args = inputs(batch)
                with autocast(device):
                    out = module(*args)
                optimizer_step(self.opt, out["loss"], clip)
                if after_step is not None:
                    after_step()
                self.step += 1
                bar.update(1)
                bar.set_postfix(**postfix(out))
                if self.step % self.args.save_every == 0:
                    self.ckpt.save(self.state, self.opt, self.step)
            epoch += 1
        bar.close()
        self.ckpt.save(self.state, self.opt, self.step)
        return out
