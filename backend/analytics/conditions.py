"""Condition accuracy of the AI drafts: per condition, the model's prediction and the draft's finding
against the signed report.

Truth is the label the rule labeler (``spine_labels``, offline and deterministic) reads in the SIGNED text;
the draft's label is the same labeler on the AI draft text, so both texts are read the same way and a
finding the radiologist deleted or added shows up as a label change. Conventions (docs/exports.md):

- rows whose signed label is uncertain (-1) are excluded (no truth);
- the AI side uses the result's ``present`` flag (a hedged "possible" call is not present); a condition
  the result did not predict, or whose bundle did not validate it (status "not_assessed"), is excluded;
- the draft side counts 1 as a positive and 0 as a negative; a draft that is itself uncertain (-1, a
  hedge) is excluded from TP/FP/FN/TN and counted in ``uncertain``;
- false-positive findings = draft present, signed absent (FP of the draft); omitted findings = signed
  present, draft absent (FN of the draft);
- sensitivity = TP / (TP + FN), specificity = TN / (TN + FP), each with a 95% Wilson interval.
"""

from __future__ import annotations

from django.db.models import Count, Q

from backend.annotations.priority import model_called, model_predictions
from spine_labels import RULES_VERSION, STUDY_LEVEL, extract_labels
from spine_labels.schema import condition_keys
from spinefm.conditions import LabelValue, get_condition

from .models import ConditionOutcome
from .stats import rate as _rate

LABELER_VERSION = RULES_VERSION
SOURCES = ("ai", "draft")
CELLS = ("tp", "fp", "fn", "tn")


def _levels(label_set, key: str) -> dict[str, int]:
    label = label_set.labels.get(key)
    return label.level_values() if label is not None else {STUDY_LEVEL: LabelValue.ABSENT}


def label_sets(draft_text: str, signed_text: str) -> tuple:
    """The rule labeler's reading of the draft and of the signed text (spine_labels LabelSets). Sign-off reads
    them once and hands them to both consumers (outcomes here, edit_burden.significant_edits)."""
    return extract_labels(draft_text or ""), extract_labels(signed_text or "")


def outcomes(draft_text: str, signed_text: str, result, read: tuple | None = None) -> list[dict]:
    """One dict per registry condition: ai_present (or None), draft_label, signed_label, and both per level.
    ``read``: the texts' label sets when the caller has them (label_sets)."""
    predictions = model_predictions(result)
    draft_set, signed_set = read or label_sets(draft_text, signed_text)
    draft, signed = draft_set.as_dict(), signed_set.as_dict()
    return [{"condition": key,
             "ai_present": predictions[key]["present"]
             if key in predictions and model_called(predictions[key]) else None,
             "draft_label": draft.get(key, LabelValue.ABSENT), "signed_label": signed.get(key, LabelValue.ABSENT),
             "draft_levels": _levels(draft_set, key), "signed_levels": _levels(signed_set, key)}
            for key in condition_keys()]


def _counts() -> dict:
    """Aggregates of one queryset of outcomes: the four cells per source and the exclusions."""
    truth_known = ~Q(signed_label=LabelValue.UNCERTAIN)
    pos, neg = Q(signed_label=LabelValue.PRESENT), Q(signed_label=LabelValue.ABSENT)
    c = {
        "n": Count("pk"),
        "signed_present": Count("pk", filter=pos), "signed_absent": Count("pk", filter=neg),
        "signed_uncertain": Count("pk", filter=Q(signed_label=LabelValue.UNCERTAIN)),
        "ai_tp": Count("pk", filter=pos & Q(ai_present=True)), "ai_fn": Count("pk", filter=pos & Q(ai_present=False)),
        "ai_fp": Count("pk", filter=neg & Q(ai_present=True)), "ai_tn": Count("pk", filter=neg & Q(ai_present=False)),
        "ai_missing": Count("pk", filter=truth_known & Q(ai_present__isnull=True)),
        "draft_tp": Count("pk", filter=pos & Q(draft_label=LabelValue.PRESENT)),
        "draft_fn": Count("pk", filter=pos & Q(draft_label=LabelValue.ABSENT)),
        "draft_fp": Count("pk", filter=neg & Q(draft_label=LabelValue.PRESENT)),
        "draft_tn": Count("pk", filter=neg & Q(draft_label=LabelValue.ABSENT)),
        "draft_uncertain": Count("pk", filter=truth_known & Q(draft_label=LabelValue.UNCERTAIN)),
    }
    return c


def _side(row: dict, source: str, rate) -> dict:
    tp, fp, fn, tn = (row[f"{source}_{cell}"] for cell in CELLS)
    out = {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
           "sensitivity": {"n": tp + fn, **rate(tp, tp + fn)},
           "specificity": {"n": tn + fp, **rate(tn, tn + fp)}}
    if source == "ai":
        out["missing"] = row["ai_missing"]
    else:
        out.update(uncertain=row["draft_uncertain"], false_positive_findings=fp, omitted_findings=fn)
    return out


def _display_name(key: str) -> str:
    try:
        return get_condition(key).display_name
    except KeyError:  # a condition a site has since removed from the registry
        return key


def summary(metrics_qs) -> dict:
    """{"conditions": [per condition, registry order], "all": the same summed over conditions}."""
    qs = ConditionOutcome.objects.filter(metrics__in=metrics_qs.values("pk"))
    by_key = {row["condition"]: row for row in qs.values("condition").annotate(**_counts())}
    total = qs.aggregate(**_counts())
    reports = metrics_qs.filter(conditions__isnull=False).distinct().count()
    known = list(condition_keys())
    rows = []
    for key in known + sorted(k for k in by_key if k not in known):
        row = by_key.get(key) or dict.fromkeys(_counts(), 0)
        rows.append({"condition": key, "display_name": _display_name(key), "n": row["n"],
                     "signed_present": row["signed_present"], "signed_absent": row["signed_absent"],
                     "signed_uncertain": row["signed_uncertain"],
                     **{source: _side(row, source, _rate) for source in SOURCES}})
    overall = {"condition": "all", "display_name": "all conditions", "n": total["n"],
               "signed_present": total["signed_present"], "signed_absent": total["signed_absent"],
               "signed_uncertain": total["signed_uncertain"],
               **{source: _side(total, source, _rate) for source in SOURCES}}
    return {"reports": reports, "labeler": LABELER_VERSION, "conditions": rows, "all": overall}
