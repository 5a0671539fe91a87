"""Teacher output centering: EMA centre (DINO/DINOv2) or Sinkhorn-Knopp (SwAV, DINOv2 option, DINOv3).

Centering plus a sharper teacher temperature is what stops the teacher from
collapsing onto one prototype; Sinkhorn-Knopp enforces equipartition exactly
and needs no momentum. Statistics are summed over all ranks.
"""

from __future__ import annotations

import torch
from torch import nn

from .... import distributed as dist


class TeacherCentering(nn.Module):
    def __init__(self, out_dim: int, mode: str = "centering", momentum: float = 0.9, sk_iterations: int = 3):
        super().__init__()
        if mode not in ("centering", "sinkhorn_knopp"):
            raise ValueError(f"centering mode must be 'centering' or 'sinkhorn_knopp', got {mode!r}")
        self.mode, self.momentum, self.sk_iterations = mode, momentum, sk_iterations
        self.register_buffer("center", torch.zeros(1, out_dim))

    @torch.no_grad()
    def probs(self, logits: torch.Tensor, temp: float) -> torch.Tensor:
        """Teacher targets (rows sum to 1) from teacher logits (M, K)."""
        logits = logits.float()
        if self.mode == "centering":
            return torch.softmax((logits - self.center) / temp, dim=-1)
        return self.sinkhorn_knopp(logits, temp)

    @torch.no_grad()
    def sinkhorn_knopp(self, logits: torch.Tensor, temp: float) -> torch.Tensor:
        # shift by the global max for stability (same shift on every rank, cancels in the normalisation)
        m = logits.max().reshape(1).clone()
        if dist.is_enabled():
            torch.distributed.all_reduce(m, op=torch.distributed.ReduceOp.MAX)
        q = torch.exp((logits - m) / temp).t()  # K x M
        k = q.shape[0]
        b = dist.all_reduce_sum(torch.tensor(float(q.shape[1]), device=q.device))
        q /= dist.all_reduce_sum(q.sum()).clamp_min(1e-30)
        for _ in range(self.sk_iterations):
            rows = dist.all_reduce_sum(q.sum(dim=1, keepdim=True))
            q /= rows.clamp_min(1e-30)
            q /= k
            q /= q.sum(dim=0, keepdim=True).clamp_min(1e-30)
            q /= b
        q *= b
        return q.t()

    @torch.no_grad()
    def update(self, logits: torch.Tensor) -> None:
        """EMA of the mean teacher logit over the global batch (no-op for Sinkhorn-Knopp)."""
        if self.mode != "centering" or logits.shape[0] == 0:
            return
        logits = logits.float()
        total = dist.all_reduce_sum(logits.sum(dim=0, keepdim=True))
        count = dist.all_reduce_sum(torch.tensor(float(logits.shape[0]), device=logits.device))
        self.center.mul_(self.momentum).add_(total / count, alpha=1 - self.momentum)


class CenteredTargetLoss(nn.Module):
    """Base of the DINO and iBOT losses: a student temperature and the centred, sharpened teacher targets."""

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 centering: str = "centering"):
        super().__init__()
        self.student_temp = student_temp
        self.centering = TeacherCentering(out_dim, centering, center_momentum)

    @torch.no_grad()
    def teacher_targets(self, teacher_logits: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        return self.centering.probs(teacher_logits, teacher_temp)

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        self.centering.update(teacher_logits)
