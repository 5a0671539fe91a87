"""Metrics with the paper's conventions: uncertain labels excluded, bootstrap 95% CIs.

AUROC/AUPRC per condition skip cases labelled -1 (and conditions with one
class only, reported as None). Bootstrap resamples cases (patients) with
replacement. Retrieval: rank of the matching item, Recall@K, median rank.
Boxes: mean absolute offset of normalised corners, and IoU.
"""

from __future__ import annotations

import math

import numpy as np


def _valid(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    keep = (y == 0) | (y == 1)
    return y[keep].astype(int), p[keep]


def auroc(y, p) -> float | None:
    from sklearn.metrics import roc_auc_score

    y, p = _valid(y, p)
    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, p))


def auprc(y, p) -> float | None:
    from sklearn.metrics import average_precision_score

    y, p = _valid(y, p)
    if y.size == 0 or y.min() == y.max():
        return None
    return float(average_precision_score(y, p))


def bootstrap_ci(metric, y, p, n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Percentile CI of ``metric(y, p)`` over case resamples (resamples with one class are skipped)."""
    y, p = _valid(y, p)
    if y.size == 0 or y.min() == y.max():
        return None, None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        v = metric(y[idx], p[idx])
        if v is not None:
            vals.append(v)
    if not vals:
        return None, None
    return float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))


def with_ci(metric, y, p, n_boot: int = 200, seed: int = 0) -> dict:
    lo, hi = bootstrap_ci(metric, y, p, n_boot, seed)
    y2, _ = _valid(y, p)
    return {"value": metric(y, p), "ci95": [lo, hi], "n": int(y2.size), "n_pos": int((y2 == 1).sum())}


def mean_defined(values) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def recall_at_k(ranks, ks=(1, 5, 10)) -> dict[str, float]:
    r = np.asarray(ranks)
    return {f"R@{k}": float((r <= k).mean()) if r.size else float("nan") for k in ks}


def median_rank(ranks) -> float:
    r = np.asarray(ranks)
    return float(np.median(r)) if r.size else float("nan")


def box_error(pred, target) -> float:
    """Mean absolute offset of the four normalised box coordinates."""
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    return float(np.abs(pred - target).mean()) if pred.size else float("nan")


def box_iou(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def kfold_groups(groups, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Patient-level folds: every sample of a group (patient) falls in the same fold."""
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    fold_of = {g: i % k for i, g in enumerate(uniq)}
    f = np.array([fold_of[g] for g in groups])
    return [(np.where(f != i)[0], np.where(f == i)[0]) for i in range(k)]


def grouped_mean_ci(values, groups, n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of per-item values (e.g. 1/0 correct) with a percentile CI resampling groups (patients).

    Items of one patient are not independent, so the bootstrap draws patients
    with replacement and keeps all their items.
    """
    v = np.asarray(values, dtype=float)
    g = np.asarray(groups)
    if v.size == 0:
        return {"value": None, "ci95": [None, None], "n": 0, "n_groups": 0}
    uniq = np.unique(g)
    rows = [np.where(g == u)[0] for u in uniq]
    sums = np.array([v[r].sum() for r in rows])
    counts = np.array([r.size for r in rows])
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, uniq.size, uniq.size)
        vals.append(sums[pick].sum() / counts[pick].sum())
    return {"value": float(v.mean()), "ci95": [float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))],
            "n": int(v.size), "n_groups": int(uniq.size)}


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    """Wilson score 95% interval of a proportion k / n; (None, None) when n == 0."""
    if n == 0:
        return None, None
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(k: int, n: int) -> dict:
    """{"value", "ci95" (Wilson), "k", "n"} of a proportion."""
    return {"value": None if n == 0 else k / n, "ci95": list(wilson(k, n)), "k": int(k), "n": int(n)}
