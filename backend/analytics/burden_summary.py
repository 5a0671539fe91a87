"""Edit burden aggregated per group (reader, model version, month, ...: ``services.group_key``) and listed per
report, from the fields ``edit_burden.burden`` stored on EditMetrics at sign time.

Per group: reports; the summed word counts N, hits, S, D, I; pooled WER = (S + D + I) / N over the group's
words (a long report weighs more) and the mean / median of the per-report WERs (each report once; a report
whose signed text has no word has no WER: its insertions count in the pooled WER only); the summed sentence
counts; significant edits per kind and in total; and the share of reports with at least one significant
edit (95% Wilson).
"""

from __future__ import annotations

import statistics

from .edit_burden import EDIT_KINDS, SENTENCE_KINDS, count_kinds
from .services import group_key
from .stats import rate

WORD_COUNTS = ("reference_words", "hits", "substitutions", "deletions", "insertions")


def _empty() -> dict:
    return {"reports": 0, "words": dict.fromkeys(WORD_COUNTS, 0), "wers": [],
            "sentences": dict.fromkeys(SENTENCE_KINDS, 0), "edits": dict.fromkeys(EDIT_KINDS, 0), "with_edits": 0}


def _add(acc: dict, m) -> None:
    acc["reports"] += 1
    if m.wer is not None:
        acc["wers"].append(m.wer)
    for name in WORD_COUNTS:
        acc["words"][name] += getattr(m, f"wer_{name}")
    for kind in SENTENCE_KINDS:
        acc["sentences"][kind] += getattr(m, f"sentences_{kind}")
    for kind, n in count_kinds(m.significant_edits or []).items():
        acc["edits"][kind] = acc["edits"].get(kind, 0) + n
    acc["with_edits"] += bool(m.significant_edits)


def _row(key: str, label: str, acc: dict) -> dict:
    w, wers = acc["words"], acc["wers"]
    errors = w["substitutions"] + w["deletions"] + w["insertions"]
    return {"group": key, "label": label, "reports": acc["reports"], "words": w,
            "wer": errors / w["reference_words"] if w["reference_words"] else None,
            "wer_reports": len(wers),
            "wer_mean": statistics.fmean(wers) if wers else None,
            "wer_median": statistics.median(wers) if wers else None,
            "sentences": acc["sentences"],
            "significant_edits": {"total": sum(acc["edits"].values()), **acc["edits"]},
            "reports_with_significant_edits": {"n": acc["reports"], **rate(acc["with_edits"], acc["reports"])}}


def summary(metrics_qs, group_by: str | None) -> list[dict]:
    """One row per group (one group "all" without group_by), sorted by group key."""
    groups: dict[tuple[str, str], dict] = {}
    for m in metrics_qs:
        _add(groups.setdefault(group_key(m, group_by), _empty()), m)
    return [_row(key, label, acc) for (key, label), acc in sorted(groups.items())]


def per_report(m) -> dict:
    """The edit burden of one signed report, as the API lists it."""
    mv = m.model_version
    return {"report_id": m.report_id, "study_id": m.report.study_id, "reader_id": m.reader_id,
            "model_version": f"{mv.name}:{mv.version}" if mv else None, "model_version_id": m.model_version_id,
            "signed_at": m.signed_at, "draft_number": m.draft_number, "signed_number": m.signed_number,
            "wer": m.wer, "words": {name: getattr(m, f"wer_{name}") for name in WORD_COUNTS},
            "sentences": {kind: getattr(m, f"sentences_{kind}") for kind in SENTENCE_KINDS},
            "significant_edits": m.significant_edits or []}


def reports(metrics_qs) -> list[dict]:
    return [per_report(m) for m in metrics_qs.select_related("report")]
