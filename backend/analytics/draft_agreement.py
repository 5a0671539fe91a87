"""Agreement of the AI draft with the signed report, per condition and per condition x level.

Both texts are read by the rule labeler at sign time (``conditions.outcomes``: ConditionOutcome's
draft/signed label and their per-level labels, spine_labels ``Label.level_values``). Definitions
(docs/exports.md, "Draft vs signed agreement"):

- per condition: one row per signed report, the ternary labels (1 / 0 / -1) of draft and signed text;
- per condition x level: one row per signed report and level that either text names for the condition
  ("study" when a text names none for its finding); a level one text does not name is absent there;
  reports whose outcomes predate per-level labels are left out (counted in ``reports_without_levels``);
- percent agreement = rows with equal labels / rows, with a 95% Wilson interval;
- Cohen's kappa (unweighted, ternary) with a 95% delete-one jackknife interval over reports
  (``spine_labels.pair_kappa_ci``); kappa null where undefined (both sides used one single value throughout),
  the interval null also when one side used a single value (kappa is then 0 whatever the other did, and so
  is every leave-one-out kappa: a zero-width interval would say nothing).
"""

from __future__ import annotations

import math
from collections import defaultdict

from spine_labels import STUDY_LEVEL, pair_kappa_ci
from spine_labels.schema import condition_keys
from spinefm.conditions import ABSENT, DISC_LEVELS, PRESENT, VERTEBRAE

from .conditions import LABELER_VERSION, _display_name
from .models import ConditionOutcome
from .stats import wilson

KAPPA_CI = "delete-one jackknife over reports, kappa +- 1.96 SE, clipped to [-1, 1]"
AGREEMENT_CI = "Wilson score interval"
# Cranio-caudal: ... L4, L4-L5, L5, L5-S1, S1; "study" first, anything else ("multilevel") last.
_RANK = {**{v: 2 * i for i, v in enumerate(VERTEBRAE)},
         **{d: 2 * VERTEBRAE.index(d.split("-")[0]) + 1 for d in DISC_LEVELS}}


def level_rank(level: str) -> tuple[int, int, str]:
    if level == STUDY_LEVEL:
        return 0, 0, level
    return (1, _RANK[level], level) if level in _RANK else (2, 0, level)


def _figures(pairs: list[tuple[int, int]]) -> dict:
    n = len(pairs)
    agree = sum(1 for d, s in pairs if d == s)
    low, high = wilson(agree, n)
    kappa, k_low, k_high = pair_kappa_ci(pairs)
    return {"n": n, "agree": agree, "percent_agreement": agree / n if n else None,
            "agreement_ci_low": low, "agreement_ci_high": high,
            "kappa": None if math.isnan(kappa) else kappa, "kappa_ci_low": k_low, "kappa_ci_high": k_high,
            "draft_present": sum(1 for d, _ in pairs if d == PRESENT),
            "signed_present": sum(1 for _, s in pairs if s == PRESENT)}


def summary(metrics_qs) -> dict:
    """{"conditions": [per condition, registry order], "levels": [per condition x level], counts, methods}."""
    rows = (ConditionOutcome.objects.filter(metrics__in=metrics_qs.values("pk"))
            .order_by("metrics_id", "condition")
            .values_list("metrics_id", "condition", "draft_label", "signed_label", "draft_levels", "signed_levels"))
    by_condition: dict[str, list] = defaultdict(list)
    by_level: dict[tuple[str, str], list] = defaultdict(list)
    reports, without_levels = set(), set()
    for metrics_id, key, draft, signed, draft_levels, signed_levels in rows.iterator(chunk_size=2000):
        reports.add(metrics_id)
        by_condition[key].append((draft, signed))
        if draft_levels is None or signed_levels is None:
            without_levels.add(metrics_id)
            continue
        for level in {**draft_levels, **signed_levels}:
            by_level[(key, level)].append((draft_levels.get(level, ABSENT), signed_levels.get(level, ABSENT)))
    known = list(condition_keys())
    order = known + sorted(k for k in by_condition if k not in known)
    position = {k: i for i, k in enumerate(order)}
    conditions = [{"condition": k, "display_name": _display_name(k), **_figures(by_condition.get(k, []))}
                  for k in order]
    levels = [{"condition": k, "display_name": _display_name(k), "level": level, **_figures(pairs)}
              for (k, level), pairs in sorted(by_level.items(),
                                              key=lambda item: (position.get(item[0][0], len(order)),
                                                                level_rank(item[0][1])))]
    return {"labeler": LABELER_VERSION, "confidence": 0.95, "kappa_ci": KAPPA_CI, "agreement_ci": AGREEMENT_CI,
            "reports": len(reports), "reports_without_levels": len(without_levels),
            "conditions": conditions, "levels": levels}
