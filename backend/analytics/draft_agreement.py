"""Agreement of the AI draft with the signed report, per condition and per condition x level.

Both texts are read by the rule labeler at sign time (``conditions.outcomes``: ConditionOutcome's
draft/signed label and their per-level labels, spine_labels ``Label.level_values``). Definitions
(docs/exports.md, "Draft vs signed agreement"):

- per condition: one row per signed report, the ternary labels (1 / 0 / -1) of draft and signed text;
- per condition x level: one row per signed report and level that either text names for ANY condition
  (the levels the report speaks of: "L4-L5: disc bulge, no stenosis" makes L4-L5 a canal row too, absent in
  both), plus "study" where either text names no level for the condition's finding; a level a text does not
  name for the condition is absent there;
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
from itertools import groupby

from spine_labels import STUDY_LEVEL, pair_kappa_ci
from spine_labels.schema import condition_keys
from spinefm.conditions import DISC_LEVELS, VERTEBRAE, LabelValue

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
            "draft_present": sum(1 for d, _ in pairs if d == LabelValue.PRESENT),
            "signed_present": sum(1 for _, s in pairs if s == LabelValue.PRESENT)}


def _level_pairs(outcomes: list[tuple[str, dict, dict]]) -> dict[str, dict[str, tuple[int, int]]]:
    """{condition: {level: (draft, signed)}} of one report from its (condition, draft_levels, signed_levels).

    Levels: every level either text names for any condition (the levels the report speaks of), so a level
    discussed without this condition counts as absent in both; plus "study" where either text has it for this
    condition.
    """
    named = {lv for _, d, s in outcomes for lv in (*d, *s) if lv != STUDY_LEVEL}
    out = {}
    for key, d, s in outcomes:
        levels = named | ({STUDY_LEVEL} if STUDY_LEVEL in d or STUDY_LEVEL in s else set())
        out[key] = {lv: (d.get(lv, LabelValue.ABSENT), s.get(lv, LabelValue.ABSENT)) for lv in levels}
    return out


def summary(metrics_qs) -> dict:
    """{"conditions": [per condition, registry order], "levels": [per condition x level], counts, methods}."""
    rows = (ConditionOutcome.objects.filter(metrics__in=metrics_qs.values("pk"))
            .order_by("metrics_id", "condition")
            .values_list("metrics_id", "condition", "draft_label", "signed_label", "draft_levels", "signed_levels"))
    by_condition: dict[str, list] = defaultdict(list)
    by_level: dict[tuple[str, str], list] = defaultdict(list)
    reports, without_levels = set(), set()
    for metrics_id, outcomes in groupby(rows.iterator(chunk_size=2000), key=lambda r: r[0]):
        outcomes = list(outcomes)
        reports.add(metrics_id)
        for _, key, draft, signed, _, _ in outcomes:
            by_condition[key].append((draft, signed))
        if any(o[4] is None or o[5] is None for o in outcomes):
            without_levels.add(metrics_id)
            continue
        for key, levels in _level_pairs([(o[1], o[4], o[5]) for o in outcomes]).items():
            for level, pair in levels.items():
                by_level[(key, level)].append(pair)
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
