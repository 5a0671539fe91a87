"""iBOT masked-image-modelling loss on patch tokens.

The student sees a global crop with some patches replaced by the mask token
and must predict, at those positions only, the teacher's prototype
distribution for the unmasked patch. Each image weighs the same whatever its
number of masked patches (DINOv2's per-image 1/n_masked weighting).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .centering import CenteredTargetLoss


class iBOTPatchLoss(CenteredTargetLoss):  # noqa: N801 (the method's name)
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
