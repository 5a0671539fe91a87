"""Edit metrics (AI draft vs signed text), RADPEER summaries with Wilson intervals, export rows.

Definitions (see docs/exports.md):
- char distance: rapidfuzz normalised Levenshtein on the two texts (stripped), in [0, 1];
- word distance: the same on whitespace-separated tokens (case and punctuation count);
- sections: text after a line starting with ``FINDINGS:`` / ``IMPRESSION:`` (any case) up to the next such
  heading; null when either text lacks the section;
- discrepancy rate = (2a + 2b + 3a + 3b) / n; clinically significant rate = (2b + 3b) / n (3a not counted),
  n = signed reports with a RADPEER score; 95% Wilson score intervals; ``low_count`` when n < 30.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from datetime import date

from django.db import transaction
from rapidfuzz.distance import Levenshtein

from backend.reports.models import Report, ReportVersion
from backend.reports.radpeer import SCORES

from .models import EditMetrics

Z95 = 1.959963984540054
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

def _ai_draft(report: Report) -> ReportVersion | None:
    """The AI draft the radiologist scored: the last AI version before the first human version (normally v0)."""
    draft = None
    for v in report.versions.order_by("number"):
        if v.source != ReportVersion.AI:
            break
        draft = v
    return draft


@transaction.atomic
def compute_for_report(report_id: int) -> EditMetrics | None:
    """Create or refresh the metrics of a signed report; None (and no row) when unsigned or without AI draft."""
    report = Report.objects.select_related("study").filter(pk=report_id).first()
    if report is None or report.status != Report.SIGNED or report.signed_number is None:
        return None
    draft = _ai_draft(report)
    if draft is None:
        EditMetrics.objects.filter(report=report).delete()
        return None
    final = report.versions.get(number=report.signed_number)
    values = {"reader_id": report.signed_by_id, "model_version_id": draft.model_version_id,
              "draft_backend": draft.draft_backend, "radpeer_score": report.radpeer_score,
              "signed_at": report.signed_at, "draft_number": draft.number, "signed_number": final.number,
              "region": region_of(report.study.body_part, report.study.study_description),
              **text_metrics(draft.text, final.text)}
    metrics, _ = EditMetrics.objects.update_or_create(report=report, defaults=values)
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


# ---- statistics -------------------------------------------------------------------------------------------------

def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes of n; (None, None) when n == 0."""
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(k: int, n: int) -> dict:
    low, high = wilson(k, n)
    return {"k": k, "rate": k / n if n else None, "ci_low": low, "ci_high": high}


# ---- filters and summaries --------------------------------------------------------------------------------------

class BadParams(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def parse_params(query) -> dict:
    """Validate the query string; returns the cleaned params (also recorded in the export audit)."""
    out: dict = {}
    for field in ("date_from", "date_to"):
        if value := query.get(field):
            try:
                out[field] = date.fromisoformat(value).isoformat()
            except ValueError:
                raise BadParams(field, f"{field} must be a date YYYY-MM-DD") from None
    for field in ("reader", "model_version"):
        if value := query.get(field):
            if not value.isdigit():
                raise BadParams(field, f"{field} must be an integer id")
            out[field] = int(value)
    if value := query.get("draft_backend"):
        out["draft_backend"] = value
    if value := query.get("group_by"):
        if value not in GROUP_BY:
            raise BadParams("group_by", "group_by must be one of " + ", ".join(GROUP_BY))
        out["group_by"] = value
    return out


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
    if "draft_backend" in params:
        qs = qs.filter(draft_backend=params["draft_backend"])
    return qs.order_by("signed_at", "pk")


def _group_key(m: EditMetrics, group_by: str | None) -> tuple[str, str]:
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


def radpeer_summary(params: dict) -> list[dict]:
    group_by = params.get("group_by")
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for m in metrics_queryset(params).exclude(radpeer_score=""):
        counts = groups.setdefault(_group_key(m, group_by), dict.fromkeys(SCORES, 0))
        counts[m.radpeer_score] += 1
    rows = []
    for (key, label), counts in sorted(groups.items()):
        n = sum(counts.values())
        rows.append({"group": key, "label": label, "n": n, "counts": counts,
                     "discrepancy": _rate(sum(counts[s] for s in DISCREPANT), n),
                     "significant": _rate(sum(counts[s] for s in SIGNIFICANT), n),
                     "low_count": n < MIN_COUNT})
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


# ---- export tables ----------------------------------------------------------------------------------------------

def _cell(value):
    return "" if value is None else value


def export_table(table: str, params: dict) -> tuple[list[str], list[list]]:
    """(header, rows) of an export. Only anonymous ids: study pk, report pk, reader id; no names, no UIDs."""
    if table == "radpeer":
        header = ["group", "label", "n", *(f"count_{s}" for s in SCORES),
                  "discrepancy_k", "discrepancy_rate", "discrepancy_ci_low", "discrepancy_ci_high",
                  "significant_k", "significant_rate", "significant_ci_low", "significant_ci_high", "low_count"]
        rows = [[r["group"], r["label"], r["n"], *(r["counts"][s] for s in SCORES),
                 *(_cell(r[name][f]) for name in ("discrepancy", "significant") for f in ("k", "rate", "ci_low",
                                                                                          "ci_high")),
                 int(r["low_count"])] for r in radpeer_summary(params)]
        return header, rows
    if table == "edits":
        header = ["radpeer_score", "n", "char_mean", "char_median", "word_mean", "word_median"]
        return header, [[_cell(r[h]) for h in header] for r in edits_summary(params)]
    if table == "reports":
        header = ["study_id", "report_id", "reader_id", "signed_at", "radpeer_score", "model_version_id",
                  "model_version", "draft_backend", "region", "draft_number", "signed_number", "draft_chars",
                  "final_chars", "char_distance", "word_distance", "findings_char_distance",
                  "findings_word_distance", "impression_char_distance", "impression_word_distance"]
        rows = []
        for m in metrics_queryset(params).select_related("report"):
            mv = m.model_version
            rows.append([m.report.study_id, m.report_id, _cell(m.reader_id),
                         m.signed_at.isoformat() if m.signed_at else "", m.radpeer_score,
                         _cell(m.model_version_id), f"{mv.name}:{mv.version}" if mv else "", m.draft_backend,
                         m.region, m.draft_number, m.signed_number, m.draft_chars, m.final_chars,
                         m.char_distance, m.word_distance, *(_cell(getattr(m, f)) for f in header[-4:])])
        return header, rows
    raise BadParams("table", "table must be one of radpeer, edits, reports")
