"""Export tables (radpeer, edits, reports, conditions, turnaround, edit_burden, significant_edits,
qa_reviews, draft_agreement, draft_agreement_levels, annotator_agreement, annotator_agreement_levels) and their
CSV / XLSX encodings.

annotator_agreement (per condition) and annotator_agreement_levels (per condition x level) are the annotation
app's agreement between annotators (``backend.annotations.metrics``): over every annotated task, so the sign-off
filters do not apply to them; both need ``annotations.view_label_metrics`` (``LABEL_METRICS_TABLES``).

A table is a header and an iterable of rows plus its row count (the count goes into the audit event
before the first byte is sent). Summaries are small and built in memory; the per-report table is the
ones that grow with the date range are the per-report table and the per-edit table (significant_edits), so
their rows come from a server-side cursor (``QuerySet.iterator``) and are never all held at once.

Patient data: none by default (database ids only: study pk, report pk, reader user id). With
``identified=True`` (the view checks ``analytics.export_identified``) the reports table gains
patient_name, patient_id, accession_number and study_instance_uid at the end; the summary tables never
contain patient data.

Cells that a spreadsheet would run as a formula (text starting with = + - @, tab or CR) are prefixed with
an apostrophe in both formats; XLSX cells lose the control characters XML cannot hold.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Iterable

from django.db.models import Count, F, Func, IntegerField, Q, Sum
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from backend.reports.radpeer import SCORES
from backend.spreadsheets import csv_lines, spreadsheet_safe
from spinefm.conditions import LabelValue

from backend.annotations import metrics as annotation_metrics

from . import burden_summary, conditions, draft_agreement, edit_burden, services, turnaround

TABLES = ("radpeer", "edits", "reports", "conditions", "turnaround", "edit_burden", "significant_edits",
          "draft_agreement", "draft_agreement_levels", "annotator_agreement", "annotator_agreement_levels",
          "qa_reviews")
LABEL_METRICS_TABLES = ("annotator_agreement", "annotator_agreement_levels")
IDENTIFIED_COLUMNS = ["patient_name", "patient_id", "accession_number", "study_instance_uid"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Table:
    name: str
    header: list[str]
    rows: Iterable[list]
    row_count: int


def _cell(value):
    return "" if value is None else value


def _iso(value) -> str:
    return value.isoformat() if value is not None else ""


def radpeer_table(params: dict) -> Table:
    header = ["group", "label", "n", *(f"count_{s}" for s in SCORES),
              "discrepancy_k", "discrepancy_rate", "discrepancy_ci_low", "discrepancy_ci_high",
              "significant_k", "significant_rate", "significant_ci_low", "significant_ci_high", "low_count",
              "qa_reviewed", "qa_changed"]
    rows = [[r["group"], r["label"], r["n"], *(r["counts"][s] for s in SCORES),
             *(_cell(r[name][f]) for name in ("discrepancy", "significant") for f in ("k", "rate", "ci_low",
                                                                                      "ci_high")),
             int(r["low_count"]), r["reviewed"], r["changed"]] for r in services.radpeer_summary(params)]
    return Table("radpeer", header, rows, len(rows))


def edits_table(params: dict) -> Table:
    header = ["radpeer_score", "n", "char_mean", "char_median", "word_mean", "word_median"]
    rows = [[_cell(r[h]) for h in header] for r in services.edits_summary(params)]
    return Table("edits", header, rows, len(rows))


REPORT_COLUMNS = [
    "study_id", "report_id", "reader_id", "signed_at", "radpeer_score", "model_version_id", "model_version",
    "draft_backend", "region", "draft_number", "signed_number", "draft_chars", "final_chars", "char_distance",
    "word_distance", "findings_char_distance", "findings_word_distance", "impression_char_distance",
    "impression_word_distance", "study_received_at", "draft_ready_at", "first_opened_at",
    *(f"{name}_s" for name in turnaround.INTERVAL_NAMES),
    "draft_false_positive_findings", "draft_omitted_findings", "ai_false_positives", "ai_false_negatives",
    *edit_burden.WER_FIELDS, *edit_burden.SENTENCE_FIELDS, "significant_edits",
    *(f"significant_{kind}" for kind in edit_burden.EDIT_KINDS)]


def _burden_cells(m) -> list:
    """The edit burden columns of the per-report table (counts of significant edits; the edits themselves are
    the significant_edits table)."""
    kinds = edit_burden.count_kinds(m.significant_edits or [])
    return [_cell(m.wer), *(getattr(m, f) for f in edit_burden.WER_FIELDS[1:]),
            *(getattr(m, f) for f in edit_burden.SENTENCE_FIELDS), sum(kinds.values()),
            *(kinds[k] for k in edit_burden.EDIT_KINDS)]


def _reports_queryset(params: dict):
    pos, neg = Q(conditions__signed_label=LabelValue.PRESENT), Q(conditions__signed_label=LabelValue.ABSENT)
    return services.metrics_queryset(params).select_related("report__study").annotate(
        draft_fp=Count("conditions", filter=neg & Q(conditions__draft_label=LabelValue.PRESENT)),
        draft_fn=Count("conditions", filter=pos & Q(conditions__draft_label=LabelValue.ABSENT)),
        ai_fp=Count("conditions", filter=neg & Q(conditions__ai_present=True)),
        ai_fn=Count("conditions", filter=pos & Q(conditions__ai_present=False)))


def _report_rows(qs, identified: bool):
    for m in qs.iterator(chunk_size=500):
        mv, study = m.model_version, m.report.study
        times = turnaround.per_report(m)
        row = [study.pk, m.report_id, _cell(m.reader_id), _iso(m.signed_at), m.radpeer_score,
               _cell(m.model_version_id), f"{mv.name}:{mv.version}" if mv else "", m.draft_backend, m.region,
               m.draft_number, m.signed_number, m.draft_chars, m.final_chars, m.char_distance, m.word_distance,
               _cell(m.findings_char_distance), _cell(m.findings_word_distance),
               _cell(m.impression_char_distance), _cell(m.impression_word_distance),
               _iso(m.study_received_at), _iso(m.draft_ready_at), _iso(m.first_opened_at),
               *(_cell(times[name]) for name in turnaround.INTERVAL_NAMES),
               m.draft_fp, m.draft_fn, m.ai_fp, m.ai_fn, *_burden_cells(m)]
        if identified:
            row += [study.patient_name, study.patient_id, study.accession_number, study.study_instance_uid]
        yield row


def reports_table(params: dict, identified: bool = False) -> Table:
    qs = _reports_queryset(params)
    header = REPORT_COLUMNS + (IDENTIFIED_COLUMNS if identified else [])
    return Table("reports", header, _report_rows(qs, identified), services.metrics_queryset(params).count())


def _rate_cells(rate: dict) -> list:
    return [_cell(rate["rate"]), _cell(rate["ci_low"]), _cell(rate["ci_high"])]


def conditions_table(params: dict) -> Table:
    header = ["condition", "display_name", "n", "signed_present", "signed_absent", "signed_uncertain",
              "ai_tp", "ai_fp", "ai_fn", "ai_tn", "ai_missing",
              "ai_sensitivity", "ai_sensitivity_ci_low", "ai_sensitivity_ci_high",
              "ai_specificity", "ai_specificity_ci_low", "ai_specificity_ci_high",
              "draft_tp", "draft_fp", "draft_fn", "draft_tn", "draft_uncertain",
              "draft_sensitivity", "draft_sensitivity_ci_low", "draft_sensitivity_ci_high",
              "draft_specificity", "draft_specificity_ci_low", "draft_specificity_ci_high",
              "false_positive_findings", "omitted_findings"]
    data = conditions.summary(services.metrics_queryset(params))
    rows = []
    for r in [*data["conditions"], data["all"]]:
        ai, draft = r["ai"], r["draft"]
        rows.append([r["condition"], r["display_name"], r["n"], r["signed_present"], r["signed_absent"],
                     r["signed_uncertain"], ai["tp"], ai["fp"], ai["fn"], ai["tn"], ai["missing"],
                     *_rate_cells(ai["sensitivity"]), *_rate_cells(ai["specificity"]),
                     draft["tp"], draft["fp"], draft["fn"], draft["tn"], draft["uncertain"],
                     *_rate_cells(draft["sensitivity"]), *_rate_cells(draft["specificity"]),
                     draft["false_positive_findings"], draft["omitted_findings"]])
    return Table("conditions", header, rows, len(rows))


def turnaround_table(params: dict) -> Table:
    stats = ("n", "median_s", "p90_s", "mean_s")
    header = ["group", "label", "reports",
              *(f"{name}_{stat}" for name in turnaround.INTERVAL_NAMES for stat in stats)]
    rows = [[g["group"], g["label"], g["reports"],
             *(_cell(g["intervals"][name][stat]) for name in turnaround.INTERVAL_NAMES for stat in stats)]
            for g in turnaround.summary(services.metrics_queryset(params), params.get("group_by"))]
    return Table("turnaround", header, rows, len(rows))


def edit_burden_table(params: dict) -> Table:
    words = burden_summary.WORD_COUNTS
    header = ["group", "label", "reports", *words, "wer", "wer_reports", "wer_mean", "wer_median",
              *(f"sentences_{k}" for k in edit_burden.SENTENCE_KINDS),
              "significant_edits", *(f"significant_{k}" for k in edit_burden.EDIT_KINDS),
              "reports_with_significant_edits", "reports_with_significant_edits_rate",
              "reports_with_significant_edits_ci_low", "reports_with_significant_edits_ci_high"]
    rows = []
    for g in burden_summary.summary(services.metrics_queryset(params), params.get("group_by")):
        share, edits = g["reports_with_significant_edits"], g["significant_edits"]
        rows.append([g["group"], g["label"], g["reports"], *(g["words"][w] for w in words), _cell(g["wer"]),
                     g["wer_reports"], _cell(g["wer_mean"]), _cell(g["wer_median"]),
                     *(g["sentences"][k] for k in edit_burden.SENTENCE_KINDS),
                     edits["total"], *(edits[k] for k in edit_burden.EDIT_KINDS), share["k"], *_rate_cells(share)])
    return Table("edit_burden", header, rows, len(rows))


SIGNIFICANT_EDIT_COLUMNS = [
    "study_id", "report_id", "reader_id", "signed_at", "model_version_id", "model_version", "condition",
    "display_name", "kind", "level", "draft_label", "draft_levels", "draft_severity", "final_label",
    "final_levels", "final_severity"]


def _significant_edit_rows(qs):
    for m in qs.iterator(chunk_size=500):
        mv = m.model_version
        head = [m.report.study_id, m.report_id, _cell(m.reader_id), _iso(m.signed_at), _cell(m.model_version_id),
                f"{mv.name}:{mv.version}" if mv else ""]
        for e in m.significant_edits:
            yield [*head, e["condition"], e["display_name"], e["kind"], _cell(e["level"]),
                   e["draft_label"], ";".join(e["draft_levels"]), _cell(e["draft_severity"]),
                   e["final_label"], ";".join(e["final_levels"]), _cell(e["final_severity"])]


def significant_edits_table(params: dict) -> Table:
    """One row per significant edit of every signed report in the selection (reports without one: no row)."""
    qs = services.metrics_queryset(params).select_related("report").exclude(significant_edits=[])
    count = qs.aggregate(n=Sum(Func(F("significant_edits"), function="jsonb_array_length",
                                    output_field=IntegerField())))["n"] or 0
    return Table("significant_edits", SIGNIFICANT_EDIT_COLUMNS, _significant_edit_rows(qs), count)
QA_REVIEW_COLUMNS = ["qa_case_id", "study_id", "report_id", "reader_id", "signed_at", "model_version",
                     "selection", "original_score", "reviewed_score", "decision", "changed", "reviewer_id",
                     "reason", "reviewed_at", "selected_at"]


def qa_reviews_table(params: dict) -> Table:
    """One row per peer-reviewed report in the filters (reader and reviewer as ids, no patient data)."""
    from backend.qa.models import QACase

    report_ids = services.metrics_queryset(params).values("report_id")
    cases = (QACase.objects.filter(status=QACase.REVIEWED, report_id__in=report_ids)
             .select_related("report", "report__edit_metrics__model_version").order_by("reviewed_at", "pk"))
    rows = []
    for c in cases:
        mv = c.report.edit_metrics.model_version
        rows.append([c.pk, c.report.study_id, c.report_id, _cell(c.reader_id), _iso(c.report.signed_at),
                     f"{mv.name}:{mv.version}" if mv else "", c.selection, c.original_score, c.reviewed_score,
                     c.decision, int(c.reviewed_score != c.original_score), _cell(c.reviewer_id),
                     c.review_reason, _iso(c.reviewed_at), _iso(c.created_at)])
    return Table("qa_reviews", QA_REVIEW_COLUMNS, rows, len(rows))


AGREEMENT_COLUMNS = ["n", "agree", "percent_agreement", "agreement_ci_low", "agreement_ci_high", "kappa",
                     "kappa_ci_low", "kappa_ci_high", "draft_present", "signed_present"]


def draft_agreement_table(params: dict, per_level: bool = False) -> Table:
    """AI draft vs signed report, one row per condition (or per condition x level)."""
    data = draft_agreement.summary(services.metrics_queryset(params))
    head = ["condition", "display_name", *(["level"] if per_level else [])]
    rows = [[*(r[h] for h in head), *(_cell(r[c]) for c in AGREEMENT_COLUMNS)]
            for r in data["levels" if per_level else "conditions"]]
    return Table("draft_agreement_levels" if per_level else "draft_agreement", head + AGREEMENT_COLUMNS, rows,
                 len(rows))


ANNOTATOR_AGREEMENT_COLUMNS = ["statistic", "annotations_seen", "condition", "n", "observed_agreement", "kappa",
                               "ci_low", "ci_high"]


def annotator_agreement_table(params: dict) -> Table:
    """Annotators' kappa per condition: Cohen's over the first two annotations of every task (all pairs, and
    the pairs where neither / both saw the extraction), Fleiss' over the tasks with three or more."""
    data = annotation_metrics.annotator_agreement()
    blocks = [("cohen", "any", data), ("cohen", "neither", data["by_exposure"]["unseen"]),
              ("cohen", "both", data["by_exposure"]["seen"]), ("fleiss", "any", data["fleiss"])]
    rows = [[statistic, seen, key, c["n"], _cell(c["observed_agreement"]), _cell(c["kappa"]), _cell(c["ci_low"]),
             _cell(c["ci_high"])]
            for statistic, seen, block in blocks for key, c in block["conditions"].items()]
    return Table("annotator_agreement", ANNOTATOR_AGREEMENT_COLUMNS, rows, len(rows))


ANNOTATOR_AGREEMENT_LEVEL_COLUMNS = ["statistic", "condition", "level", "n", "observed_agreement", "kappa", "ci_low",
                                     "ci_high"]


def annotator_level_rows(data: dict) -> list[dict]:
    """The per condition x level cells of ``annotation_metrics.annotator_agreement()``, Cohen's then Fleiss',
    each with its ``statistic``: the rows of the annotator_agreement_levels export and of the dashboard's table
    (one list for both, so the page shows the export's numbers)."""
    return [{"statistic": statistic, **c}
            for statistic, block in (("cohen", data["levels"]), ("fleiss", data["fleiss"]["levels"])) for c in block]


def annotator_agreement_levels_table(params: dict) -> Table:
    """Annotators' kappa per condition x level (every level an annotator of the task named; "study" for none):
    Cohen's over the first two annotations of every task, Fleiss' over the tasks with three or more."""
    rows = [[c["statistic"], c["condition"], c["level"], c["n"], _cell(c["observed_agreement"]), _cell(c["kappa"]),
             _cell(c["ci_low"]), _cell(c["ci_high"])]
            for c in annotator_level_rows(annotation_metrics.annotator_agreement())]
    return Table("annotator_agreement_levels", ANNOTATOR_AGREEMENT_LEVEL_COLUMNS, rows, len(rows))


def build(table: str, params: dict, identified: bool = False) -> Table:
    """The named table (one of ``TABLES``, checked by the export's query serializer)."""
    if table == "radpeer":
        return radpeer_table(params)
    if table == "edits":
        return edits_table(params)
    if table == "reports":
        return reports_table(params, identified)
    if table == "conditions":
        return conditions_table(params)
    if table == "turnaround":
        return turnaround_table(params)
    if table == "edit_burden":
        return edit_burden_table(params)
    if table == "significant_edits":
        return significant_edits_table(params)
    if table == "qa_reviews":
        return qa_reviews_table(params)
    if table in ("draft_agreement", "draft_agreement_levels"):
        return draft_agreement_table(params, per_level=table == "draft_agreement_levels")
    if table == "annotator_agreement":
        return annotator_agreement_table(params)
    if table == "annotator_agreement_levels":
        return annotator_agreement_levels_table(params)
    raise ValueError(f"unknown table {table!r}")


# ---- encodings --------------------------------------------------------------------------------------------------

def csv_chunks(table: Table):
    """Encoded CSV lines, one per row, header first (for StreamingHttpResponse)."""
    return csv_lines(table.header, table.rows)


def _xlsx_value(ws, value):
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", spreadsheet_safe(value))
        cell = WriteOnlyCell(ws, value)
        cell.data_type = "s"  # never a formula, whatever the text
        return cell
    return value


def xlsx_file(tables: list[Table]):
    """A workbook with one sheet per table, written in openpyxl's write-only mode into an anonymous temp file.

    XLSX is a zip whose directory comes last, so the workbook cannot be sent while it is written: rows
    stream from the database into openpyxl's per-sheet temp files (flat memory), the zip is written to a
    ``TemporaryFile`` on disk (unlinked already: it vanishes when closed), rewound, and the view streams it
    with FileResponse in blocks.
    """
    wb = Workbook(write_only=True)
    for table in tables:
        ws = wb.create_sheet(title=table.name)
        ws.append(table.header)
        for row in table.rows:
            ws.append([_xlsx_value(ws, v) for v in row])
    handle = tempfile.TemporaryFile(prefix="spineagent-export-", suffix=".xlsx")
    try:
        wb.save(handle)
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    return handle
