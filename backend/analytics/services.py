"""Edit metrics (AI draft vs signed text), filters, RADPEER summaries with Wilson intervals.

Definitions (see docs/exports.md):
- char distance: rapidfuzz normalised Levenshtein on the two texts (stripped), in [0, 1];
- word distance: the same on whitespace-separated tokens (case and punctuation count);
- sections: text after a line starting with ``FINDINGS:`` / ``IMPRESSION:`` (any case) up to the next such
  heading; null when either text lacks the section;
- discrepancy rate = (2a + 2b + 3a + 3b) / n; clinically significant rate = (2b + 3b) / n (3a not counted),
  n = signed reports with a RADPEER score; 95% Wilson score intervals; ``low_count`` when n < 30;
  QA-adjusted: a report's score is its peer-reviewed score when it has one (backend/qa), else its sign-off score.

Condition outcomes (``conditions.py``), edit burden (``edit_burden.py``) and turnaround (``turnaround.py``)
are stored by the same ``compute_for_report`` so that every figure of the dashboard comes from rows written
at sign time.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict

from django.db import transaction
from django.db.models import F
from rapidfuzz.distance import Levenshtein

from backend.reports.models import Report, ReportVersion
from backend.reports.radpeer import SCORES

from . import conditions, edit_burden
from .models import ConditionOutcome, EditMetrics
from .stats import Z95, rate as _rate, wilson  # noqa: F401  (services.wilson is public)

MIN_COUNT = 30
DISCREPANT = ("2a", "2b", "3a", "3b")
SIGNIFICANT = ("2b", "3b")
GROUP_BY = ("reader", "model_version", "draft_backend", "month", "region")

_HEADING = re.compile(r"^[ \t]*(findings|impression)[ \t]*:", re.IGNORECASE | re.MULTILINE)


# ---- text metrics -----------------------------------------------------------------------------------------------

def char_distance(a: str, b: str) -> float:
    return float(Levenshtein.normalized_distance(a, b))


def word_distance(a: str, b: str) -> float:
    return float(Levenshtein.normalized_distance(a.split(), b.split()))


def sections(text: str) -> dict[str, str]:
    """{"findings": ..., "impression": ...} for the headings present (first occurrence of each), stripped."""
    found: dict[str, str] = {}
    matches = list(_HEADING.finditer(text or ""))
    for i, m in enumerate(matches):
        name = m.group(1).lower()
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        found.setdefault(name, text[m.end():end].strip())
    return found


def region_of(body_part: str, description: str) -> str:
    """Spine region from the study's body part / description; the raw body part when unrecognised."""
    words = f"{body_part} {description}".lower().replace("-", "").replace("_", " ")
    for region, keys in (("whole spine", ("whole spine", "wholespine", "total spine")),
                         ("cervical", ("cspine", "c spine", "cervical", "neck")),
                         ("thoracic", ("tspine", "t spine", "thoracic", "dorsal")),
                         ("lumbar", ("lspine", "l spine", "lumbar", "lumbosacral", "sacrum"))):
        if any(k in words for k in keys):
            return region
    return (body_part or "").strip().lower()[:64]


def text_metrics(draft: str, final: str) -> dict:
    draft, final = (draft or "").strip(), (final or "").strip()
    out = {"draft_chars": len(draft), "final_chars": len(final),
           "char_distance": char_distance(draft, final), "word_distance": word_distance(draft, final)}
    d, f = sections(draft), sections(final)
    for name in ("findings", "impression"):
        both = name in d and name in f
        out[f"{name}_char_distance"] = char_distance(d[name], f[name]) if both else None
        out[f"{name}_word_distance"] = word_distance(d[name], f[name]) if both else None
    return out


# ---- computing the rows -----------------------------------------------------------------------------------------

def _first_ai_version(report: Report) -> ReportVersion | None:
    """The first AI version: the moment a draft was ready for the radiologist (turnaround)."""
    return report.versions.filter(source=ReportVersion.AI).order_by("number").first()


@transaction.atomic
def compute_for_report(report_id: int) -> EditMetrics | None:
    """Create or refresh the metrics (and condition outcomes) of a signed report.

    None (and no row) when unsigned or without AI draft.
    """
    report = Report.objects.select_related("study").filter(pk=report_id).first()
    if report is None or report.status != Report.SIGNED or report.signed_number is None:
        return None
    draft = report.versions.ai_draft()
    if draft is None:
        EditMetrics.objects.filter(report=report).delete()
        return None
    final = report.versions.get(number=report.signed_number)
    first_ai = _first_ai_version(report)
    read = conditions.label_sets(draft.text, final.text)  # one labeler pass per text for both uses below
    values = {"reader_id": report.signed_by_id, "model_version_id": draft.model_version_id,
              "draft_backend": draft.draft_backend, "radpeer_score": report.radpeer_score,
              "signed_at": report.signed_at, "draft_number": draft.number, "signed_number": final.number,
              "region": region_of(report.study.body_part, report.study.study_description),
              "study_received_at": report.study.received_at,
              "draft_ready_at": first_ai.created_at if first_ai else None,
              "first_opened_at": report.first_opened_at,
              "labeler_version": conditions.LABELER_VERSION,
              **text_metrics(draft.text, final.text), **edit_burden.burden(draft.text, final.text, read)}
    metrics, _ = EditMetrics.objects.update_or_create(report=report, defaults=values)
    ConditionOutcome.objects.filter(metrics=metrics).delete()
    ConditionOutcome.objects.bulk_create(
        ConditionOutcome(metrics=metrics, **row)
        for row in conditions.outcomes(draft.text, final.text, draft.inference_result, read))
    return metrics


def compute_all(missing_only: bool = False) -> tuple[int, int]:
    reports = Report.objects.filter(status=Report.SIGNED)
    if missing_only:
        reports = reports.filter(edit_metrics__isnull=True)
    stored = skipped = 0
    for pk in reports.order_by("pk").values_list("pk", flat=True):
        if compute_for_report(pk) is None:
            skipped += 1
        else:
            stored += 1
    return stored, skipped


# ---- summaries of the filtered rows (filters.py validates the filters) -----------------------------------------

def metrics_queryset(params: dict):
    qs = EditMetrics.objects.select_related("model_version")
    if "date_from" in params:
        qs = qs.filter(signed_at__date__gte=params["date_from"])
    if "date_to" in params:
        qs = qs.filter(signed_at__date__lte=params["date_to"])
    if "reader" in params:
        qs = qs.filter(reader_id=params["reader"])
    if "model_version" in params:
        qs = qs.filter(model_version_id=params["model_version"])
    for field in ("draft_backend", "region"):
        if field in params:
            qs = qs.filter(**{field: params[field]})
    return qs.order_by("signed_at", "pk")


def group_key(m: EditMetrics, group_by: str | None) -> tuple[str, str]:
    """(key, label) of a row's group. Readers are anonymous ids; model versions carry their label."""
    if group_by == "reader":
        return str(m.reader_id or ""), f"reader {m.reader_id}" if m.reader_id else "unknown reader"
    if group_by == "model_version":
        mv = m.model_version
        return (str(mv.pk), f"{mv.name}:{mv.version}") if mv else ("", "no model version")
    if group_by == "draft_backend":
        return m.draft_backend, m.draft_backend or "unknown backend"
    if group_by == "month":
        key = m.signed_at.strftime("%Y-%m") if m.signed_at else ""
        return key, key or "unknown month"
    if group_by == "region":
        return m.region, m.region or "unknown region"
    return "all", "all"


def with_reviewed_score(qs):
    """Annotate ``qa_score``: the RADPEER score a peer review gave the report ('' or None when not reviewed)."""
    return qs.annotate(qa_score=F("report__qa_case__reviewed_score"))


def effective_score(m) -> str:
    """QA-adjusted score: the peer-reviewed score when the report was reviewed, else the sign-off score."""
    return getattr(m, "qa_score", None) or m.radpeer_score


def radpeer_summary(params: dict) -> list[dict]:
    """Counts and rates per group, on QA-adjusted scores; ``reviewed`` / ``changed``: how many of the n
    were peer-reviewed, and how many of those got another score (docs/exports.md)."""
    group_by = params.get("group_by")
    groups: dict[tuple[str, str], dict[str, int]] = {}
    reviewed: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for m in with_reviewed_score(metrics_queryset(params).exclude(radpeer_score="")):
        key = group_key(m, group_by)
        counts = groups.setdefault(key, dict.fromkeys(SCORES, 0))
        counts[effective_score(m)] += 1
        if m.qa_score:
            reviewed[key][0] += 1
            reviewed[key][1] += m.qa_score != m.radpeer_score
    rows = []
    for (key, label), counts in sorted(groups.items()):
        n = sum(counts.values())
        rows.append({"group": key, "label": label, "n": n, "counts": counts,
                     "discrepancy": _rate(sum(counts[s] for s in DISCREPANT), n),
                     "significant": _rate(sum(counts[s] for s in SIGNIFICANT), n),
                     "low_count": n < MIN_COUNT,
                     "reviewed": reviewed[(key, label)][0], "changed": reviewed[(key, label)][1]})
    return rows


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values) if values else None,
            "median": statistics.median(values) if values else None}


def edits_summary(params: dict) -> list[dict]:
    """Per RADPEER score (then all scored reports): n and mean/median char and word distances."""
    by_score: dict[str, list[EditMetrics]] = defaultdict(list)
    for m in metrics_queryset(params).exclude(radpeer_score=""):
        by_score[m.radpeer_score].append(m)
    rows = []
    for score in (*SCORES, "all"):
        ms = [m for s in SCORES for m in by_score[s]] if score == "all" else by_score[score]
        char, word = _spread([m.char_distance for m in ms]), _spread([m.word_distance for m in ms])
        rows.append({"radpeer_score": score, "n": len(ms),
                     "char_mean": char["mean"], "char_median": char["median"],
                     "word_mean": word["mean"], "word_median": word["median"]})
    return rows
