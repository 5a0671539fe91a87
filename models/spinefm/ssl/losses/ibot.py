"""iBOT masked-image-modelling loss on patch tokens.

The student sees a global crop with some patches replaced by the mask token
and must predict, at those positions only, the teacher's prototype
distribution for the unmasked patch. Each image weighs the same whatever its
number of masked patches (DINOv2's per-image 1/n_masked weighting).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .centering import TeacherCentering


class iBOTPatchLoss(nn.Module):  # noqa: N801 (the method's name)
    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9, centering: str = "centering"):
        super().__init__()
        self.student_temp = student_temp
        self.centering = TeacherCentering(out_dim, centering, center_momentum)

    @torch.no_grad()
    def teacher_targets(self, teacher_logits: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        return self.centering.probs(teacher_logits, teacher_temp)

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        self.centering.update(teacher_logits)

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Masked-token form. ``student_logits`` / ``teacher_probs``: (M, K) for the M masked
        patches, in ``masks[masks]`` order; ``masks``: (B, N) bool. Per image the mean
        cross-entropy over its masked patches, summed and divided by all B images (unmasked
        ones contribute 0), as DINOv2 does, so its loss weights carry over."""
        if student_logits.shape[0] == 0:
            return student_logits.sum() * 0.0  # keeps the graph connected, value 0
        ce = -(teacher_probs * F.log_softmax(student_logits.float() / self.student_temp, dim=-1)).sum(dim=-1)
        per_image = masks.sum(dim=-1).clamp_min(1).float()  # (B,)
        weights = (1.0 / per_image).unsqueeze(1).expand_as(masks)[masks]
        return (ce * weights).sum() / masks.shape[0]
