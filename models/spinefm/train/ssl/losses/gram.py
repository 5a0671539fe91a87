"""Gram anchoring (DINOv3 phase 2).

Long DINO/iBOT training degrades dense (patch) features while the global
features keep improving. Gram anchoring keeps the *pairwise patch
similarities* of the student close to those of an earlier, frozen teacher
("Gram teacher"), leaving the features themselves free to move:
loss = mean over images of ||X_s X_s^T - X_g X_g^T||_F^2 / N^2 with rows
L2-normalised, i.e. the MSE between the two cosine-similarity matrices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GramLoss(nn.Module):
    def __init__(self, normalize: bool = True, remove_negatives: bool = False):
        super().__init__()
        self.normalize, self.remove_negatives = normalize, remove_negatives

    def gram(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, N) patch-similarity matrix."""
        # fp32 even under bf16 autocast: similarities near 1 need more than bf16's 8 mantissa bits
        with torch.autocast(device_type=feats.device.type, enabled=False):
            feats = feats.float()
            if self.normalize:
                feats = F.normalize(feats, dim=-1)
            g = feats @ feats.transpose(-1, -2)
        return g.clamp_min(0.0) if self.remove_negatives else g

    def forward(self, student_patches: torch.Tensor, gram_teacher_patches: torch.Tensor) -> torch.Tensor:
        if student_patches.shape != gram_teacher_patches.shape:
            raise ValueError(f"shape mismatch {tuple(student_patches.shape)} vs {tuple(gram_teacher_patches.shape)}")
        with torch.no_grad():
            target = self.gram(gram_teacher_patches)
        return F.mse_loss(self.gram(student_patches), target)
