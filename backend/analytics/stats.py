"""Small statistics shared by the analytics summaries: rates with Wilson score intervals (the one Wilson
interval is the model library's, spinefm.train.metrics), quantiles."""

from __future__ import annotations

import math

from spinefm.train.metrics import Z95, wilson

__all__ = ["Z95", "wilson", "rate", "nearest_rank"]


def rate(k: int, n: int) -> dict:
    low, high = wilson(k, n)
    return {"k": k, "rate": k / n if n else None, "ci_low": low, "ci_high": high}


def nearest_rank(values: list[float], q: float) -> float | None:
    """The q-quantile by the nearest-rank method: an observed value, ceil(q * n)-th smallest; None if empty.

    Chosen over interpolation so a p90 is a turnaround that really happened (and is exact to test).
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]
