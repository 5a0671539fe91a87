"""Report versions, sign-off and addenda through the API: immutability, stale saves, RADPEER rules, roles."""

import pytest
from django.db import DatabaseError, transaction

from backend.inference import jobs
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.inference.signals import inference_succeeded
from backend.reports.models import ImmutableVersion, Report, ReportVersion
from backend.studies.models import Study

pytestmark = [pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.61"
DRAFT = "FINDINGS:\nL4-L5: disc herniation with mild canal stenosis.\n\nIMPRESSION:\n1. L4-L5 disc herniation."


def url(suffix=""):
    return f"/api/studies/{UID}/report{suffix}"


@pytest.fixture
def model_version(db):
    return ModelVersion.objects.create(name="phantom-nano", version="0.3", path="builtin:test", state="active")


@pytest.fixture
def make_result(model_version):
    """make_result(draft_text) -> an InferenceResult of a finished job, as the worker stores it."""
    study = Study.objects.create(study_instance_uid=UID, patient_id="P1")

    def make(text=DRAFT, **extra):
        job = InferenceJob.objects.create(study=study, model_version=model_version, status="succeeded",
                                          trigger="manual")
        data = {"draft_text": text, "draft_backend": "template", "model_name": "phantom-nano",
                "model_version": "0.3", "synthetic_training": True,
                "conditions": [{"condition": "herniation", "probability": 0.91, "present": True, "level": "L4-L5"}],
                "key_slices": [], "boxes": [], "similar_cases": [], "embedding": [0.1] * 8, **extra}
        return InferenceResult.objects.create(job=job, study=study, model_version=model_version, data=data)

    return make


@pytest.fixture
def exports(monkeypatch):
    """SR exports the receiver queued (not sent to the broker in these tests)."""
    sent = []
    monkeypatch.setattr("backend.inference.receivers.dispatch_sr_export", sent.append)
    return sent


@pytest.fixture
def drafted(make_result, exports, django_capture_on_commit_callbacks):
    result = make_result()
    with django_capture_on_commit_callbacks(execute=True):
        inference_succeeded.send(sender=InferenceResult, result=result)
    return result


def test_job_success_creates_version_zero_from_the_draft(make_result, exports, django_capture_on_commit_callbacks,
                                                         model_version):
    result = make_result()
    job = result.job
    job.status = "running"
    job.save()
    result.delete()  # let the state machine store it, as the worker does
    with django_capture_on_commit_callbacks(execute=True):
        stored = jobs.succeed(job.pk, {"draft_text": DRAFT, "draft_backend": "llm"}, {})
    report = Report.objects.get(study__study_instance_uid=UID)
    v0 = report.versions.get()
    assert (v0.number, v0.source, v0.author, v0.text) == (0, "ai", None, DRAFT)
    assert v0.model_version == model_version and v0.draft_backend == "llm" and v0.inference_result == stored
    assert report.status == "draft_ready" and report.current_number == 0
    assert exports == [stored.pk]
    # A redelivered signal adds nothing.
    with django_capture_on_commit_callbacks(execute=True):
        inference_succeeded.send(sender=InferenceResult, result=stored)
    assert report.versions.count() == 1


def test_rerun_adds_ai_version_only_until_someone_edits(drafted, make_result, client_for,
                                                        django_capture_on_commit_callbacks):
    second = make_result("FINDINGS: re-run draft.")
    with django_capture_on_commit_callbacks(execute=True):
        inference_succeeded.send(sender=InferenceResult, result=second)
    report = Report.objects.get()
    assert [(v.number, v.source) for v in report.versions.all()] == [(0, "ai"), (1, "ai")]
    assert report.current_number == 1
    r = client_for("radiologist").post(url("/versions"), {"text": "edited", "base_number": 1}, format="json")
    assert r.status_code == 201
    third = make_result("FINDINGS: third draft.")
    with django_capture_on_commit_callbacks(execute=True):
        inference_succeeded.send(sender=InferenceResult, result=third)
    assert report.versions.count() == 3 and Report.objects.get().current_number == 2


def test_get_report_payload_and_first_open(drafted, client_for):
    admin = client_for("admin").get(url())
    assert admin.status_code == 200
    body = admin.json()
    assert body["status"] == "draft_ready"  # an admin looking does not start the review
    assert body["current"]["number"] == 0 and body["current"]["text"] == DRAFT
    assert body["ai_draft"]["source"] == "ai" and body["ai_draft"]["author"] is None
    assert body["versions"] == [{"number": 0, "author": None, "source": "ai", "kind": "ai draft",
                                 "created_at": body["ai_draft"]["created_at"], "base_number": None}]
    assert (body["status_label"], body["state"], body["final"]) == ("Draft ready", "ready", True)
    assert body["job"]["status_label"] == "Analysis done"
    assert body["condition_names"]["herniation"] == "Disc herniation"
    assert body["score"]["kind"] == "raw" and "not a calibrated probability" in body["score"]["meaning"]
    assert body["locked"] is False and body["radpeer"] is None and body["signed_by"] is None
    assert body["model_version"]["name"] == "phantom-nano" and body["model_version"]["synthetic_training"]
    assert body["result"]["conditions"][0]["condition"] == "herniation" and "embedding" not in body["result"]
    assert body["job"]["status"] == "succeeded"
    assert body["permissions"] == {"edit": False, "sign": False, "addendum": False, "claim": False,
                                   "take_over": False, "retry_sr_export": True, "retry_job": True}
    assert Report.objects.get().first_opened_at is None

    rad = client_for("radiologist")
    body = rad.get(url()).json()  # reading changes nothing (a GET a cross-site link can trigger)
    assert body["status"] == "draft_ready" and body["reader"] is None and Report.objects.get().first_opened_at is None
    assert body["permissions"] == {"edit": True, "sign": True, "addendum": False, "claim": True, "take_over": False,
                                   "retry_sr_export": False, "retry_job": False}
    claimed = rad.post(url("/claim"), {}, format="json")
    assert claimed.status_code == 200 and claimed.json() == {"status": "in_review", "reader": "radiologist",
                                                              "took_over_from": None}
    body = rad.get(url()).json()
    assert body["status"] == "in_review" and body["reader"] == "radiologist"
    opened = Report.objects.get().first_opened_at
    assert opened is not None
    assert rad.post(url("/claim"), {}, format="json").status_code == 200  # idempotent for the reader
    assert Report.objects.get().first_opened_at == opened  # set once


def test_get_report_404_and_no_draft(client_for, db, users):
    assert client_for("radiologist").get(url()).status_code == 404
    Study.objects.create(study_instance_uid=UID)
    body = client_for("radiologist").get(url()).json()
    assert body["status"] == "no_draft" and body["current"] is None and body["result"] is None
    assert body["job"] is None


def test_missing_draft_is_rebuilt_from_the_latest_result(make_result, client_for, users):
    make_result()  # the signal never arrived (worker died right after the commit)
    body = client_for("radiologist").get(url()).json()
    assert body["ai_draft"]["number"] == 0 and body["current"]["text"] == DRAFT


def test_versions_append_and_never_change(drafted, client_for):
    c = client_for("radiologist")
    r = c.post(url("/versions"), {"text": DRAFT + "\nAddendum line.", "base_number": 0}, format="json")
    assert r.status_code == 201, r.content
    v = r.json()["version"]
    assert (v["number"], v["source"], v["author"], v["base_number"]) == (1, "radiologist", "radiologist", 0)
    r = c.post(url("/versions"), {"text": "second edit", "base_number": 1}, format="json")
    assert r.status_code == 201 and r.json()["version"]["number"] == 2
    assert ReportVersion.objects.get(number=0).text == DRAFT  # the AI draft is untouched

    v0 = ReportVersion.objects.get(number=0)
    v0.text = "tampered"
    with pytest.raises(ImmutableVersion):
        v0.save()
    with pytest.raises(ImmutableVersion):
        v0.delete()
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        ReportVersion.objects.filter(number=0).update(text="tampered")  # the database refuses too
    assert ReportVersion.objects.get(number=0).text == DRAFT


@pytest.mark.parametrize("text", ["", "   \n\t", None, 42])
def test_empty_text_is_400(drafted, client_for, text):
    r = client_for("radiologist").post(url("/versions"), {"text": text, "base_number": 0}, format="json")
    assert r.status_code == 400 and r.json()["error"] == "invalid"
    assert ReportVersion.objects.count() == 1


def test_stale_save_is_409_with_both_texts(drafted, client_for):
    c = client_for("radiologist")
    assert c.post(url("/versions"), {"text": "mine, first", "base_number": 0}, format="json").status_code == 201
    r = c.post(url("/versions"), {"text": "theirs, late", "base_number": 0}, format="json")
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "stale" and body["detail"]
    assert body["your_text"] == "theirs, late" and body["base_number"] == 0
    assert body["current"]["number"] == 1 and body["current"]["text"] == "mine, first"
    assert body["current"]["author"] == "radiologist" and body["current"]["created_at"]
    assert list(ReportVersion.objects.values_list("number", "text")) == [(0, DRAFT), (1, "mine, first")]


def test_report_without_ai_draft_can_be_written_by_hand(client_for, users):
    Study.objects.create(study_instance_uid=UID)
    c = client_for("radiologist")
    r = c.post(url("/versions"), {"text": "Manual report.", "base_number": None}, format="json")
    assert r.status_code == 201 and r.json()["version"]["number"] == 1  # 0 stays the AI draft's number
    assert c.post(url("/sign"), {"number": 1, "radpeer_score": "1"}, format="json").status_code == 400
    assert c.post(url("/sign"), {"number": 1}, format="json").status_code == 200


@pytest.mark.parametrize("score,comment,status", [
    (None, "", 400), ("", "", 400), ("4", "", 400), ("2", "", 400),
    ("2b", "", 400), ("3a", "  ", 400), ("3b", None, 400),
    ("1", "", 200), ("2a", "", 200), ("2b", "missed the L5-S1 foraminal narrowing", 200),
])
def test_sign_requires_a_valid_radpeer_score_and_comment(drafted, client_for, score, comment, status):
    r = client_for("radiologist").post(url("/sign"), {"number": 0, "radpeer_score": score,
                                                      "radpeer_comment": comment}, format="json")
    assert r.status_code == status, r.content
    report = Report.objects.get()
    assert report.locked == (status == 200)
    if status == 400:
        assert r.json()["error"] == "invalid"


def test_sign_locks_and_addenda_follow(drafted, client_for, users):
    c = client_for("radiologist")
    c.post(url("/versions"), {"text": "Final text.", "base_number": 0}, format="json")
    r = c.post(url("/sign"), {"number": 0, "radpeer_score": "1"}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "stale" and r.json()["current"]["number"] == 1
    assert c.post(url("/addenda"), {"text": "too early"}, format="json").status_code == 409

    r = c.post(url("/sign"), {"number": 1, "radpeer_score": "3b", "radpeer_comment": "missed cord compression"},
               format="json")
    assert r.status_code == 200 and r.json()["locked"] is True
    report = Report.objects.get()
    assert report.status == "signed" and report.signed_by == users["radiologist"] and report.signed_at
    assert (report.radpeer_score, report.radpeer_comment, report.signed_number) == ("3b", "missed cord compression", 1)

    r = c.post(url("/versions"), {"text": "after signing", "base_number": 1}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "locked"
    assert c.post(url("/sign"), {"number": 1, "radpeer_score": "1"}, format="json").json()["error"] == "locked"

    r = c.post(url("/addenda"), {"text": "Addendum: compared with outside films."}, format="json")
    assert r.status_code == 201
    assert (r.json()["version"]["source"], r.json()["version"]["number"]) == ("addendum", 2)
    body = c.get(url()).json()
    assert body["status"] == "signed" and body["locked"] and body["current"]["number"] == 1
    assert body["radpeer"] == {"score": "3b", "comment": "missed cord compression"}
    assert body["addenda"][0]["text"].startswith("Addendum") and len(body["versions"]) == 3
    assert [v["kind"] for v in body["versions"]] == ["ai draft", "signed", "addendum"]
    assert body["addenda"][0]["kind"] == "addendum" and body["current"]["kind"] == "signed"
    assert (body["state"], body["status_label"]) == ("signed", "Signed")
    perms = body["permissions"]
    assert (perms["edit"], perms["sign"], perms["addendum"]) == (False, False, True)
    assert (perms["claim"], perms["take_over"], perms["retry_sr_export"]) == (False, False, False)


def test_rerun_never_touches_a_signed_report(drafted, make_result, client_for, django_capture_on_commit_callbacks):
    client_for("radiologist").post(url("/sign"), {"number": 0, "radpeer_score": "1"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        inference_succeeded.send(sender=InferenceResult, result=make_result("new draft"))
    assert ReportVersion.objects.count() == 1 and Report.objects.get().status == "signed"


def test_roles(drafted, client_for):
    body = {"text": "x", "base_number": 0}
    assert client_for("annotator").get(url()).status_code == 403
    assert client_for("annotator").post(url("/versions"), body, format="json").status_code == 403
    assert client_for("admin").get(url()).status_code == 200
    assert client_for("admin").post(url("/versions"), body, format="json").status_code == 403
    assert client_for("admin").post(url("/sign"), {"number": 0, "radpeer_score": "1"},
                                    format="json").status_code == 403
    assert client_for("admin").get(url("/diff")).status_code == 200
    assert client_for(None).get(url()).status_code in (401, 403)
    assert ReportVersion.objects.count() == 1 and not Report.objects.get().locked


def test_admin_with_sign_permission_can_sign(drafted, client_for, users):
    from django.contrib.auth.models import Permission

    users["admin"].user_permissions.add(Permission.objects.get(codename="sign_report",
                                                               content_type__app_label="reports"))
    r = client_for("admin").post(url("/sign"), {"number": 0, "radpeer_score": "1"}, format="json")
    assert r.status_code == 200


def test_diff_draft_vs_current(drafted, client_for):
    c = client_for("radiologist")
    edited = DRAFT.replace("mild canal stenosis", "moderate canal stenosis") + "\n2. No fracture."
    c.post(url("/versions"), {"text": edited, "base_number": 0}, format="json")
    r = c.get(url("/diff"))
    assert r.status_code == 200
    body = r.json()
    assert (body["from"], body["to"]) == (0, 1)
    ops = body["ops"]
    assert "".join(o["text"] for o in ops if o["op"] != "delete") == edited
    assert {"op": "delete", "text": "mild "} in ops and {"op": "insert", "text": "moderate "} in ops
    assert body["words"]["inserted"] == 4 and body["words"]["deleted"] == 1
    assert c.get(url("/diff?from=1&to=0")).json()["from"] == 1
    assert c.get(url("/diff?from=0&to=9")).status_code == 404
    assert c.get(url("/diff?from=x")).status_code == 400


def _job(status, error=""):
    study, _ = Study.objects.get_or_create(study_instance_uid=UID)
    return InferenceJob.objects.create(study=study, status=status, trigger="manual", error=error)


@pytest.mark.parametrize("job_status, error, state, final", [
    ("queued", "", "analysing", False), ("running", "", "analysing", False),
    ("succeeded", "", "analysing", False),  # the draft is being stored: keep polling
    ("failed", "Orthanc stayed unavailable", "failed", True),
    ("unsupported", "body part KNEE is not spine", "unsupported", True),
    (None, "", "not_analysed", True),
])
def test_panel_state_without_a_draft(client_for, users, job_status, error, state, final):
    Study.objects.create(study_instance_uid=UID)
    if job_status:
        _job(job_status, error)
    body = client_for("radiologist").get(url()).json()
    assert (body["state"], body["final"], body["current"], body["sentences"]) == (state, final, None, [])
    polled = client_for("radiologist").get(url("/state")).json()
    assert (polled["state"], polled["final"], polled["current_number"]) == (state, final, None)
    if job_status:
        assert polled["job"]["status"] == job_status and polled["job"]["error"] == error
        assert body["job"]["status_label"] == polled["job"]["status_label"]


def test_a_failed_rerun_beside_a_draft_keeps_the_draft_readable(drafted, client_for):
    _job("failed", "decoder crashed")
    body = client_for("radiologist").get(url()).json()
    assert (body["state"], body["final"], body["job"]["status"]) == ("ready", True, "failed")


def test_polling_the_state_writes_no_audit_rows_and_reveals_no_text(drafted, client_for):
    from backend.audit.models import AuditEvent

    c = client_for("radiologist")
    before = AuditEvent.objects.count()
    for _ in range(5):
        body = c.get(url("/state")).json()
    assert AuditEvent.objects.count() == before
    assert DRAFT not in str(body) and "herniation" not in str(body)
    assert (body["current_number"], body["version_count"], body["result_id"]) == (0, 1, drafted.pk)
    c.get(url())
    assert AuditEvent.objects.count() == before + 1  # reading the report itself is audited
    assert client_for("annotator").get(url("/state")).status_code == 403


def test_sentences_link_to_findings_and_follow_edits(make_result, exports, client_for,
                                                     django_capture_on_commit_callbacks):
    box = {"condition": "herniation", "series_instance_uid": "1.2.3", "sop_instance_uid": "1.2.3.4",
           "box": [10, 20, 30, 40], "score": 0.7, "level": "L4-L5"}
    key = {"condition": "herniation", "series_instance_uid": "1.2.3", "sop_instance_uid": "1.2.3.5",
           "slice_index": 6, "score": 0.8}
    result = make_result(boxes=[box], key_slices=[key])
    with django_capture_on_commit_callbacks(execute=True):
        inference_succeeded.send(sender=InferenceResult, result=result)
    c = client_for("radiologist")
    body = c.get(url()).json()
    by_text = {s["text"]: s for s in body["sentences"]}
    assert "FINDINGS:" not in by_text  # a heading alone is no sentence
    line = by_text["L4-L5: disc herniation with mild canal stenosis."]
    assert DRAFT[line["start"]:line["end"]] == line["text"]
    links = {(l["condition"], l["level"]): l for l in line["links"]}
    assert set(links) == {("herniation", "L4-L5"), ("canal", "L4-L5")}
    assert links[("herniation", "L4-L5")]["key_slice"]["sop_instance_uid"] == "1.2.3.5"
    assert links[("herniation", "L4-L5")]["box"]["box"] == [10, 20, 30, 40]
    assert links[("herniation", "L4-L5")]["matches_model"] and not links[("canal", "L4-L5")]["matches_model"]
    # An edit that still names the condition and level keeps the link; one that names another level does not.
    edited = DRAFT.replace("disc herniation with mild canal stenosis", "small disc protrusion").replace(
        "1. L4-L5 disc herniation.", "1. Disc herniation at L5-S1.")
    saved = c.post(url("/versions"), {"text": edited, "base_number": 0}, format="json").json()
    links = [(l["condition"], l["level"], l["matches_model"]) for s in saved["sentences"] for l in s["links"]]
    assert links == [("herniation", "L4-L5", True), ("herniation", "L5-S1", False)]
    assert c.get(url()).json()["sentences"] == saved["sentences"]


def test_sentence_offsets_are_utf16_and_levels_are_not_sequences():
    from backend.reports.sentences import levels_in, link

    text = "Note \U0001F600 first. Disc herniation at L4-5 on sagittal T2 images."
    [first, second] = link(text, None)
    assert (second["start"], second["end"]) == (text.index("Disc") + 1, len(text) + 1)  # one surrogate pair
    assert [(l["condition"], l["level"]) for l in second["links"]] == [("herniation", "L4-L5")]
    assert levels_in("T2 sagittal, T1-weighted, sagittal T1, axial T2 and T2 STIR") == []
    assert levels_in("fracture of T12 and of T2, also C7-T1 and L5/S1") == ["T12", "T2", "C7-T1", "L5-S1"]
    assert levels_in("sagittal T1 and T2.") == []  # ambiguous "and T2" reads as a sequence: no link, never a wrong one


def test_ai_priority_from_the_latest_result(make_result, exports, django_capture_on_commit_callbacks):
    urgent = make_result(conditions=[{"condition": "compression", "probability": 0.9, "present": True,
                                      "status": "present", "level": "C5-C6"}])
    with django_capture_on_commit_callbacks(execute=True):
        inference_succeeded.send(sender=InferenceResult, result=urgent)
    assert Report.objects.get().ai_priority == 2
    calm = make_result(conditions=[{"condition": "compression", "probability": 0.3, "present": False,
                                    "status": "not_assessed", "level": "C5-C6"}])
    with django_capture_on_commit_callbacks(execute=True):
        inference_succeeded.send(sender=InferenceResult, result=calm)
    assert Report.objects.get().ai_priority == 0
