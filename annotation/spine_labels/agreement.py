"""Agreement and accuracy over ternary labels, per condition.

Spine MRI inter-reader agreement is only moderate (kappa 0.4-0.7), so the
annotation app and analytics report per-condition kappa and confusion
counts rather than one accuracy number. Written here (no sklearn import) so
the web tier can use it cheaply; the tests check it against sklearn.

Conventions: accuracy is exact ternary agreement. Sensitivity is
P(pred = 1 | truth = 1); specificity is P(pred = 0 | truth = 0); a
prediction of -1 counts as neither. Uncertain truth rows are kept in the
accuracy and the confusion table but cannot enter sensitivity/specificity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from spinefm.conditions import LabelValue

from .schema import VALID_VALUES, LabelSet


def _as_mapping(x: Any) -> Mapping[str, int]:
    if isinstance(x, LabelSet):
        return x.as_dict()
    if isinstance(x, Mapping):
        return x
    raise TypeError(f"expected a LabelSet or a mapping condition -> value, got {type(x).__name__}")


def _kappa(a: Sequence[int], b: Sequence[int]) -> float:
    if len(a) != len(b):
        raise ValueError(f"rater sequences differ in length: {len(a)} vs {len(b)}")
    n = len(a)
    if n == 0:
        return math.nan
    cats = sorted(set(a) | set(b))
    po = sum(1 for x, y in zip(a, b) if x == y) / n
    pe = sum((sum(1 for x in a if x == c) / n) * (sum(1 for y in b if y == c) / n) for c in cats)
    if pe >= 1.0:
        return math.nan  # both raters used one single category: kappa undefined (sklearn gives nan too)
    return (po - pe) / (1 - pe)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any], conditions: Sequence[str] | None = None) -> float | dict[str, float]:
    """Cohen's kappa (unweighted) over ternary labels.

    ``a``/``b`` are either two sequences of values (returns a float) or two
    sequences of per-report label mappings / LabelSets (returns
    {condition: kappa}, only rows where both raters have the condition).
    nan where undefined (no rows, or one single category used by both).
    """
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"rater sequences differ in length: {len(a)} vs {len(b)}")
    if not a or not isinstance(a[0], (Mapping, LabelSet)):
        return _kappa([int(x) for x in a], [int(x) for x in b])
    ma, mb = [_as_mapping(x) for x in a], [_as_mapping(x) for x in b]
    keys = list(conditions) if conditions is not None else sorted({k for m in ma for k in m} & {k for m in mb for k in m})
    out: dict[str, float] = {}
    for k in keys:
        pairs = [(x[k], y[k]) for x, y in zip(ma, mb) if k in x and k in y]
        out[k] = _kappa([p[0] for p in pairs], [p[1] for p in pairs])
    return out


Z95 = 1.959963984540054


def fleiss_kappa(ratings: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa over subjects each rated by two or more raters (one sequence of values per subject).

    The number of raters may vary per subject (the generalisation of Fleiss 1971 that weights each subject's
    agreement P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)) equally and pools category shares over all
    ratings); with a constant number it is Fleiss' own formula. nan where undefined (no subject, or every
    rating in one category). With two raters per subject it is Scott's pi, not Cohen's kappa.
    """
    subjects = [list(r) for r in ratings if len(r) >= 2]
    if not subjects:
        return math.nan
    total = sum(len(r) for r in subjects)
    cats = sorted({x for r in subjects for x in r})
    p_bar = sum((sum(r.count(c) ** 2 for c in cats) - len(r)) / (len(r) * (len(r) - 1)) for r in subjects) / len(subjects)
    pe = sum((sum(r.count(c) for r in subjects) / total) ** 2 for c in cats)
    if pe >= 1.0:
        return math.nan
    return (p_bar - pe) / (1 - pe)


def jackknife_ci(items: Sequence[Any], statistic, z: float = Z95) -> tuple[float, float | None, float | None]:
    """(estimate, low, high): ``statistic(items)`` with a delete-one jackknife normal interval over items.

    SE = sqrt((n - 1) / n * sum_i (theta_(i) - mean theta_(.))^2), theta_(i) the statistic without item i;
    interval = estimate +- z SE, clipped to [-1, 1] (kappa's range). Deterministic (no resampling), so a
    test can check it by hand. Low/high are None when n < 2 or any leave-one-out value is undefined (nan).
    Identical items give identical leave-one-out values, so each distinct item is computed once.
    """
    items = list(items)
    estimate = statistic(items)
    n = len(items)
    if n < 2 or math.isnan(estimate):
        return estimate, None, None
    counts: dict[Any, int] = {}
    first: dict[Any, int] = {}
    for i, item in enumerate(items):
        key = repr(item)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    loo = {key: statistic(items[:i] + items[i + 1:]) for key, i in first.items()}
    if any(math.isnan(v) for v in loo.values()):
        return estimate, None, None
    mean = sum(loo[k] * c for k, c in counts.items()) / n
    se = math.sqrt((n - 1) / n * sum(c * (loo[k] - mean) ** 2 for k, c in counts.items()))
    return estimate, max(-1.0, estimate - z * se), min(1.0, estimate + z * se)


def pair_kappa(pairs: Sequence[tuple[int, int]]) -> float:
    """Cohen's kappa of a list of (rater A, rater B) value pairs (the form ``jackknife_ci`` resamples)."""
    return _kappa([a for a, _ in pairs], [b for _, b in pairs])


def pair_kappa_ci(pairs: Sequence[tuple[int, int]], z: float = Z95) -> tuple[float, float | None, float | None]:
    """Cohen's kappa of (A, B) pairs with its jackknife interval; no interval when one rater used a single value.

    Then kappa is 0 (or undefined) whatever the other rater did and so is every leave-one-out kappa: the
    jackknife would give a zero-width interval that says nothing.
    """
    pairs = list(pairs)
    if len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return pair_kappa(pairs) if pairs else math.nan, None, None
    return jackknife_ci(pairs, pair_kappa, z)


def confusion(truth: Sequence[int], pred: Sequence[int]) -> dict[tuple[int, int], int]:
    """Counts for every (truth, pred) pair over {1, 0, -1}, zeros included."""
    if len(truth) != len(pred):
        raise ValueError(f"length mismatch: {len(truth)} vs {len(pred)}")
    counts = {(t, p): 0 for t in VALID_VALUES for p in VALID_VALUES}
    for t, p in zip(truth, pred):
        counts[(int(t), int(p))] += 1
    return counts


@dataclass
class ConditionMetrics:
    condition: str
    n: int
    n_present: int
    n_absent: int
    n_uncertain: int
    accuracy: float
    sensitivity: float
    specificity: float
    kappa: float
    confusion: dict[str, int]  # "truth,pred" -> count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def condition_metrics(condition: str, truth: Sequence[int], pred: Sequence[int]) -> ConditionMetrics:
    c = confusion(truth, pred)
    n = len(truth)
    n_pos = sum(c[(LabelValue.PRESENT, p)] for p in VALID_VALUES)
    n_neg = sum(c[(LabelValue.ABSENT, p)] for p in VALID_VALUES)
    n_unc = sum(c[(LabelValue.UNCERTAIN, p)] for p in VALID_VALUES)
    return ConditionMetrics(
        condition=condition, n=n, n_present=n_pos, n_absent=n_neg, n_uncertain=n_unc,
        accuracy=_ratio(sum(c[(t, t)] for t in VALID_VALUES), n),
        sensitivity=_ratio(c[(LabelValue.PRESENT, LabelValue.PRESENT)], n_pos),
        specificity=_ratio(c[(LabelValue.ABSENT, LabelValue.ABSENT)], n_neg),
        kappa=_kappa(list(truth), list(pred)),
        confusion={f"{t},{p}": v for (t, p), v in c.items()},
    )


def evaluate(truth: Sequence[Any], pred: Sequence[Any], conditions: Sequence[str] | None = None) -> dict[str, ConditionMetrics]:
    """Per-condition metrics of predicted label sets against verified ones (paired by position)."""
    if len(truth) != len(pred):
        raise ValueError(f"length mismatch: {len(truth)} truth vs {len(pred)} predicted")
    mt, mp = [_as_mapping(x) for x in truth], [_as_mapping(x) for x in pred]
    keys = list(conditions) if conditions is not None else sorted({k for m in mt for k in m})
    out = {}
    for k in keys:
        pairs = [(x[k], y.get(k, LabelValue.ABSENT)) for x, y in zip(mt, mp) if k in x]
        out[k] = condition_metrics(k, [p[0] for p in pairs], [p[1] for p in pairs])
    return out


def _fmt(x: float) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.3f}"


def format_table(metrics: Mapping[str, ConditionMetrics]) -> str:
    """Markdown table: condition, counts per truth class, accuracy, sensitivity, specificity, kappa."""
    rows = ["| condition | n | +/0/? (truth) | accuracy | sensitivity | specificity | kappa |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for k, m in metrics.items():
        rows.append(f"| {k} | {m.n} | {m.n_present}/{m.n_absent}/{m.n_uncertain} | {_fmt(m.accuracy)} | "
                    f"{_fmt(m.sensitivity)} | {_fmt(m.specificity)} | {_fmt(m.kappa)} |")
    if metrics:
        ms = list(metrics.values())
        macro = sum(m.accuracy for m in ms if not math.isnan(m.accuracy)) / max(1, sum(1 for m in ms if not math.isnan(m.accuracy)))
        rows.append(f"| **macro mean accuracy** | | | {macro:.3f} | | | |")
    return "\n".join(rows)
