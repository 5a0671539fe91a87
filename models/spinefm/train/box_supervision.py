"""Box supervision of the encoders' patch tokens during ``align`` (``--box-weight``).

The phantom (and any annotated) training studies carry finding boxes on key
slices. CLIP and the report-label loss only tell an encoder *that* a study has
a herniation somewhere; at 112 px a herniation covers a third of one 16-px
patch, and the nano encoders underfit such findings (their probes reach only
~0.6 AUROC on their own training studies, docs/models.md). Here a temporary
linear probe per stream classifies every patch token per condition: cells that
overlap a finding's box are positive, every patch of a slice where the finding
is known to be absent (a study without it, or a non-key slice of a study with
it) is negative, the rest is ignored. Positives and negatives are averaged
separately (a box is a few cells of 49), so neither swamps the other. The probe
is thrown away after the stage; the segmentation and diagnosis agents are
fitted later on the frozen tokens as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .features import slice_targets

IGNORE = -1.0


def cell_overlap_targets(labels: torch.Tensor, boxes: torch.Tensor, box_mask: torch.Tensor, side: int) -> torch.Tensor:
    """Slice targets of ``features.slice_targets`` -> patch targets (n, side*side, C): 1, 0 or IGNORE.

    A cell is positive when it overlaps the normalised box ``[x0, y0, x1, y1]``
    of that slice and condition (so a box smaller than a cell still marks the
    cells it touches); slices labelled 0 are all-negative; unknown slices and
    positive slices without a box are ignored. Row-major cells, as the ViT.
    """
    n, c = labels.shape
    edges = torch.arange(side + 1, dtype=torch.float32) / side
    lo, hi = edges[:-1], edges[1:]
    # (n, C, side) overlap along x and along y; a cell is inside when both overlap.
    ox = (lo < boxes[..., 2:3]) & (hi > boxes[..., 0:1])
    oy = (lo < boxes[..., 3:4]) & (hi > boxes[..., 1:2])
    inside = (oy.unsqueeze(-1) & ox.unsqueeze(-2)).reshape(n, c, side * side)
    out = torch.full((n, c, side * side), IGNORE)
    out[labels == 0] = 0.0
    out[box_mask] = inside[box_mask].float()
    return out.transpose(1, 2).contiguous()


def series_patch_targets(case, series, conditions: tuple[str, ...], side: int) -> torch.Tensor:
    """All slices of one series: (n, side*side, C) patch targets."""
    return cell_overlap_targets(*slice_targets(case, series, conditions), side)


def balanced_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE over positive cells plus mean BCE over negative cells (IGNORE excluded)."""
    logits, targets = logits.float(), targets.float()
    loss = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), reduction="none")
    total = logits.sum() * 0.0
    for keep in (targets == 1, targets == 0):
        if keep.any():
            total = total + loss[keep].mean()
    return total


class PatchProbes(nn.Module):
    """One linear patch classifier per stream (T1 and T2 tokens live in different spaces)."""

    def __init__(self, dim: int, n_conditions: int, streams: tuple[str, ...] = ("t1", "t2")):
        super().__init__()
        self.probes = nn.ModuleDict({s: nn.Linear(dim, n_conditions) for s in streams})

    def loss(self, stream: str, patches: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """patches (S, N, D), targets (S, N, C) -> balanced BCE."""
        return balanced_bce(self.probes[stream](patches), targets)
