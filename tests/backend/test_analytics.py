"""Admin analytics (issue 8): edit metrics on sign, RADPEER rates with Wilson CIs, edits per score, CSV export.

Reports are built through the reports services (AI draft from an inference result, radiologist version,
sign-off), and every figure below is worked out by hand on tiny texts.
"""

import csv
import io
from datetime import datetime, timezone

import pytest
from django.core.management import call_command

from backend.analytics import services
from backend.analytics.models import EditMetrics
from backend.audit.models import AuditEvent
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.reports import versions
from backend.reports.models import Report
from backend.studies.models import Study

pytestmark = [pytest.mark.django_db]

PATIENT = "DOE^JANE"
# (draft, final, score, comment, reader key, model key, backend)
A = ("FINDINGS: disc bulge.\nIMPRESSION: bulge.", None, "1", "", "r1", "mv1", "template")
B = ("FINDINGS: mild stenosis\nIMPRESSION: stenosis", "FINDINGS: severe stenosis\nIMPRESSION: stenosis", "2a", "",
     "r1", "mv1", "template")
C = ("FINDINGS: no", "FINDINGS: yes\nIMPRESSION: yes", "3b", "missed herniation", "r1", "mv2", "template")
D = ("IMPRESSION: a", "IMPRESSION: b", "2b", "wrong level", "r2", "mv2", "llm")


@pytest.fixture
def models(db):
    return {"mv1": ModelVersion.objects.create(name="phantom-nano", version="0.3", path="builtin:a", state="active"),
            "mv2": ModelVersion.objects.create(name="phantom-nano", version="0.4", path="builtin:b")}


@pytest.fixture
def sign_case(readers, models, django_capture_on_commit_callbacks):
    """sign_case(case, n) -> the signed Report; the receiver runs on commit as in production."""

    def make(case, n, body_part="LSPINE"):
        draft, final, score, comment, reader, model, backend = case
        study = Study.objects.create(study_instance_uid=f"1.2.826.0.1.3680043.10.999.80{n}", patient_id=f"P{n}",
                                     patient_name=PATIENT, body_part=body_part, study_description="MRI SPINE")
        job = InferenceJob.objects.create(study=study, model_version=models[model], status="succeeded")
        result = InferenceResult.objects.create(job=job, study=study, model_version=models[model],
                                                data={"draft_text": draft, "draft_backend": backend})
        user = readers[reader]
        with django_capture_on_commit_callbacks(execute=True):
            versions.add_ai_draft(result)
            versions.mark_opened(study, user)
            number = 0
            if final is not None:
                number = versions.save_version(study, user, final, 0).number
            versions.sign(study, user, number, score, comment)
        return Report.objects.get(study=study)

    return make


@pytest.fixture
def four(sign_case):
    return [sign_case(case, n) for n, case in enumerate((A, B, C, D))]


# ---- pure functions ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,n,low,high", [(1, 100, 0.0018, 0.0545), (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634),
                                          (2, 4, 0.1500, 0.8500), (3, 4, 0.3006, 0.9544), (10, 10, 0.7225, 1.0)])
def test_wilson_matches_published_values(k, n, low, high):
    got = services.wilson(k, n)
    assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_wilson_without_cases():
    assert services.wilson(0, 0) == (None, None)


def test_distances_by_hand():
    assert services.char_distance("mild", "mild") == 0.0
    assert services.char_distance("mild stenosis", "severe stenosis") == 6 / 15  # mild->severe: 4 subs + 2 ins
    assert services.char_distance("cat", "cut") == 1 / 3
    assert services.word_distance("mild stenosis", "severe stenosis") == 1 / 2
    assert services.word_distance("a b c d", "a c d e") == 2 / 4  # delete b, insert e
    assert services.word_distance("", "") == 0.0


def test_sections_split_case_insensitively_and_missing_is_null():
    text = "Findings:\nL4-L5: bulge.\n\nimpression: bulge"
    assert services.sections(text) == {"findings": "L4-L5: bulge.", "impression": "bulge"}
    assert services.sections("no headings at all") == {}
    m = services.text_metrics("FINDINGS: no", "FINDINGS: yes\nIMPRESSION: yes")
    assert m["findings_char_distance"] == 1.0 and m["findings_word_distance"] == 1.0
    assert m["impression_char_distance"] is None and m["impression_word_distance"] is None


@pytest.mark.parametrize("body_part,description,region", [
    ("LSPINE", "", "lumbar"), ("", "MRI C-SPINE", "cervical"), ("TSPINE", "", "thoracic"),
    ("", "WHOLE SPINE", "whole spine"), ("KNEE", "", "knee"), ("", "", "")])
def test_region(body_part, description, region):
    assert services.region_of(body_part, description) == region


# ---- metrics on sign --------------------------------------------------------------------------------------------

def test_signing_stores_edit_metrics_by_hand(four, readers, models):
    a, b, c, d = (EditMetrics.objects.get(report=r) for r in four)
    # A: signed the draft unchanged.
    assert (a.char_distance, a.word_distance, a.findings_char_distance, a.impression_word_distance) == (0, 0, 0, 0)
    assert (a.draft_number, a.signed_number, a.radpeer_score) == (0, 0, "1")
    # B: "mild" -> "severe" (6 edits) in texts of 44 and 46 characters; 1 of 5 words.
    assert (b.draft_chars, b.final_chars) == (44, 46)
    assert b.char_distance == 6 / 46 and b.word_distance == 1 / 5
    assert b.findings_char_distance == 6 / 15 and b.findings_word_distance == 1 / 2
    assert b.impression_char_distance == 0 and b.impression_word_distance == 0
    assert (b.draft_number, b.signed_number) == (0, 1)
    # C: "no" -> "yes\nIMPRESSION: yes" (19 chars, no common letters) of 29; words: 1 sub + 2 ins of 4.
    assert c.char_distance == 19 / 29 and c.word_distance == 3 / 4
    assert c.findings_char_distance == 1.0 and c.impression_char_distance is None
    # D: one letter of 13; one word of 2; no findings section on either side.
    assert d.char_distance == 1 / 13 and d.word_distance == 1 / 2
    assert d.findings_char_distance is None and d.impression_char_distance == 1.0
    assert (d.reader, d.model_version, d.draft_backend, d.region) == (readers["r2"], models["mv2"], "llm", "lumbar")
    assert d.signed_at == four[3].signed_at


def test_signing_through_the_api_runs_the_receiver(sign_case, client_for, models, users,
                                                   django_capture_on_commit_callbacks):
    study = Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.999.899", body_part="CSPINE")
    job = InferenceJob.objects.create(study=study, model_version=models["mv1"], status="succeeded")
    result = InferenceResult.objects.create(job=job, study=study, model_version=models["mv1"],
                                            data={"draft_text": "IMPRESSION: cat", "draft_backend": "template"})
    versions.add_ai_draft(result)
    client = client_for("radiologist")
    base = f"/api/studies/{study.study_instance_uid}/report"
    assert client.post(base + "/versions", {"text": "IMPRESSION: cut", "base_number": 0},
                       format="json").status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(base + "/sign", {"number": 1, "radpeer_score": "2a"}, format="json")
    assert r.status_code == 200, r.content
    m = EditMetrics.objects.get(report__study=study)
    assert m.char_distance == 1 / 15 and m.impression_char_distance == 1 / 3 and m.region == "cervical"
    assert m.reader == users["radiologist"] and m.model_version == models["mv1"]


def test_backfill_command_is_idempotent_and_skips_reports_without_draft(four, readers,
                                                                        django_capture_on_commit_callbacks):
    no_draft = Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.999.898")
    with django_capture_on_commit_callbacks(execute=True):
        versions.save_version(no_draft, readers["r1"], "FINDINGS: typed by hand", None)
        versions.sign(no_draft, readers["r1"], 1, None, "")
    EditMetrics.objects.filter(report=four[1]).delete()
    before = {m.report_id: m.char_distance for m in EditMetrics.objects.all()}
    out = io.StringIO()
    call_command("compute_edit_metrics", stdout=out)
    assert "stored for 4" in out.getvalue() and "1 without an AI draft" in out.getvalue()
    call_command("compute_edit_metrics", stdout=io.StringIO())
    assert EditMetrics.objects.count() == 4
    after = {m.report_id: m.char_distance for m in EditMetrics.objects.all()}
    assert after == {**before, four[1].pk: 6 / 46}
    assert not EditMetrics.objects.filter(report__study=no_draft).exists()


# ---- API --------------------------------------------------------------------------------------------------------

def test_radpeer_overall(four, client_for):
    r = client_for("admin").get("/api/analytics/radpeer")
    assert r.status_code == 200
    (group,) = r.json()["groups"]
    assert group["group"] == "all" and group["n"] == 4
    assert group["counts"] == {"1": 1, "2a": 1, "2b": 1, "3a": 0, "3b": 1}
    disc, sig = group["discrepancy"], group["significant"]
    assert (disc["k"], disc["rate"]) == (3, 0.75) and (sig["k"], sig["rate"]) == (2, 0.5)
    assert disc["ci_low"] == pytest.approx(0.3006, abs=5e-5) and disc["ci_high"] == pytest.approx(0.9544, abs=5e-5)
    assert sig["ci_low"] == pytest.approx(0.1500, abs=5e-5) and sig["ci_high"] == pytest.approx(0.8500, abs=5e-5)
    assert group["low_count"] is True


def test_radpeer_group_by_reader_and_model_and_backend(four, client_for, readers, models):
    client = client_for("admin")
    groups = client.get("/api/analytics/radpeer?group_by=reader").json()["groups"]
    by = {g["group"]: g for g in groups}
    r1, r2 = by[str(readers["r1"].pk)], by[str(readers["r2"].pk)]
    assert r1["counts"] == {"1": 1, "2a": 1, "2b": 0, "3a": 0, "3b": 1} and r1["n"] == 3
    assert (r1["discrepancy"]["rate"], r1["significant"]["rate"]) == (2 / 3, 1 / 3)
    assert r2["n"] == 1 and r2["significant"]["rate"] == 1.0 and r2["discrepancy"]["k"] == 1
    assert r2["label"] == f"reader {readers['r2'].pk}"
    by = {g["label"]: g for g in client.get("/api/analytics/radpeer?group_by=model_version").json()["groups"]}
    assert by["phantom-nano:0.3"]["n"] == 2 and by["phantom-nano:0.3"]["significant"]["k"] == 0
    assert by["phantom-nano:0.3"]["significant"]["ci_low"] == 0.0
    assert by["phantom-nano:0.4"]["counts"]["2b"] == 1 and by["phantom-nano:0.4"]["significant"]["rate"] == 1.0
    by = {g["group"]: g["n"] for g in client.get("/api/analytics/radpeer?group_by=draft_backend").json()["groups"]}
    assert by == {"template": 3, "llm": 1}


def test_radpeer_filters_and_month(four, client_for, readers, models):
    Report.objects.filter(pk=four[3].pk).update(signed_at=datetime(2026, 1, 15, 12, tzinfo=timezone.utc))
    call_command("compute_edit_metrics", stdout=io.StringIO())
    client = client_for("admin")
    months = {g["group"]: g["n"] for g in client.get("/api/analytics/radpeer?group_by=month").json()["groups"]}
    this_month = four[0].signed_at.strftime("%Y-%m")
    assert months == ({"2026-01": 1, this_month: 3} if this_month != "2026-01" else {"2026-01": 4})
    jan = client.get("/api/analytics/radpeer?date_from=2026-01-01&date_to=2026-01-31").json()["groups"]
    assert [g["counts"]["2b"] for g in jan] == [1] and jan[0]["n"] == 1
    (only,) = client.get(f"/api/analytics/radpeer?reader={readers['r1'].pk}&model_version={models['mv2'].pk}"
                         ).json()["groups"]
    assert only["n"] == 1 and only["counts"]["3b"] == 1
    assert client.get("/api/analytics/radpeer?reader=99999").json()["groups"] == []


@pytest.mark.parametrize("query,field", [("group_by=patient", "group_by"), ("date_from=yesterday", "date_from"),
                                         ("reader=bob", "reader")])
def test_bad_params_are_400(client_for, query, field):
    r = client_for("admin").get(f"/api/analytics/radpeer?{query}")
    assert r.status_code == 400 and r.json()["field"] == field


def test_edits_per_score(four, client_for):
    rows = {r["radpeer_score"]: r for r in client_for("admin").get("/api/analytics/edits").json()["scores"]}
    assert rows["1"] == {"radpeer_score": "1", "n": 1, "char_mean": 0.0, "char_median": 0.0, "word_mean": 0.0,
                         "word_median": 0.0}
    assert rows["2a"]["char_mean"] == 6 / 46 and rows["2a"]["word_median"] == 1 / 5
    assert rows["2b"]["char_mean"] == 1 / 13 and rows["2b"]["word_mean"] == 1 / 2
    assert rows["3b"]["char_median"] == 19 / 29 and rows["3b"]["word_mean"] == 3 / 4
    assert rows["3a"] == {"radpeer_score": "3a", "n": 0, "char_mean": None, "char_median": None, "word_mean": None,
                          "word_median": None}
    everything = rows["all"]
    assert everything["n"] == 4
    assert everything["char_mean"] == pytest.approx((0 + 6 / 46 + 19 / 29 + 1 / 13) / 4)
    assert everything["char_median"] == pytest.approx((1 / 13 + 6 / 46) / 2)  # sorted: 0, 1/13, 6/46, 19/29
    assert everything["word_mean"] == pytest.approx((0 + 1 / 5 + 3 / 4 + 1 / 2) / 4)
    assert everything["word_median"] == pytest.approx((1 / 5 + 1 / 2) / 2)
    # The preprint's relation holds on these cases: concur has the fewest edits, 3b the most.
    assert rows["1"]["char_mean"] < rows["2a"]["char_mean"] < rows["3b"]["char_mean"]


@pytest.mark.parametrize("role", ["radiologist", "annotator", "nobody"])
@pytest.mark.parametrize("path", ["radpeer", "edits", "export.csv?table=reports"])
def test_non_admins_are_refused(four, client_for, role, path):
    assert client_for(role).get(f"/api/analytics/{path}").status_code == 403
    assert not _exports().exists()


# ---- exports ----------------------------------------------------------------------------------------------------

def _exports():
    return AuditEvent.objects.filter(action="export", target_type="analytics").order_by("pk")


def _csv(response):
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return body, list(csv.reader(io.StringIO(body)))


def test_export_reports_is_anonymous_csv_and_audited(four, client_for, users, readers, models):
    body, rows = _csv(client_for("admin").get("/api/analytics/export.csv?table=reports"))
    header, *data = rows
    assert header[:5] == ["study_id", "report_id", "reader_id", "signed_at", "radpeer_score"]
    assert len(data) == 4
    assert [r[0] for r in data] == [str(r.study_id) for r in four]
    assert [r[4] for r in data] == ["1", "2a", "3b", "2b"]
    assert [r[2] for r in data] == [str(readers[k].pk) for k in ("r1", "r1", "r1", "r2")]
    c = dict(zip(header, data[2]))
    assert c["model_version"] == "phantom-nano:0.4" and c["draft_backend"] == "template" and c["region"] == "lumbar"
    assert float(c["char_distance"]) == 19 / 29 and c["impression_char_distance"] == ""
    for secret in (PATIENT, "DOE", "JANE", "1.2.826.0.1.3680043", "P1", "missed herniation", "radiologist"):
        assert secret not in body
    audit = _exports().get()
    assert (audit.user, audit.username, audit.target_id) == (users["admin"], "admin", "reports")
    assert (audit.detail["row_count"], audit.detail["params"], audit.detail["identified"]) == (4, {}, False)


def test_export_radpeer_and_edits(four, client_for, readers):
    client = client_for("admin")
    _, rows = _csv(client.get("/api/analytics/export.csv?table=radpeer&group_by=reader"))
    header, *data = rows
    assert header[:8] == ["group", "label", "n", "count_1", "count_2a", "count_2b", "count_3a", "count_3b"]
    by = {r[0]: dict(zip(header, r)) for r in data}
    r2 = by[str(readers["r2"].pk)]
    assert (r2["n"], r2["count_2b"], r2["significant_rate"], r2["low_count"]) == ("1", "1", "1.0", "1")
    assert float(r2["significant_ci_low"]) == pytest.approx(0.2065, abs=5e-5)  # Wilson 1/1
    _, rows = _csv(client.get("/api/analytics/export.csv?table=edits"))
    assert rows[0] == ["radpeer_score", "n", "char_mean", "char_median", "word_mean", "word_median"]
    assert [r[:2] for r in rows[1:]] == [["1", "1"], ["2a", "1"], ["2b", "1"], ["3a", "0"], ["3b", "1"], ["all", "4"]]
    assert rows[4][2:] == ["", "", "", ""]
    audits = [(a.target_id, a.detail["row_count"], a.detail["params"]) for a in _exports()]
    assert audits == [("radpeer", 2, {"group_by": "reader"}), ("edits", 6, {})]


def test_export_needs_a_known_table_and_audits_nothing_then(client_for):
    r = client_for("admin").get("/api/analytics/export.csv?table=patients")
    assert r.status_code == 400 and r.json()["field"] == "table"
    assert not _exports().exists()
