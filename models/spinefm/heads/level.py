"""Level agent: at which spinal level is a localised finding ("L4-L5", "L3", cord level "T7").

Why this design. A sagittal stack's field of view is planned around the imaged
region(s), so where a finding sits in the image (its box centre, which the
segmentation agent already gives) says which level it is at *once the model
knows which part of the spine is in view*. The case embedding carries that
context (CLIP aligned it with reports that name the region and the levels).
The head therefore maps (case embedding, box centre) to one number, the
finding's cranio-caudal position ``mu`` on the level axis (vertebra index,
discs halfway between; spinefm.conditions.VERTEBRAE order), with a spread
``sigma``, and scores every level by a Gaussian around ``mu`` plus a learned
per-condition prior over levels:

    logit(level) = -((mu - pos(level)) / sigma)^2 / 2 + prior[condition, level]

Ordinal rather than free 46-way classification: a training finding at L4-L5
also teaches the neighbours, which matters with a few hundred findings.
Levels that the registry rules out for a condition (disc levels for a
vertebral finding, regions the condition does not occur in) are masked.

``fitted`` is 0 until the ``levels`` training stage ran: ``analyze`` leaves
levels ``None`` for bundles without a trained level head (older bundles).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..conditions import DISC_LEVEL, DISC_LEVELS, VERTEBRAE, get_condition, region_of_level

LEVELS: tuple[str, ...] = VERTEBRAE + DISC_LEVELS
N_FREQ = 4


def level_position(level: str) -> float:
    """Cranio-caudal position: vertebra index; a disc level sits halfway below its upper vertebra."""
    head = level.split("-")[0]
    return float(VERTEBRAE.index(head)) + (0.5 if "-" in level else 0.0)


LEVEL_POSITIONS = torch.tensor([level_position(lv) for lv in LEVELS])


def allowed_levels(condition: str) -> list[bool]:
    """Registry rule: the level kind (disc vs vertebra/cord) and the condition's regions (sacrum with lumbar)."""
    try:
        cond = get_condition(condition)
    except KeyError:  # a site-specific condition: any level
        return [True] * len(LEVELS)
    regions = set(cond.regions) | ({"sacral"} if "lumbar" in cond.regions else set())
    disc = cond.level_kind == DISC_LEVEL
    return [("-" in lv) == disc and region_of_level(lv) in regions for lv in LEVELS]


def position_features(centre: torch.Tensor) -> torch.Tensor:
    """(B, 2) normalised (x, y) -> (B, 2 + 2 * N_FREQ): raw coordinates and Fourier features of y."""
    y = centre[:, 1:2]
    k = torch.arange(1, N_FREQ + 1, device=centre.device, dtype=centre.dtype) * math.pi
    return torch.cat([centre, torch.sin(k * y), torch.cos(k * y)], dim=-1)


class LevelHead(nn.Module):
    def __init__(self, case_dim: int, conditions: tuple[str, ...] | list[str], hidden: int = 64,
                 dropout: float = 0.1):
        super().__init__()
        self.conditions = tuple(conditions)
        self.case_scale = float(case_dim ** 0.5)  # case embeddings are L2-normalised
        self.net = nn.Sequential(nn.Linear(case_dim + 2 + 2 * N_FREQ, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2))
        self.prior = nn.Parameter(torch.zeros(len(self.conditions), len(LEVELS)))
        self.register_buffer("positions", LEVEL_POSITIONS.clone())
        self.register_buffer("mask", torch.tensor([allowed_levels(c) for c in self.conditions]))
        # offset of mu (set to the training mean position by fit), and whether a level stage trained this head
        self.register_buffer("mu_offset", torch.tensor(float(VERTEBRAE.index("L3"))))
        self.register_buffer("fitted", torch.tensor(0.0))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item() > 0)

    def index(self, condition: str) -> int:
        return self.conditions.index(condition)

    def position(self, case: torch.Tensor, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """case (B, P), centre (B, 2) -> mu (B,), sigma (B,) in level-axis units."""
        h = self.net(torch.cat([case.float() * self.case_scale, position_features(centre.float())], dim=-1))
        mu = self.mu_offset + 4.0 * h[:, 0]
        sigma = F.softplus(h[:, 1] + 0.5) + 0.1
        return mu, sigma

    def forward(self, case: torch.Tensor, centre: torch.Tensor, cond_idx: torch.Tensor) -> torch.Tensor:
        """-> logits (B, len(LEVELS)); levels the registry rules out for the condition are -inf."""
        mu, sigma = self.position(case, centre)
        z = (mu[:, None] - self.positions[None]) / sigma[:, None]
        logits = -0.5 * z ** 2 + self.prior[cond_idx]
        return logits.masked_fill(~self.mask[cond_idx], float("-inf"))

    def loss(self, case: torch.Tensor, centre: torch.Tensor, cond_idx: torch.Tensor,
             target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the allowed levels; ``target`` indexes LEVELS."""
        return F.cross_entropy(self(case, centre, cond_idx), target)

    @torch.no_grad()
    def predict(self, case: torch.Tensor, centre: torch.Tensor, condition: str) -> tuple[str, float]:
        """One finding: case (P,), centre (2,) -> (level, probability)."""
        i = torch.tensor([self.index(condition)], device=case.device)
        p = self(case[None], centre[None], i)[0].softmax(-1)
        j = int(p.argmax())
        return LEVELS[j], float(p[j])
