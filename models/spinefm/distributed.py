"""torch.distributed helpers for every spinefm loop: env init for torchrun, rank queries, reductions, gathers.

Every call is a no-op in a single process, so the same code runs on a laptop
and under ``torchrun``. CLIP negatives are gathered across ranks (the release
did not; it is the cheap way to get more negatives per step).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> tuple[int, int, torch.device]:
    """``torchrun`` sets WORLD_SIZE/LOCAL_RANK: start the process group when WORLD_SIZE>1.

    NCCL on CUDA, gloo on CPU (so the multi-process path is testable on a laptop).
    Returns (rank, world, the device this rank should use).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not is_enabled():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return rank(), world, device


def is_enabled() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_enabled() else 1


def rank() -> int:
    return dist.get_rank() if is_enabled() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_enabled():
        dist.barrier()


def cleanup() -> None:
    if is_enabled():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (returns ``t`` for chaining)."""
    if is_enabled():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_grads(params) -> None:
    """Average gradients over ranks, flattened into one buffer per dtype.

    Used instead of wrapping the SSL student in DDP: the student is called several
    times per step (masked globals, locals, two heads) and some parameters are
    unused on some steps, which DDP's reducer handles badly.
    """
    ws = world_size()
    if ws == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= ws
        offset = 0
        for g in group:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n


class _GatherLayer(torch.autograd.Function):
    """all_gather whose backward sums the gradients of every rank and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor):
        out = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        g = torch.stack(grads)
        dist.all_reduce(g)
        return g[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 (equal shard sizes), gradients flow back to the local shard.

    Single process: identity.
    """
    if world_size() == 1:
        return x
    return torch.cat(_GatherLayer.apply(x), dim=0)
