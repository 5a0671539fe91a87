"""Minimal torch.distributed helpers: every call is a no-op in a single process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_enabled() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_enabled() else 1


def rank() -> int:
    return dist.get_rank() if is_enabled() else 0


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (returns ``t`` for chaining)."""
    if is_enabled():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def init_from_env() -> torch.device:
    """``torchrun`` sets WORLD_SIZE/RANK/LOCAL_RANK: start the process group from them.

    NCCL on CUDA, gloo on CPU (so the multi-process path is testable on a laptop).
    Returns the device this rank should use.
    """
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if ws > 1 and not is_enabled():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return device


def all_reduce_grads(params) -> None:
    """Average gradients over ranks, flattened into one buffer per dtype.

    Used instead of wrapping the student in DDP: the student is called several
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
