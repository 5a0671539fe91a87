"""Diagnosis agent: one linear probe per condition on the frozen case embedding.

Labels are ternary (1 present, 0 absent, -1 uncertain); uncertain labels are
masked out of the loss (and of AUROC, see spinefm.train.metrics). A ModuleDict keyed
by condition lets a site add a condition without touching the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..conditions import LabelValue
from ..results import Call


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE over entries whose label is 0/1; -1 (uncertain) and NaN entries are ignored."""
    labels = labels.to(logits.dtype)
    valid = (labels != LabelValue.UNCERTAIN) & ~torch.isnan(labels)
    if not valid.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[valid], labels[valid])


class DiagnosisHead(nn.Module):
    def __init__(self, dim: int, conditions: tuple[str, ...] | list[str], input_scale: float | None = None):
        super().__init__()
        self.conditions = tuple(conditions)
        self.probes = nn.ModuleDict({c: nn.Linear(dim, 1) for c in self.conditions})
        # Case embeddings are L2-normalised; scaling by sqrt(dim) gives unit-variance inputs to the probes.
        self.input_scale = float(input_scale if input_scale is not None else dim ** 0.5)
        # Operating points per condition (spinefm.train.operating_points): assert at p >= thresholds,
        # hedge at possible_thresholds <= p < thresholds; an unvalidated condition is never asserted.
        n = len(self.conditions)
        self.register_buffer("thresholds", torch.full((n,), 0.5))
        self.register_buffer("possible_thresholds", torch.full((n,), 0.5))
        self.register_buffer("validated", torch.ones(n, dtype=torch.bool))
        # whether the held-out operating point supports ruling the condition out (a normal statement)
        self.register_buffer("rule_out", torch.zeros(n, dtype=torch.bool))
        for p in self.probes.values():
            nn.init.zeros_(p.weight)
            nn.init.zeros_(p.bias)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, dim) -> logits (B, n_conditions) in ``self.conditions`` order."""
        x = emb * self.input_scale
        return torch.cat([self.probes[c](x) for c in self.conditions], dim=-1)

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return masked_bce(self(emb), labels)

    def statuses(self, probs: torch.Tensor) -> list[str]:
        """(n_conditions,) probabilities -> "present" / "possible" / "absent" / "not_assessed"."""
        out = []
        for j in range(len(self.conditions)):
            p = float(probs[j])
            if not bool(self.validated[j]):
                out.append(Call.NOT_ASSESSED)
            elif p >= float(self.thresholds[j]):
                out.append(Call.PRESENT)
            elif p >= float(self.possible_thresholds[j]):
                out.append(Call.POSSIBLE)
            else:
                out.append(Call.ABSENT)
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Bundles written before operating points carry only "thresholds": no hedged band
        # (possible = present) and every condition validated, i.e. their old behaviour.
        if prefix + "thresholds" in state_dict:
            state_dict.setdefault(prefix + "possible_thresholds", state_dict[prefix + "thresholds"].clone())
            state_dict.setdefault(prefix + "validated", torch.ones_like(self.validated))
        # Bundles written before rule-out support was measured never rule a condition out.
        if prefix + "thresholds" in state_dict:
            state_dict.setdefault(prefix + "rule_out", torch.zeros_like(self.rule_out))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
