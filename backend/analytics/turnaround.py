"""Turnaround of signed reports: from study arrival to draft ready, to first open, to signature.

Timestamps are copied onto EditMetrics at sign time (see services.compute_for_report):
- arrival: ``Study.received_at`` (when the index first saw the study: upload or Orthanc announcement);
- draft ready: ``created_at`` of the first AI version (the draft became visible in the worklist);
- first open: ``Report.first_opened_at`` (the first radiologist to open the report);
- signed: ``Report.signed_at``.
An interval is left out for a report where either end is missing (e.g. signed through the API without
opening). Figures are in seconds: n, median (statistics.median: the mean of the two middle values when n is
even), p90 (nearest rank: an observed value), mean.
"""

from __future__ import annotations

import statistics

from .services import group_key
from .stats import nearest_rank

INTERVALS = (
    ("arrival_to_draft", "study_received_at", "draft_ready_at", "arrival → draft ready"),
    ("arrival_to_first_open", "study_received_at", "first_opened_at", "arrival → first open"),
    ("arrival_to_signed", "study_received_at", "signed_at", "arrival → signed"),
    ("first_open_to_signed", "first_opened_at", "signed_at", "first open → signed"),
)
INTERVAL_NAMES = tuple(name for name, *_ in INTERVALS)


def seconds(m, start: str, end: str) -> float | None:
    a, b = getattr(m, start), getattr(m, end)
    return (b - a).total_seconds() if a is not None and b is not None else None


def per_report(m) -> dict[str, float | None]:
    return {name: seconds(m, start, end) for name, start, end, _ in INTERVALS}


def spread(values: list[float]) -> dict:
    return {"n": len(values),
            "median_s": statistics.median(values) if values else None,
            "p90_s": nearest_rank(values, 0.9),
            "mean_s": statistics.fmean(values) if values else None}


def summary(metrics_qs, group_by: str | None) -> list[dict]:
    """One row per group (one group "all" without group_by), each with the four intervals."""
    groups: dict[tuple[str, str], dict[str, list[float]]] = {}
    reports: dict[tuple[str, str], int] = {}
    for m in metrics_qs:
        key = group_key(m, group_by)
        values = groups.setdefault(key, {name: [] for name in INTERVAL_NAMES})
        reports[key] = reports.get(key, 0) + 1
        for name, value in per_report(m).items():
            if value is not None:
                values[name].append(value)
    return [{"group": key, "label": label, "reports": reports[(key, label)],
             "intervals": {name: {"label": title, **spread(values[name])}
                           for name, _, _, title in INTERVALS}}
            for (key, label), values in sorted(groups.items())]
