"""Segmentation agent: per condition, key-slice selection then box regression.

Per slice and condition, a linear map over the patch tokens gives a heatmap;
its soft-argmax is the box centre, and its attention-pooled patch feature
(with [CLS]) scores the slice (is this a key slice for the condition) and
regresses a small centre offset and the box size. Boxes are normalised
[x0, y0, x1, y1] in the crop (spinefm.preprocess.Geometry maps them back to
the original pixels). The per-condition weights are stacked into tensors so
all conditions run in one pass; row ``i`` belongs to ``conditions[i]``.

Slice features of the T1 encoder, the T2 encoder and the synthesizer live in
different spaces, so ``StreamSegmentation`` keeps one head per stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STREAMS = ("t1", "t2", "synthesizer")


def grid_centres(n_patches: int, device=None) -> torch.Tensor:
    side = int(round(n_patches ** 0.5))
    c = (torch.arange(side, device=device, dtype=torch.float32) + 0.5) / side
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)  # (N, 2) as (x, y)


class SegmentationHead(nn.Module):
    """Key-slice classifier + box regressor for every condition of one stream."""

    def __init__(self, dim: int, conditions: tuple[str, ...] | list[str]):
        super().__init__()
        self.conditions = tuple(conditions)
        c = len(self.conditions)
        self.heat = nn.Linear(dim, c)                                  # patch -> heat logit per condition
        self.slice_w = nn.Parameter(torch.randn(c, 2 * dim) * 0.02)    # [cls, attended] -> slice logit
        self.slice_b = nn.Parameter(torch.zeros(c))
        self.box_w = nn.Parameter(torch.zeros(c, 2 * dim, 4))          # -> dx, dy, w, h
        self.box_b = nn.Parameter(torch.tensor([0.0, 0.0, -1.5, -1.5]).repeat(c, 1))  # ~0.18 of the crop

    def index(self, condition: str) -> int:
        return self.conditions.index(condition)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor, condition: str | None = None) -> dict[str, torch.Tensor]:
        """cls (S, D), patches (S, N, D) -> slice_logit (S, C), box (S, C, 4) [, heat (S, C, N)].

        With ``condition`` the outputs are that condition's column: (S,) and (S, 4).
        """
        heat = self.heat(patches).float().softmax(1).transpose(1, 2)   # (S, C, N)
        attended = torch.einsum("scn,snd->scd", heat.to(patches.dtype), patches)
        feats = torch.cat([cls.unsqueeze(1).expand(-1, attended.shape[1], -1), attended], dim=-1)  # (S, C, 2D)
        centre = heat @ grid_centres(patches.shape[1], patches.device)  # (S, C, 2)
        raw = torch.einsum("scd,cdk->sck", feats, self.box_w).float() + self.box_b
        centre = (centre + 0.1 * torch.tanh(raw[..., :2])).clamp(0, 1)
        size = torch.sigmoid(raw[..., 2:])
        box = torch.cat([centre - size / 2, centre + size / 2], dim=-1).clamp(0, 1)
        logit = torch.einsum("scd,cd->sc", feats, self.slice_w) + self.slice_b
        out = {"slice_logit": logit, "box": box, "heat": heat}
        if condition is not None:
            i = self.index(condition)
            out = {k: v[:, i] for k, v in out.items()}
        return out


class StreamSegmentation(nn.Module):
    """One SegmentationHead per encoder stream (t1, t2, synthesizer)."""

    def __init__(self, dim: int, conditions: tuple[str, ...] | list[str], streams: tuple[str, ...] = STREAMS):
        super().__init__()
        self.conditions = tuple(conditions)
        self.heads = nn.ModuleDict({s: SegmentationHead(dim, conditions) for s in streams})

    def forward(self, stream: str, cls: torch.Tensor, patches: torch.Tensor, condition: str | None = None):
        return self.heads[stream](cls, patches, condition)


def segmentation_loss(out: dict[str, torch.Tensor], slice_labels: torch.Tensor,
                      box_targets: torch.Tensor | None = None, box_mask: torch.Tensor | None = None,
                      box_weight: float = 5.0) -> dict[str, torch.Tensor]:
    """Slice BCE (labels 0/1, -1 ignored) + L1 on boxes of annotated slices (normalised coords).

    Shapes: per condition (S,) / (S, 4) or all conditions (S, C) / (S, C, 4).
    """
    labels = slice_labels.float()
    valid = labels >= 0
    slice_loss = (F.binary_cross_entropy_with_logits(out["slice_logit"][valid].float(), labels[valid])
                  if valid.any() else out["slice_logit"].sum() * 0.0)
    box_loss = out["box"].sum() * 0.0
    if box_targets is not None and box_mask is not None and box_mask.any():
        box_loss = F.l1_loss(out["box"][box_mask], box_targets[box_mask].float())
    return {"slice": slice_loss, "box": box_loss, "loss": slice_loss + box_weight * box_loss}
