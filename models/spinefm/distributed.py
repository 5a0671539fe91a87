"""torch.distributed helpers: env init for torchrun, gathers that keep gradients.

CLIP negatives are gathered across ranks (the release did not; it is the
cheap way to get more negatives per step).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> tuple[int, int, torch.device]:
    """Init the process group when torchrun set WORLD_SIZE>1; returns (rank, world, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return rank, world, device


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


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
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    return torch.cat(_GatherLayer.apply(x), dim=0)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
