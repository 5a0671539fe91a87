"""Issue 8, second part: condition accuracy of the drafts, turnaround, XLSX / identified exports (audited),
PNG charts, the admin dashboard page and the demo seeder.

Four reports are signed through the report services under a controlled clock; every expected figure below
is worked out by hand from the texts, the AI predictions and the timestamps of the CASES table.
"""

from __future__ import annotations

import csv
import io
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone as tz
from unittest import mock

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from openpyxl import load_workbook
from PIL import Image

from backend.analytics.models import ConditionOutcome, EditMetrics
from backend.audit.models import AuditEvent
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.reports import versions
from backend.reports.models import Report
from backend.studies.models import Study
from spinefm.conditions import CONDITION_KEYS

pytestmark = [pytest.mark.django_db]

PATIENT = "ROE^RICHARD"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=tz.utc)
N_CONDITIONS = len(CONDITION_KEYS)


def _all_absent(**present) -> list[dict]:
    return [{"condition": k, "probability": 0.9 if present.get(k) else 0.1, "present": bool(present.get(k)),
             "level": None} for k in CONDITION_KEYS]


# draft, signed text (None: signed unchanged), AI conditions, score, comment, reader, backend,
# minutes after arrival: draft ready, first open (None: never opened), signed.
CASES = [
    ("FINDINGS: L4-L5 disc herniation. No spinal canal stenosis.", None,
     _all_absent(herniation=True), "1", "", "r1", "template", 5, 60, 70),
    ("FINDINGS: L4-L5 disc herniation. L1 compression fracture.", "FINDINGS: L4-L5 disc herniation. No fracture.",
     _all_absent(herniation=True, fracture=True), "2a", "", "r1", "template", 10, 120, 125),
    ("FINDINGS: No disc herniation.", "FINDINGS: L5-S1 disc herniation. Possible spinal canal stenosis.",
     _all_absent(canal=True), "3b", "missed herniation", "r2", "template", 20, 30, 60),
    ("FINDINGS: Possible disc herniation at L4-L5.", "FINDINGS: L4-L5 disc herniation.",
     [{"condition": "fracture", "probability": 0.2, "present": False, "level": None}], "2a", "", "r2", "=1+1",
     40, None, 50),
]


@contextmanager
def at(when: datetime):
    """The services and auto_now fields read django.utils.timezone.now: pin it."""
    with mock.patch("django.utils.timezone.now", return_value=when):
        yield


@pytest.fixture
def model_version(db):
    return ModelVersion.objects.create(name="phantom-nano", version="0.5", path="builtin:a")


@pytest.fixture
def signed(readers, model_version, django_capture_on_commit_callbacks):
    reports = []
    for n, (draft, final, conds, score, comment, reader, backend, m_draft, m_open, m_sign) in enumerate(CASES):
        arrival = T0 + timedelta(days=n)
        user = readers[reader]
        with at(arrival):
            study = Study.objects.create(study_instance_uid=f"1.2.826.0.1.3680043.10.999.70{n}", patient_id=f"ID{n}",
                                         patient_name=PATIENT, accession_number=f"ACC{n}", body_part="LSPINE")
        with at(arrival + timedelta(minutes=m_draft)):
            job = InferenceJob.objects.create(study=study, model_version=model_version, status="succeeded")
            result = InferenceResult.objects.create(job=job, study=study, model_version=model_version,
                                                    data={"draft_text": draft, "draft_backend": backend,
                                                          "conditions": conds})
            versions.add_ai_draft(result)
        if m_open is not None:
            with at(arrival + timedelta(minutes=m_open)):
                versions.mark_opened(study, user)
        with at(arrival + timedelta(minutes=m_sign)), django_capture_on_commit_callbacks(execute=True):
            number = versions.save_version(study, user, final, 0).number if final else 0
            versions.sign(study, user, number, score, comment)
        reports.append(Report.objects.get(study=study))
    return reports


def _exports():
    return AuditEvent.objects.filter(action="export", target_type="analytics").order_by("pk")


# ---- condition outcomes -------------------------------------------------------------------------------------------

def test_outcomes_stored_at_sign_time(signed):
    rows = {(o.metrics.report_id, o.condition): o for o in ConditionOutcome.objects.select_related("metrics")}
    assert len(rows) == 4 * N_CONDITIONS
    r = [report.pk for report in signed]
    assert (rows[r[1], "fracture"].ai_present, rows[r[1], "fracture"].draft_label,
            rows[r[1], "fracture"].signed_label) == (True, 1, 0)
    assert (rows[r[2], "canal"].ai_present, rows[r[2], "canal"].signed_label) == (True, -1)
    assert (rows[r[3], "herniation"].ai_present, rows[r[3], "herniation"].draft_label) == (None, -1)
    assert EditMetrics.objects.get(report=signed[0]).labeler_version == "rules-1.0"


def test_condition_accuracy_by_hand(signed, client_for):
    body = client_for("admin").get("/api/analytics/conditions").json()
    assert body["reports"] == 4
    by = {c["condition"]: c for c in body["conditions"]}
    assert list(by) == list(CONDITION_KEYS)
    h = by["herniation"]
    assert (h["signed_present"], h["signed_absent"], h["signed_uncertain"]) == (4, 0, 0)
    # AI: TP cases 0 and 1, FN case 2, case 3 has no herniation prediction.
    assert {k: h["ai"][k] for k in ("tp", "fp", "fn", "tn", "missing")} == {"tp": 2, "fp": 0, "fn": 1, "tn": 0,
                                                                             "missing": 1}
    assert h["ai"]["sensitivity"]["rate"] == 2 / 3 and h["ai"]["sensitivity"]["n"] == 3
    assert h["ai"]["specificity"] == {"n": 0, "k": 0, "rate": None, "ci_low": None, "ci_high": None}
    # Draft: the same, except case 3's hedge ("possible") is uncertain, not missing; case 2 omitted it.
    d = h["draft"]
    assert (d["tp"], d["fn"], d["uncertain"], d["omitted_findings"], d["false_positive_findings"]) == (2, 1, 1, 1, 0)
    assert d["sensitivity"]["rate"] == 2 / 3
    assert d["sensitivity"]["ci_low"] == pytest.approx(0.2077, abs=5e-5)  # Wilson 2/3
    f = by["fracture"]  # the draft's L1 fracture in case 1 was deleted: a false-positive finding
    assert (f["ai"]["fp"], f["ai"]["tn"], f["ai"]["specificity"]["rate"]) == (1, 3, 3 / 4)
    assert (f["draft"]["fp"], f["draft"]["tn"], f["draft"]["false_positive_findings"]) == (1, 3, 1)
    c = by["canal"]  # case 2's "possible canal stenosis" is uncertain truth: excluded on both sides
    assert (c["signed_uncertain"], c["ai"]["fp"], c["ai"]["tn"], c["ai"]["missing"]) == (1, 0, 2, 1)
    assert (c["draft"]["tn"], c["draft"]["fp"]) == (3, 0)
    total = body["all"]
    assert total["n"] == 4 * N_CONDITIONS and total["signed_present"] == 4 and total["signed_uncertain"] == 1
    known = 4 * N_CONDITIONS - 1
    assert {k: total["ai"][k] for k in ("tp", "fp", "fn", "missing")} == {"tp": 2, "fp": 1, "fn": 1,
                                                                          "missing": N_CONDITIONS - 1}
    assert total["ai"]["tn"] == known - 2 - 1 - 1 - (N_CONDITIONS - 1)
    assert (total["draft"]["tp"], total["draft"]["fp"], total["draft"]["fn"], total["draft"]["uncertain"],
            total["draft"]["tn"]) == (2, 1, 1, 1, known - 5)


def test_condition_accuracy_is_filtered(signed, client_for, readers):
    client = client_for("admin")
    h = {c["condition"]: c for c in client.get(f"/api/analytics/conditions?reader={readers['r1'].pk}"
                                               ).json()["conditions"]}["herniation"]
    assert (h["ai"]["tp"], h["ai"]["fn"], h["draft"]["omitted_findings"]) == (2, 0, 0)
    body = client.get("/api/analytics/conditions?draft_backend=%3D1%2B1").json()
    assert body["reports"] == 1 and body["all"]["draft"]["uncertain"] == 1
    assert client.get("/api/analytics/conditions?date_from=2030-01-01").json()["reports"] == 0


def test_backfill_rebuilds_outcomes_and_times(signed):
    ConditionOutcome.objects.all().delete()
    EditMetrics.objects.update(draft_ready_at=None)
    call_command("compute_edit_metrics", stdout=io.StringIO())
    assert ConditionOutcome.objects.count() == 4 * N_CONDITIONS
    m = EditMetrics.objects.get(report=signed[2])
    assert m.draft_ready_at == T0 + timedelta(days=2, minutes=20)


# ---- turnaround ---------------------------------------------------------------------------------------------------

def test_turnaround_by_hand(signed, client_for):
    body = client_for("admin").get("/api/analytics/turnaround").json()
    (group,) = body["groups"]
    assert body["unit"] == "seconds" and group["reports"] == 4
    iv = group["intervals"]
    # arrival -> draft: 5, 10, 20, 40 min: median (10 + 20) / 2, p90 = 4th of 4 (nearest rank).
    assert (iv["arrival_to_draft"]["n"], iv["arrival_to_draft"]["median_s"], iv["arrival_to_draft"]["p90_s"]) == (
        4, 15 * 60, 40 * 60)
    assert iv["arrival_to_draft"]["mean_s"] == 18.75 * 60
    # first open: 60, 120, 30 min (case 3 was never opened).
    assert (iv["arrival_to_first_open"]["n"], iv["arrival_to_first_open"]["median_s"],
            iv["arrival_to_first_open"]["p90_s"]) == (3, 60 * 60, 120 * 60)
    # signed: 70, 125, 60, 50 min.
    assert (iv["arrival_to_signed"]["median_s"], iv["arrival_to_signed"]["p90_s"]) == (65 * 60, 125 * 60)
    # first open -> signed: 10, 5, 30 min.
    assert (iv["first_open_to_signed"]["n"], iv["first_open_to_signed"]["median_s"],
            iv["first_open_to_signed"]["p90_s"]) == (3, 10 * 60, 30 * 60)


def test_turnaround_group_by_reader(signed, client_for, readers):
    groups = {g["group"]: g for g in client_for("admin").get("/api/analytics/turnaround?group_by=reader"
                                                            ).json()["groups"]}
    r1, r2 = groups[str(readers["r1"].pk)], groups[str(readers["r2"].pk)]
    assert r1["intervals"]["arrival_to_signed"]["median_s"] == (70 + 125) / 2 * 60
    assert r1["intervals"]["arrival_to_signed"]["p90_s"] == 125 * 60
    assert (r2["intervals"]["first_open_to_signed"]["n"], r2["intervals"]["first_open_to_signed"]["median_s"]) == (
        1, 30 * 60)


# ---- exports ------------------------------------------------------------------------------------------------------

def _csv(response):
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content).decode()
    return body, list(csv.reader(io.StringIO(body)))


def test_csv_conditions_and_turnaround_tables(signed, client_for):
    client = client_for("admin")
    _, rows = _csv(client.get("/api/analytics/export.csv?table=conditions"))
    header, *data = rows
    assert len(data) == N_CONDITIONS + 1 and data[-1][0] == "all"
    h = dict(zip(header, next(r for r in data if r[0] == "herniation")))
    assert (h["ai_tp"], h["ai_fn"], h["ai_missing"], h["omitted_findings"], h["draft_uncertain"]) == (
        "2", "1", "1", "1", "1")
    assert float(h["draft_sensitivity"]) == 2 / 3 and h["ai_specificity"] == ""
    _, rows = _csv(client.get("/api/analytics/export.csv?table=turnaround"))
    t = dict(zip(*rows))
    assert (t["group"], t["reports"], t["arrival_to_signed_median_s"], t["first_open_to_signed_p90_s"]) == (
        "all", "4", str(65 * 60.0), str(30 * 60.0))


def test_csv_reports_has_times_and_error_counts_and_defuses_formulas(signed, client_for):
    body, rows = _csv(client_for("admin").get("/api/analytics/export.csv?table=reports"))
    header, *data = rows
    by = {r[1]: dict(zip(header, r)) for r in data}
    second, last = by[str(signed[1].pk)], by[str(signed[3].pk)]
    assert (second["draft_false_positive_findings"], second["ai_false_positives"]) == ("1", "1")
    assert by[str(signed[2].pk)]["draft_omitted_findings"] == "1"
    assert second["arrival_to_draft_s"] == str(10 * 60.0) and last["first_opened_at"] == ""
    assert last["arrival_to_first_open_s"] == "" and last["arrival_to_signed_s"] == str(50 * 60.0)
    assert last["draft_backend"] == "'=1+1"  # a spreadsheet shows it, never runs it
    assert PATIENT not in body and "ACC1" not in body and "patient_name" not in header


def test_xlsx_has_one_sheet_per_table_and_is_audited(signed, client_for, users):
    r = client_for("admin").get("/api/analytics/export.xlsx?group_by=reader")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in r["Content-Disposition"] and ".xlsx" in r["Content-Disposition"]
    wb = load_workbook(io.BytesIO(b"".join(r.streaming_content)), read_only=True)
    assert wb.sheetnames == ["radpeer", "edits", "reports", "conditions", "turnaround", "edit_burden",
                             "significant_edits", "draft_agreement", "draft_agreement_levels", "annotator_agreement",
                             "annotator_agreement_levels", "qa_reviews"]
    reports = list(wb["reports"].iter_rows(values_only=True))
    assert len(reports) == 1 + 4 and reports[0][:2] == ("study_id", "report_id")
    assert {row[1] for row in reports[1:]} == {s.pk for s in signed}
    backend = reports[0].index("draft_backend")
    assert "'=1+1" in {row[backend] for row in reports[1:]}
    assert len(list(wb["conditions"].iter_rows())) == 1 + N_CONDITIONS + 1
    assert len(list(wb["radpeer"].iter_rows())) == 1 + 2  # two readers
    assert len(list(wb["edits"].iter_rows())) == 1 + 6
    assert len(list(wb["qa_reviews"].iter_rows())) == 1  # the header: nothing peer-reviewed yet
    assert all(PATIENT not in str(v) for ws in wb for row in ws.iter_rows(values_only=True) for v in row)
    audit = _exports().get()
    assert (audit.user, audit.target_id) == (users["admin"], "all")
    # significant edits (issue 23): case 1 fracture present -> absent; case 2 herniation absent -> present and
    # canal absent -> uncertain; case 3 herniation uncertain -> present: 4 rows.
    # draft agreement (issue 23): one row per condition; per condition x level: the levels the reports name
    # (L4-L5: cases 0, 1, 3; L1: case 1's draft; L5-S1: case 2 signed) for every condition, plus "study" for
    # every condition (some text names no level for it: e.g. case 2's draft "No disc herniation"): 3N + N rows.
    # Annotator agreement: 4 blocks (Cohen any / neither saw / both saw, Fleiss) x N conditions, figures null
    # without annotations.
    levels = 3 * N_CONDITIONS + N_CONDITIONS
    assert audit.detail == {"params": {"group_by": "reader"},
                            "row_count": 2 + 6 + 4 + N_CONDITIONS + 1 + 2 + 2 + 4 + N_CONDITIONS + levels
                            + 4 * N_CONDITIONS,
                            "identified": False, "format": "xlsx",
                            "tables": {"radpeer": 2, "edits": 6, "reports": 4, "conditions": N_CONDITIONS + 1,
                                       "turnaround": 2, "edit_burden": 2, "significant_edits": 4,
                                       "draft_agreement": N_CONDITIONS, "draft_agreement_levels": levels,
                                       "annotator_agreement": 4 * N_CONDITIONS,
                                       "annotator_agreement_levels": 0,  # no annotations here
                                       "qa_reviews": 0}}  # one 3b case selected, not reviewed


def test_xlsx_single_table(signed, client_for):
    r = client_for("admin").get("/api/analytics/export.xlsx?table=turnaround")
    wb = load_workbook(io.BytesIO(b"".join(r.streaming_content)), read_only=True)
    assert wb.sheetnames == ["turnaround"]
    header, row = list(wb["turnaround"].iter_rows(values_only=True))
    assert dict(zip(header, row))["arrival_to_draft_p90_s"] == 40 * 60


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_identified_export_needs_its_own_permission(signed, client_for, users, fmt):
    admin = client_for("admin")
    url = f"/api/analytics/export.{fmt}?table=reports&identified=1"
    r = admin.get(url)
    assert r.status_code == 403 and "export_identified" in r.json()["detail"]
    assert not _exports().exists()
    users["admin"].user_permissions.add(Permission.objects.get(codename="export_identified",
                                                               content_type__app_label="analytics"))
    r = admin.get(url)
    assert r.status_code == 200
    raw = b"".join(r.streaming_content)
    if fmt == "csv":
        text = raw.decode()
    else:
        wb = load_workbook(io.BytesIO(raw), read_only=True)
        text = "\n".join(",".join(str(v) for v in row) for row in wb["reports"].iter_rows(values_only=True))
    assert PATIENT in text and "ACC2" in text and "1.2.826.0.1.3680043.10.999.703" in text
    assert "patient_name" in text
    assert _exports().get().detail["identified"] is True
    default = admin.get(f"/api/analytics/export.{fmt}?table=reports")
    assert PATIENT.encode() not in b"".join(default.streaming_content)


def test_identified_is_granted_to_no_role(users):
    for role in ("admin", "radiologist", "annotator"):
        assert not User.objects.get(pk=users[role].pk).has_perm("analytics.export_identified")


@pytest.mark.parametrize("query,field", [("table=patients", "table"), ("table=reports&identified=maybe", "identified"),
                                         ("table=reports&reader=%C2%B2", "reader"),
                                         ("table=reports&draft_backend=a%00b", "draft_backend"),
                                         ("table=reports&date_from=2026-02-01&date_to=2026-01-01", "date_to"),
                                         ("table=reports&reader=99999999999999999999", "reader")])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_bad_export_params_are_400_and_not_audited(client_for, query, field, fmt):
    r = client_for("admin").get(f"/api/analytics/export.{fmt}?{query}")
    assert r.status_code == 400 and r.json()["field"] == field
    assert not _exports().exists()


# ---- charts -------------------------------------------------------------------------------------------------------

def _png(response) -> Image.Image:
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(response.content))
    image.verify()
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG" and image.size == (800, 420)
    return image


@pytest.mark.parametrize("chart", ["radpeer", "edits", "conditions", "errors", "turnaround"])
def test_charts_are_valid_pngs(signed, client_for, chart):
    r = client_for("admin").get(f"/api/analytics/chart.png?chart={chart}")
    image = _png(r)
    assert r["X-Analytics-Empty"] == "0"
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 10  # something was drawn


@pytest.mark.parametrize("chart", ["radpeer", "edits", "conditions", "errors", "turnaround"])
def test_empty_selection_gives_a_no_data_png(signed, client_for, chart):
    r = client_for("admin").get(f"/api/analytics/chart.png?chart={chart}&date_from=2031-01-01")
    _png(r)
    assert r["X-Analytics-Empty"] == "1"


def test_chart_bad_name_is_400(client_for):
    r = client_for("admin").get("/api/analytics/chart.png?chart=pie")
    assert r.status_code == 400 and r.json()["field"] == "chart"


# ---- permissions --------------------------------------------------------------------------------------------------

NEW_ENDPOINTS = ["conditions", "turnaround", "export.xlsx", "export.xlsx?table=reports",
                 "export.csv?table=conditions", "chart.png?chart=radpeer"]


@pytest.mark.parametrize("role", [None, "radiologist", "annotator", "nobody"])
@pytest.mark.parametrize("path", NEW_ENDPOINTS)
def test_non_admins_are_refused(signed, client_for, role, path):
    assert client_for(role).get(f"/api/analytics/{path}").status_code in (401, 403)
    assert not _exports().exists()


# ---- dashboard page -----------------------------------------------------------------------------------------------

def test_dashboard_renders_for_admin(signed, client_for):
    r = client_for("admin").get("/analytics/?group_by=reader")
    assert r.status_code == 200
    html = r.content.decode()
    for anchor in ('id="radpeer"', 'id="edits"', 'id="conditions"', 'id="turnaround"', 'id="exports"'):
        assert anchor in html
    for chart in ("radpeer", "edits", "conditions", "errors", "turnaround"):
        assert f"/api/analytics/chart.png?chart={chart}&amp;group_by=reader" in html
    assert "/api/analytics/export.xlsx?table=all&amp;group_by=reader" in html
    assert "4 signed reports" in html and "Disc herniation" in html
    assert "identified .xlsx" not in html and 'id="demo-note"' not in html and PATIENT not in html
    assert "1 h 37 min / 2 h 05 min (2)" in html  # reader 1, arrival -> signed: median 97.5 min, p90 125 min

def test_dashboard_bad_filter_is_400_page(client_for, users):
    r = client_for("admin").get("/analytics/?date_from=yesterday")
    assert r.status_code == 400 and b'id="error"' in r.content


def test_dashboard_refused_for_others(client_for, users):
    assert client_for("radiologist").get("/analytics/").status_code == 403
    assert client_for("annotator").get("/analytics/").status_code == 403
    anonymous = client_for(None).get("/analytics/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login")


# ---- demo seeder --------------------------------------------------------------------------------------------------

def test_seed_demo_signs_through_the_services_and_is_labelled(client_for, users, django_capture_on_commit_callbacks):
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):  # the sign-off receivers, as after a real commit
        call_command("seed_analytics_demo", count=8, days=5, stdout=out)
    assert "signed 8 demo report" in out.getvalue()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_analytics_demo", count=8, days=5, stdout=io.StringIO())  # idempotent
    assert Report.objects.filter(status=Report.SIGNED, study__source="demo").count() == 8
    assert EditMetrics.objects.count() == 8 and ConditionOutcome.objects.count() == 8 * N_CONDITIONS
    for m in EditMetrics.objects.all():
        assert m.study_received_at < m.draft_ready_at < m.first_opened_at < m.signed_at
    html = client_for("admin").get("/analytics/").content.decode()
    assert 'id="demo-note"' in html and "8 of these reports" in html
