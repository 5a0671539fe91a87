"""Annotations app (issue 7, items 1-4): tasks from imports and sign-off, extraction with evidence, submit
validation, double annotation -> agreement / adjudication, kappa and labeler accuracy, queue ordering, roles.

Real PostgreSQL; the report sign-off goes through the reports services with its on-commit signal, as in
production. Every number asserted is worked out by hand in the test.
"""


import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.annotations import services
from backend.annotations.models import Annotation, Extraction, LabelTask, VerifiedLabels
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.reports import versions
from backend.studies.models import Study
from backend.studies.signals import study_indexed
from spinefm.conditions import CONDITION_KEYS

pytestmark = [pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.7"
TEXT = ("FINDINGS: Mild canal stenosis at L4-L5. No fracture. Possible pars defect at L5.\n"
        "IMPRESSION: Mild canal stenosis at L4-L5.")


def labels(**values):
    out = {k: 0 for k in CONDITION_KEYS}
    out.update(values)
    return out


def uid(n):
    return f"{UID}.{n}"


@pytest.fixture
def annotators(users):
    second = User.objects.create_user("annotator2", password="x")
    second.groups.add(Group.objects.get(name="annotator"))
    return users["annotator"], second


@pytest.fixture
def model(db):
    return ModelVersion.objects.create(name="phantom-nano", version="0.1", path="builtin:t", state="active")


def study_with_result(n, model, probabilities=None, present=None, patient="P1"):
    study = Study.objects.create(study_instance_uid=uid(n), patient_id=patient, modalities="MR")
    job = InferenceJob.objects.create(study=study, model_version=model, status="succeeded")
    conditions = []
    if probabilities is not None:
        conditions = [{"condition": k, "probability": probabilities, "present": bool(present), "level": None}
                      for k in CONDITION_KEYS]
    result = InferenceResult.objects.create(job=job, study=study, model_version=model,
                                            data={"draft_text": "IMPRESSION: AI draft.", "conditions": conditions,
                                                  "synthetic_training": True})
    return study, result


# ---- tasks and extraction ----------------------------------------------------------------------------------------

def test_create_task_extracts_with_evidence_and_is_idempotent():
    task, created = services.create_task(study_instance_uid=uid(1), text=TEXT, source=LabelTask.IMPORTED,
                                         patient_id="PAT-1", external_id="ACC1")
    assert created and task.status == LabelTask.OPEN and task.required_annotations == 1
    extraction = Extraction.objects.get(task=task)
    assert (extraction.labeler, extraction.labeler_version) == ("rules", "rules-1.0")
    canal = extraction.labels["labels"]["canal"]
    assert canal["value"] == 1 and canal["source"] == "rules"
    assert [TEXT[e["start"]:e["end"]] for e in canal["evidence"]] == [e["text"] for e in canal["evidence"]]
    assert any("canal stenosis" in e["text"] for e in canal["evidence"])
    assert extraction.labels["labels"]["par"]["value"] == -1
    assert extraction.labels["labels"]["fracture"]["value"] == 0
    again, created = services.create_task(study_instance_uid=uid(1), text=TEXT, source=LabelTask.IMPORTED)
    assert not created and again.pk == task.pk and Extraction.objects.filter(task=task).count() == 1
    other, created = services.create_task(study_instance_uid=uid(1), text=TEXT + " Addendum.",
                                          source=LabelTask.IMPORTED)
    assert created and other.pk != task.pk


def test_create_task_links_the_study_and_copies_its_patient_id(model):
    study, _ = study_with_result(2, model, patient="PID-42")
    task, _ = services.create_task(study_instance_uid=uid(2), text=TEXT, source=LabelTask.IMPORTED)
    assert task.study == study and task.patient_id == "PID-42"
    given, _ = services.create_task(study_instance_uid=uid(2), text=TEXT + " x", source=LabelTask.IMPORTED,
                                    patient_id="OWN")
    assert given.patient_id == "OWN"


@pytest.mark.parametrize("kw, field", [
    ({"study_instance_uid": ""}, "study_instance_uid"),
    ({"study_instance_uid": "1" * 65}, "study_instance_uid"),
    ({"text": "   "}, "text"),
    ({"source": "email"}, "source"),
    ({"required_annotations": 0}, "required_annotations"),
])
def test_create_task_rejects_bad_input(kw, field):
    args = {"study_instance_uid": uid(3), "text": TEXT, "source": LabelTask.IMPORTED, **kw}
    with pytest.raises(services.Invalid) as err:
        services.create_task(**args)
    assert err.value.extra["field"] == field
    assert LabelTask.objects.count() == 0


def test_images_indexed_after_the_import_link_the_task_and_set_the_uncertainty(model):
    task, _ = services.create_task(study_instance_uid=uid(4), text=TEXT, source=LabelTask.IMPORTED)
    assert task.study is None and task.model_uncertainty is None
    study, _ = study_with_result(4, model, probabilities=0.5, present=False, patient="LATE")
    study_indexed.send(sender=Study, study=study, created=True)
    task.refresh_from_db()
    assert task.study == study and task.patient_id == "LATE"
    assert task.model_uncertainty == 1.0  # entropy of p = 0.5 is exactly one bit for every condition


# ---- sources: bulk import and sign-off -----------------------------------------------------------------------------

CSV = (f"study_instance_uid,patient_id,accession,report\n"
       f"{uid(10)},PAT-A,ACC-A,\"{TEXT}\"\n"
       f"{uid(11)},PAT-B,ACC-B,No acute fracture. Small Tarlov cyst at S2.\n"
       f"not-a-uid,PAT-C,ACC-C,Text\n"
       f"{uid(12)},PAT-D,ACC-D,\n").encode()


def test_bulk_import_csv_via_the_api(client_for):
    client = client_for("admin")
    r = client.post("/api/annotations/import",
                    {"file": SimpleUploadedFile("reports.csv", CSV, "text/csv"), "required_annotations": "2"},
                    format="multipart")
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["created"], body["existing"], body["failed"]) == (2, 0, 2)
    assert sorted((e["row"], e["field"]) for e in body["errors"]) == [(3, "study_instance_uid"), (4, "text")]
    a = LabelTask.objects.get(study_instance_uid=uid(10))
    b = LabelTask.objects.get(study_instance_uid=uid(11))
    assert (a.patient_id, a.external_id, a.source, a.required_annotations) == ("PAT-A", "ACC-A", "imported", 2)
    assert a.text == TEXT and b.patient_id == "PAT-B"
    assert b.extractions.get().labels["labels"]["cyst"]["value"] == 1
    again = client.post("/api/annotations/import", {"file": SimpleUploadedFile("r.csv", CSV, "text/csv")},
                        format="multipart").json()
    assert (again["created"], again["existing"]) == (0, 2) and LabelTask.objects.count() == 2


def test_bulk_import_json_body_and_errors(client_for):
    client = client_for("admin")
    r = client.post("/api/annotations/import", {"reports": [
        {"StudyInstanceUID": uid(20), "PatientID": "J1", "text": "Disc extrusion at L5-S1."},
        {"study_instance_uid": uid(21)},
    ]}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["created"] == 1 and body["errors"] == [{"row": 2, "field": "text",
                                                        "message": "missing report text column"}]
    assert LabelTask.objects.get().patient_id == "J1"
    for bad in ({}, {"reports": "x"}, [1, 2], {"reports": [], "required_annotations": 9}):
        r = client.post("/api/annotations/import", bad, format="json")
        assert r.status_code == 400, (bad, r.content)


def test_signing_a_report_makes_a_signed_task(users, model, django_capture_on_commit_callbacks):
    study, result = study_with_result(30, model, patient="SIGNED-P")
    reader = users["radiologist"]
    with django_capture_on_commit_callbacks(execute=True):
        versions.add_ai_draft(result)
        versions.mark_opened(study, reader)
        number = versions.save_version(study, reader, TEXT, 0).number
        versions.sign(study, reader, number, "2a", "")
    task = LabelTask.objects.get(study_instance_uid=uid(30))
    assert (task.source, task.text, task.patient_id, task.study) == ("signed", TEXT, "SIGNED-P", study)
    assert task.report == study.report
    assert task.extractions.get().labels["labels"]["canal"]["value"] == 1


# ---- verification ------------------------------------------------------------------------------------------------

@pytest.fixture
def task(db):
    return services.create_task(study_instance_uid=uid(40), text=TEXT, source=LabelTask.IMPORTED)[0]


def test_single_annotation_verifies(task, client_for, users):
    r = client_for("annotator").post(f"/api/annotations/tasks/{task.pk}/annotations",
                                     {"labels": labels(canal=1, par=-1), "comment": "ok"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["task_status"] == "done"
    verified = VerifiedLabels.objects.get(task=task)
    assert verified.labels == labels(canal=1, par=-1) and verified.method == "single"
    assert verified.decided_by == users["annotator"]


@pytest.mark.parametrize("body, needle", [
    ({"labels": labels(stenosis=1)}, "unknown condition(s): stenosis"),
    ({"labels": {k: v for k, v in labels().items() if k != "canal"}}, "missing condition(s): canal"),
    ({"labels": labels(canal=2)}, "canal=2"),
    ({"labels": labels(canal="1")}, "canal='1'"),
    ({"labels": labels(canal=True)}, "canal=True"),
    ({"labels": [1, 0]}, "labels must be an object"),
    ({}, "labels must be an object"),
    ({"labels": labels(), "comment": 5}, "comment must be a string"),
])
def test_submit_validation(task, client_for, body, needle):
    r = client_for("annotator").post(f"/api/annotations/tasks/{task.pk}/annotations", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"] == "invalid" and needle in r.json()["detail"]
    assert not Annotation.objects.exists()


def test_validation_error_is_the_api_invalid_naming_the_field(task, users):
    """Callers outside the API get the same refusal the API answers with (400 ``invalid``, its field)."""
    from backend.errors import Invalid

    with pytest.raises(Invalid) as err:
        services.submit_annotation(task, users["annotator"], labels(canal=5))
    assert (err.value.status, err.value.code, err.value.extra["field"]) == (400, "invalid", "labels")


def test_double_submit_is_409(annotators, client_for):
    task, _ = services.create_task(study_instance_uid=uid(41), text=TEXT, source=LabelTask.IMPORTED,
                                   required_annotations=2)
    client = client_for("annotator")
    url = f"/api/annotations/tasks/{task.pk}/annotations"
    assert client.post(url, {"labels": labels()}, format="json").status_code == 201
    r = client.post(url, {"labels": labels(canal=1)}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "already_annotated"
    assert Annotation.objects.filter(task=task).count() == 1


def test_double_annotation_agreement(annotators):
    task, _ = services.create_task(study_instance_uid=uid(42), text=TEXT, source=LabelTask.IMPORTED,
                                   required_annotations=2)
    a, b = annotators
    first = services.submit_annotation(task, a, labels(canal=1))
    assert first.task.status == LabelTask.OPEN and not VerifiedLabels.objects.exists()
    second = services.submit_annotation(task, b, labels(canal=1))
    assert second.task.status == LabelTask.DONE
    verified = VerifiedLabels.objects.get(task=task)
    assert (verified.method, verified.labels, verified.decided_by) == ("agreement", labels(canal=1), None)


def test_disagreement_goes_to_adjudication(annotators, client_for, users):
    task, _ = services.create_task(study_instance_uid=uid(43), text=TEXT, source=LabelTask.IMPORTED,
                                   required_annotations=2)
    a, b = annotators
    services.submit_annotation(task, a, labels(canal=1))
    assert services.submit_annotation(task, b, labels(canal=-1)).task.status == LabelTask.ADJUDICATION
    assert not VerifiedLabels.objects.exists()
    # no third annotation on a task awaiting adjudication
    with pytest.raises(services.WrongStatus):
        services.submit_annotation(task, users["admin"], labels())
    assert client_for("annotator").post(f"/api/annotations/tasks/{task.pk}/adjudicate",
                                        {"labels": labels()}, format="json").status_code == 403
    admin = client_for("admin")
    queue = admin.get("/api/annotations/adjudication/").json()
    assert [row["id"] for row in queue["results"]] == [task.pk]
    detail = admin.get(f"/api/annotations/tasks/{task.pk}/").json()
    assert sorted(x["annotator"] for x in detail["annotations_detail"]) == ["annotator", "annotator2"]
    assert admin.post(f"/api/annotations/tasks/{task.pk}/adjudicate", {"labels": labels(canal=7)},
                      format="json").status_code == 400
    r = admin.post(f"/api/annotations/tasks/{task.pk}/adjudicate", {"labels": labels(canal=1)}, format="json")
    assert r.status_code == 201, r.content
    verified = VerifiedLabels.objects.get(task=task)
    assert (verified.method, verified.labels, verified.decided_by) == ("adjudicated", labels(canal=1), users["admin"])
    task.refresh_from_db()
    assert task.status == LabelTask.DONE
    again = admin.post(f"/api/annotations/tasks/{task.pk}/adjudicate", {"labels": labels()}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "wrong_status"


# ---- metrics -----------------------------------------------------------------------------------------------------

def test_kappa_and_labeler_accuracy_by_hand(annotators, client_for):
    a, b = annotators
    # Four double-annotated tasks; canal: A = 1 1 0 0, B = 1 0 0 0.
    # po = 3/4; pe = P_A(1) P_B(1) + P_A(0) P_B(0) = 1/2 * 1/4 + 1/2 * 3/4 = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2.
    # Herniation: A = 1 0 1 0, B = 1 0 1 0 -> kappa 1. Every other condition: all 0 for both -> undefined (null).
    for i, (ca, cb, h) in enumerate([(1, 1, 1), (1, 0, 0), (0, 0, 1), (0, 0, 0)]):
        t, _ = services.create_task(study_instance_uid=uid(50 + i), text=f"Report {i}: mild canal stenosis.",
                                    source=LabelTask.IMPORTED, required_annotations=2)
        services.submit_annotation(t, a, labels(canal=ca, herniation=h))
        services.submit_annotation(t, b, labels(canal=cb, herniation=h))
    body = client_for("admin").get("/api/annotations/metrics").json()
    agreement = body["annotator_agreement"]
    assert agreement["n_tasks"] == 4
    canal_row = agreement["conditions"]["canal"]
    assert {k: canal_row[k] for k in ("n", "kappa", "observed_agreement")} == {"n": 4, "kappa": 0.5,
                                                                               "observed_agreement": 0.75}
    # 95% CI, delete-one jackknife over tasks. Leaving out task 0 (1,1): A = 1 0 0, B = 0 0 0, po = 2/3,
    # pe = 1/3 * 0 + 2/3 * 1 = 2/3 -> 0; task 1 (1,0): A = B = 1 0 0 -> 1; task 2 or 3 (0,0): A = 1 1 0,
    # B = 1 0 0, po = 2/3, pe = 2/3 * 1/3 + 1/3 * 2/3 = 4/9 -> (2/9) / (5/9) = 0.4. Mean 0.45; squared
    # deviations 0.2025 + 0.3025 + 0.0025 + 0.0025 = 0.51; SE = sqrt(3/4 * 0.51) = 0.618466;
    # 0.5 -+ 1.959964 * 0.618466 = -0.712171 .. 1.712171, clipped to 1.
    assert canal_row["ci_low"] == pytest.approx(-0.712171, abs=1e-6) and canal_row["ci_high"] == 1.0
    assert agreement["ci_method"].startswith("delete-one jackknife over tasks")
    # herniation: every leave-one-out kappa is 1 -> SE 0 -> the interval is the point
    assert (agreement["conditions"]["herniation"]["ci_low"], agreement["conditions"]["herniation"]["ci_high"]) == (1.0, 1.0)
    assert agreement["conditions"]["fracture"]["ci_low"] is None
    assert agreement["fleiss"]["n_tasks"] == 0 and agreement["fleiss"]["conditions"]["canal"]["kappa"] is None
    assert agreement["conditions"]["herniation"]["kappa"] == 1.0
    assert agreement["conditions"]["fracture"]["kappa"] is None
    # submitted blind without a reveal (the default mode): every pair is of annotators who never saw the extraction
    assert agreement["by_exposure"]["unseen"] == {"n_tasks": 4, "conditions": agreement["conditions"]}
    assert agreement["by_exposure"]["seen"]["n_tasks"] == 0
    # Labeler accuracy: the rules say canal = 1 on all four texts; verified canal is 1 on task 0 (agreement)
    # and on nothing else decided (1 went to adjudication, 2 and 3 agreed on 0): 3 verified tasks,
    # canal truth 1 0 0 vs rules 1 1 1 -> accuracy 1/3, sensitivity 1, specificity 0.
    (rules,) = body["labeler_accuracy"]
    assert (rules["labeler"], rules["labeler_version"], rules["n_tasks"]) == ("rules", "rules-1.0", 3)
    canal = rules["conditions"]["canal"]
    assert (canal["n"], canal["n_present"], canal["n_absent"]) == (3, 1, 2)
    assert canal["accuracy"] == pytest.approx(1 / 3) and canal["sensitivity"] == 1.0 and canal["specificity"] == 0.0
    assert rules["conditions"]["herniation"]["accuracy"] == pytest.approx(1 / 3)  # truth 1 1 0, rules 0 0 0


# ---- queue -------------------------------------------------------------------------------------------------------

def test_queue_ordering_by_uncertainty_and_disagreement(model, client_for):
    # A: model unsure (p = 0.5 everywhere, all absent) -> uncertainty 1; rules on "No ..." say all 0 -> agree.
    # B: model confident (p = 0.99) and says everything present -> low uncertainty, rules disagree on 16/17.
    # C: no images yet -> no signals, always last when sorting by a signal.
    study_with_result(60, model, probabilities=0.5, present=False)
    study_with_result(61, model, probabilities=0.99, present=True)
    text = "FINDINGS: No canal stenosis. No fracture.\nIMPRESSION: Normal."
    a = services.create_task(study_instance_uid=uid(60), text=text, source=LabelTask.IMPORTED)[0]
    b = services.create_task(study_instance_uid=uid(61), text=text, source=LabelTask.IMPORTED)[0]
    c = services.create_task(study_instance_uid=uid(62), text=text, source=LabelTask.IMPORTED)[0]
    assert (a.model_uncertainty, a.labeler_disagreement) == (1.0, 0.0)
    assert b.model_uncertainty < 0.1 and b.labeler_disagreement == 1.0  # every condition: rules 0, model present
    assert (c.model_uncertainty, c.labeler_disagreement, c.priority) == (None, None, 0.0)
    client = client_for("annotator")

    def order(name):
        r = client.get(f"/api/annotations/tasks/?order={name}")
        assert r.status_code == 200, r.content
        return [row["id"] for row in r.json()["results"]]

    assert order("uncertainty") == [a.pk, b.pk, c.pk]
    assert order("disagreement") == [b.pk, a.pk, c.pk]
    assert order("oldest") == [a.pk, b.pk, c.pk]
    assert order("priority") == [b.pk, a.pk, c.pk]  # means: B (0.99-entropy + 1) / 2 > A (1 + 0) / 2
    assert client.get("/api/annotations/tasks/?order=random").status_code == 400
    page = client.get("/api/annotations/tasks/?limit=1&offset=1").json()
    assert page["count"] == 3 and len(page["results"]) == 1


def test_queue_hides_tasks_you_annotated_and_done_tasks(annotators, client_for, settings):
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"  # the presets below; blind mode: test_annotations_blind.py
    single = services.create_task(study_instance_uid=uid(70), text=TEXT, source=LabelTask.IMPORTED)[0]
    double = services.create_task(study_instance_uid=uid(71), text=TEXT, source=LabelTask.IMPORTED,
                                  required_annotations=2)[0]
    a, b = annotators
    services.submit_annotation(single, b, labels())  # done
    services.submit_annotation(double, a, labels())  # still open for the second annotator
    mine = client_for("annotator")
    assert mine.get("/api/annotations/tasks/").json()["count"] == 0
    assert mine.get(f"/api/annotations/tasks/{double.pk}/").status_code == 404  # no text outside your queue
    assert mine.get(f"/api/annotations/tasks/{single.pk}/").status_code == 404
    other = User.objects.get(username="annotator2")
    from rest_framework.test import APIClient

    second = APIClient()
    second.force_login(other)
    rows = second.get("/api/annotations/tasks/").json()["results"]
    assert [(r["id"], r["annotations"]) for r in rows] == [(double.pk, 1)]
    detail = second.get(f"/api/annotations/tasks/{double.pk}/").json()
    assert detail["text"] == TEXT and "annotations_detail" not in detail
    assert detail["preset"] == {k: v["value"] for k, v in detail["extractions"][0]["labels"].items()}
    assert detail["preset"]["canal"] == 1 and detail["preset"]["par"] == -1
    assert detail["model"] is None  # annotators hold no inference-result permission


def test_task_detail_has_viewer_link_and_model_for_admins(model, client_for, settings):
    study_with_result(80, model, probabilities=0.7, present=True)
    task = services.create_task(study_instance_uid=uid(80), text=TEXT, source=LabelTask.IMPORTED)[0]
    blind = client_for("admin").get(f"/api/annotations/tasks/{task.pk}/").json()
    assert blind["mode"] == "blind" and blind["model"] is None  # the model's calls anchor too: withheld
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"
    detail = client_for("admin").get(f"/api/annotations/tasks/{task.pk}/").json()
    assert detail["viewer_url"] == f"/viewer/spineagent?StudyInstanceUIDs={uid(80)}"
    assert detail["model"]["synthetic_training"] is True
    assert detail["model"]["conditions"]["canal"] == {"probability": 0.7, "present": True, "level": None, "status": None}
    assert client_for("annotator").get(f"/api/annotations/tasks/{task.pk}/").json()["viewer_url"] == detail["viewer_url"]


def test_unknown_and_huge_task_ids_are_404(client_for):
    client = client_for("admin")
    for pk in (12345, 2**70):
        assert client.get(f"/api/annotations/tasks/{pk}/").status_code == 404
        assert client.post(f"/api/annotations/tasks/{pk}/annotations", {"labels": labels()},
                           format="json").status_code == 404


# ---- permissions -------------------------------------------------------------------------------------------------

def test_roles(task, client_for):
    annotator, radiologist = client_for("annotator"), client_for("radiologist")
    assert annotator.get("/api/annotations/tasks/").status_code == 200
    assert radiologist.get("/api/annotations/tasks/").status_code == 403
    assert radiologist.get(f"/api/annotations/tasks/{task.pk}/").status_code == 403
    assert radiologist.post(f"/api/annotations/tasks/{task.pk}/annotations", {"labels": labels()},
                            format="json").status_code == 403
    for path in ("/api/annotations/adjudication/", "/api/annotations/metrics"):
        assert annotator.get(path).status_code == 403
    assert annotator.post("/api/annotations/import", {"reports": []}, format="json").status_code == 403
    assert annotator.post(f"/api/annotations/tasks/{task.pk}/annotations", {"labels": labels()},
                          format="json").status_code == 201
    assert not Annotation.objects.exclude(annotator__username="annotator").exists()
    assert client_for(None).get("/api/annotations/tasks/").status_code in (401, 403)
