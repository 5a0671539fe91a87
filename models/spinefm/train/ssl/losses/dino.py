"""DINO loss on [CLS]: cross-entropy between sharpened, centred teacher targets and the student.

The teacher sees only the global crops; every student crop (global and local)
is compared with every teacher global crop except the same view, the
"local-to-global" correspondence that makes DINO features view-invariant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .centering import CenteredTargetLoss


class DINOLoss(CenteredTargetLoss):
    def forward(self, student_logits: list[torch.Tensor], teacher_probs: list[torch.Tensor]) -> torch.Tensor:
        """``student_logits``: one (B, K) tensor per crop, the global crops first, in the
        same order as ``teacher_probs`` (one (B, K) per global crop). Mean over pairs and batch."""
        total, terms = student_logits[0].new_zeros(()).float(), 0
        for i, s in enumerate(student_logits):
            log_p = F.log_softmax(s.float() / self.student_temp, dim=-1)
            for j, t in enumerate(teacher_probs):
                if i == j:  # same view: skip (crop i < n_global is teacher crop i)
                    continue
                total = total - (t * log_p).sum(dim=-1).mean()
                terms += 1
        return total / max(terms, 1)
