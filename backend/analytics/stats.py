"""Small statistics shared by the analytics summaries: Wilson score intervals, rates, quantiles."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes of n; (None, None) when n == 0."""
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


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
