"""Operating points: per-condition decision thresholds chosen on held-out cases.

Why: thresholds fitted on the training embeddings (Youden's J) sit where the probes are
over-confident; on held-out phantoms bundle 0.3.0 asserted about 5 false findings per
study with them. A draft should assert only what held-out data support, so per condition:

- **validated**: the held-out AUROC's one-sided lower confidence bound (Hanley & McNeil
  1982 standard error) is above 0.5, with at least ``min_cases`` positives and negatives.
  An unvalidated condition is never asserted; reports list it as not assessed.
- **present**: the lowest threshold whose held-out specificity reaches
  ``present_specificity`` (a bounded false-positive rate per condition).
- **possible**: the same for ``possible_specificity``; probabilities between the two
  thresholds are hedged ("possible ..., cannot be excluded").
- **rule out**: a condition below the "possible" threshold is written up as normal ("no
  canal stenosis", "alignment is maintained") only when the held-out sensitivity of calling
  it at least possible has a Wilson 95% lower bound of ``rule_out_sensitivity`` (0.9) or more:
  otherwise a normal sentence would reassure without basis, and the draft says the model
  did not assess it. Sensitivity, specificity and NPV / PPV (at the calibration set's
  prevalence) at both thresholds are recorded with their intervals.

The held-out cases must not have trained the encoders or the probes (default: the
training seed's val and test splits; the evaluation seed stays untouched).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .metrics import auroc, proportion
from ..results import Call


@dataclass
class OperatingPoint:
    condition: str
    validated: bool
    present: float          # assert at p >= present
    possible: float         # hedge at possible <= p < present
    auroc: float | None
    auroc_lower: float | None
    n_pos: int
    n_neg: int
    reason: str = ""
    rule_out: bool = False          # a normal statement is supported (see the module docstring)
    rule_out_reason: str = ""
    at_possible: dict | None = None  # sensitivity / specificity / npv / ppv of p >= possible, with Wilson CIs
    at_present: dict | None = None   # the same of p >= present

    def to_dict(self) -> dict:
        return asdict(self)


def confusion(p: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """Held-out sensitivity, specificity, PPV and NPV of calling p >= threshold (Wilson 95% intervals)."""
    call = p >= threshold
    tp, fn = int((call & (y == 1)).sum()), int((~call & (y == 1)).sum())
    tn, fp = int((~call & (y == 0)).sum()), int((call & (y == 0)).sum())
    return {"threshold": float(threshold), "sensitivity": proportion(tp, tp + fn), "specificity": proportion(tn, tn + fp),
            "ppv": proportion(tp, tp + fp), "npv": proportion(tn, tn + fn), "prevalence": (tp + fn) / max(1, len(y))}


NEVER = 2.0  # a threshold no probability reaches


def auroc_lower_bound(auc: float, n_pos: int, n_neg: int, z: float = 1.645) -> float:
    """One-sided lower confidence bound of an AUROC (Hanley & McNeil standard error)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return auc - z * math.sqrt(max(var, 0.0))


def specificity_threshold(probs: np.ndarray, labels: np.ndarray, specificity: float) -> float:
    """Lowest threshold t (decision p >= t) with at least ``specificity`` of the negatives below it.

    t lies halfway between the last negative that must stay below and the next higher score.
    """
    neg = np.sort(probs[labels == 0])
    k = int(math.ceil(specificity * len(neg)))
    if k == 0:
        return float(probs.min()) if len(probs) else NEVER
    last = neg[k - 1]
    above = probs[probs > last]
    return float((last + above.min()) / 2) if len(above) else float(min(last + 1e-6, NEVER))


def fit_operating_points(probs, labels, conditions, present_specificity: float = 0.95,
                         possible_specificity: float = 0.8, min_cases: int = 5,
                         z: float = 1.645, rule_out_sensitivity: float = 0.9) -> list[OperatingPoint]:
    """One OperatingPoint per condition from held-out ``probs`` (n, C) and labels (1/0, -1 ignored)."""
    if not possible_specificity <= present_specificity:
        raise ValueError("possible_specificity must not exceed present_specificity")
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    points = []
    for j, cond in enumerate(conditions):
        keep = (labels[:, j] == 0) | (labels[:, j] == 1)
        p, y = probs[keep, j], labels[keep, j].astype(int)
        n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
        if min(n_pos, n_neg) < min_cases:
            points.append(OperatingPoint(cond, False, NEVER, NEVER, None, None, n_pos, n_neg,
                                         f"fewer than {min_cases} held-out positives or negatives"))
            continue
        auc = float(auroc(y, p))
        lower = auroc_lower_bound(auc, n_pos, n_neg, z)
        if lower <= 0.5:
            points.append(OperatingPoint(cond, False, NEVER, NEVER, auc, lower, n_pos, n_neg,
                                         "held-out AUROC not above chance"))
            continue
        present = specificity_threshold(p, y, present_specificity)
        possible = min(specificity_threshold(p, y, possible_specificity), present)
        at_possible, at_present = confusion(p, y, possible), confusion(p, y, present)
        sens = at_possible["sensitivity"]
        ok = sens["ci95"][0] is not None and sens["ci95"][0] >= rule_out_sensitivity
        why = "" if ok else (f"held-out sensitivity {sens['value']:.2f} (95% CI from {sens['ci95'][0]:.2f}) at the "
                             f"'possible' threshold is below {rule_out_sensitivity:.2f}")
        points.append(OperatingPoint(cond, True, present, possible, auc, lower, n_pos, n_neg, rule_out=ok,
                                     rule_out_reason=why, at_possible=at_possible, at_present=at_present))
    return points


@torch.no_grad()
def apply_operating_points(head, points: list[OperatingPoint]) -> None:
    """Write the points into the diagnosis head's buffers (conditions matched by name)."""
    by_name = {p.condition: p for p in points}
    for j, cond in enumerate(head.conditions):
        pt = by_name.get(cond)
        if pt is None:
            continue
        head.thresholds[j] = pt.present
        head.possible_thresholds[j] = pt.possible
        head.validated[j] = pt.validated
        head.rule_out[j] = bool(pt.validated and pt.rule_out)


def held_out_counts(probs, labels, head) -> dict:
    """What the head's operating points do on labelled cases: asserted / hedged, right or wrong."""
    calls = np.array([head.statuses(row) for row in torch.as_tensor(probs)]).reshape(-1, len(head.conditions))
    present, hedged = calls == Call.PRESENT, calls == Call.POSSIBLE  # the head's own rule, as analyze applies it
    labels = np.asarray(labels)
    pos, neg = labels == 1, labels == 0
    n = max(1, calls.shape[0])
    out = {"n_cases": int(calls.shape[0]), "n_pos": int(pos.sum()),
           "asserted_true": int((present & pos).sum()), "asserted_false": int((present & neg).sum()),
           "hedged_true": int((hedged & pos).sum()), "hedged_false": int((hedged & neg).sum()),
           "validated_conditions": [c for c, v in zip(head.conditions, head.validated.tolist()) if v]}
    out["false_findings_per_case"] = out["asserted_false"] / n
    out["hedged_false_per_case"] = out["hedged_false"] / n
    out["sensitivity_asserted"] = out["asserted_true"] / max(1, out["n_pos"])
    out["sensitivity_asserted_or_hedged"] = (out["asserted_true"] + out["hedged_true"]) / max(1, out["n_pos"])
    return out
