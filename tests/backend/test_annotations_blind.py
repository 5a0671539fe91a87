"""Issue 23 item 4: an annotation page that does not anchor.

Blind mode (the default) withholds the extraction on the server until the annotator's complete first
pass is fixed (reveal) or submitted; every submission records whether the extraction was seen.
Assisted mode presets it. Adjudication shows where annotators disagree and their comments, and refuses
a decision on a task that changed meanwhile. A finished task reopens read-only; a task one may not
open is a plain 404 page even with DEBUG on. Real PostgreSQL; pages through the Django test client.
"""

import re

import pytest
from django.contrib.auth.models import Group, User

from backend.annotations import services
from backend.annotations.models import Annotation, Extraction, LabelTask, Reveal, VerifiedLabels
from backend.audit.models import AuditEvent
from spinefm.conditions import CONDITION_KEYS

pytestmark = [pytest.mark.django_db]

UID = "1.2.826.0.1.3680043.10.999.23"
# The labeler's known error (issue 23): "Negative for discitis" after "Other:" is read as inflammation present.
TEXT = "FINDINGS: Mild canal stenosis at L4-L5. No fracture.\nOther: Negative for discitis."


def labels(**values):
    out = {k: 0 for k in CONDITION_KEYS}
    out.update(values)
    return out


@pytest.fixture
def task(db):
    return services.create_task(study_instance_uid=UID, text=TEXT, source=LabelTask.IMPORTED)[0]


@pytest.fixture
def model_result(db):
    """A model result for the study, made before the task so the task links it (admins may see its calls)."""
    from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
    from backend.studies.models import Study

    model = ModelVersion.objects.create(name="phantom-nano", version="0.1", path="builtin:t", state="active")
    study = Study.objects.create(study_instance_uid=UID, patient_id="P1", modalities="MR")
    job = InferenceJob.objects.create(study=study, model_version=model, status="succeeded")
    return InferenceResult.objects.create(job=job, study=study, model_version=model, data={
        "draft_text": "IMPRESSION: AI draft.", "synthetic_training": True,
        "conditions": [{"condition": k, "probability": 0.7, "present": True, "level": None} for k in CONDITION_KEYS]})


@pytest.fixture
def annotator2(users):
    second = User.objects.create_user("annotator2", password="x")
    second.groups.add(Group.objects.get(name="annotator"))
    return second


def api(task, what=""):
    return f"/api/annotations/tasks/{task.pk}/{what}"


def checked(html):
    return dict(re.findall(r'name="(\w+)" value="(-?\d)"[^>]*checked', html))


def test_the_labelers_error_this_issue_is_about(task):
    values = {k: v["value"] for k, v in task.extractions.get().labels["labels"].items()}
    assert values["inflammation"] == 1 and values["canal"] == 1  # suggested, wrongly, as present


# ---- blind: nothing sent before the first pass --------------------------------------------------------------------

def test_blind_is_the_default_and_the_api_withholds_the_extraction(model_result, task, client_for, settings):
    for role in ("annotator", "admin"):  # the admin's model calls are withheld as well while they may annotate
        detail = client_for(role).get(api(task)).json()
        assert detail["mode"] == "blind" and detail["extraction_hidden"] is True
        assert detail["extractions"] == [] and detail["suggested"] is None and detail["preset"] is None
        assert detail["model"] is None and detail["first_pass"] is None and detail["mine"] is None
        assert "annotations_detail" not in detail
        assert detail["text"] == TEXT
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"  # the same calls, assisted: all of it is there to withhold
    detail = client_for("admin").get(api(task)).json()
    assert detail["extractions"] and detail["suggested"]["inflammation"] == 1 and detail["model"]["conditions"]


def test_blind_page_presets_and_highlights_nothing(task, client_for):
    html = client_for("annotator").get(f"/annotate/tasks/{task.pk}").content.decode()
    assert checked(html) == {}
    assert "<mark" not in html and "rules-1.0" not in html and "Suggested</th>" not in html
    assert 'data-suggested=""' in html and 'data-suggested="1"' not in html and 'data-suggested="0"' not in html
    assert 'id="mode-banner" data-state="blind"' in html and 'id="reveal"' in html
    assert '"state": "blind"' in html and '"mode": "blind"' in html
    for key in ("<kbd>J</kbd>", "<kbd>1</kbd> present", "<kbd>Enter</kbd>", "<kbd>R</kbd> reveal"):
        assert key in html  # the visible legend


def test_reveal_needs_a_complete_first_pass_and_fixes_it(task, client_for, users):
    client = client_for("annotator")
    partial = {k: v for k, v in labels().items() if k != "canal"}
    r = client.post(api(task, "reveal"), {"labels": partial}, format="json")
    assert r.status_code == 400 and "missing condition(s): canal" in r.json()["detail"]
    assert not Reveal.objects.exists() and client.get(api(task)).json()["extractions"] == []

    first = labels(canal=1)  # the annotator reads "Negative for discitis" as absent
    r = client.post(api(task, "reveal"), {"labels": first}, format="json")
    assert r.status_code == 200, r.content
    shown = r.json()
    assert shown["extraction_hidden"] is False and shown["first_pass"] == first and shown["preset"] == first
    assert shown["suggested"]["inflammation"] == 1 and shown["extractions"][0]["labeler"] == "rules"
    # a reloaded page sends the same first pass again: the same record; a different one is refused
    assert client.post(api(task, "reveal"), {"labels": first}, format="json").status_code == 200
    r = client.post(api(task, "reveal"), {"labels": labels(canal=1, par=1)}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "already_revealed"
    assert Reveal.objects.get().labels == first
    assert AuditEvent.objects.filter(target_type="annotation-task", target_id=str(task.pk), action="edit").count() == 2

    html = client.get(f"/annotate/tasks/{task.pk}").content.decode()
    assert 'data-state="revealed"' in html and "<mark" in html and "Your first pass</th>" in html
    assert checked(html) == {k: str(v) for k, v in first.items()}
    assert re.search(r'data-condition="inflammation"[^>]*data-suggested="1"', html)

    final = labels(canal=1, par=-1)
    r = client.post(api(task, "annotations"), {"labels": final, "mode": "blind"}, format="json")
    assert r.status_code == 201 and r.json()["mode"] == "blind" and r.json()["extraction_seen"] is True
    a = Annotation.objects.get()
    assert (a.mode, a.extraction_seen, a.blind_labels, a.labels) == ("blind", True, first, final)
    assert a.extraction == task.extractions.get() and a.revealed_at == Reveal.objects.get().created_at
    assert VerifiedLabels.objects.get().labels == final
    r = client.post(api(task, "reveal"), {"labels": first}, format="json")
    assert r.status_code == 404  # no longer in the annotator's queue


def test_blind_submission_without_reveal_records_the_extraction_unseen(task, client_for):
    r = client_for("annotator").post(api(task, "annotations"), {"labels": labels(canal=1)}, format="json")
    assert r.status_code == 201 and r.json()["extraction_seen"] is False
    a = Annotation.objects.get()
    assert (a.mode, a.extraction_seen, a.extraction, a.blind_labels, a.revealed_at) == ("blind", False, None, None, None)


def test_assisted_mode_presets_and_records_it(task, client_for, settings):
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"
    client = client_for("annotator")
    html = client.get(f"/annotate/tasks/{task.pk}").content.decode()
    assert 'data-state="assisted"' in html and checked(html)["inflammation"] == "1" and 'id="reveal"' not in html
    assert "rows you change are marked" in html.replace("Rows you change", "rows you change")
    r = client.post(api(task, "reveal"), {"labels": labels()}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "not_blind" and not Reveal.objects.exists()
    r = client.post(api(task, "annotations"), {"labels": labels(canal=1), "mode": "assisted"}, format="json")
    assert r.status_code == 201
    a = Annotation.objects.get()
    assert (a.mode, a.extraction_seen, a.extraction) == ("assisted", True, task.extractions.get())


def test_a_page_opened_in_another_mode_is_refused(task, client_for, settings):
    client = client_for("annotator")
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"  # changed after the page was opened blind
    r = client.post(api(task, "annotations"), {"labels": labels(), "mode": "blind"}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "mode_changed" and r.json()["mode"] == "assisted"
    r = client.post(api(task, "annotations"), {"labels": labels(), "mode": "sideways"}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "mode"
    assert not Annotation.objects.exists()
    task.refresh_from_db()
    assert task.status == LabelTask.OPEN


def test_an_unknown_mode_setting_is_blind(task, client_for, settings):
    settings.SPINEAGENT_ANNOTATION_MODE = "asisted"
    assert client_for("annotator").get(api(task)).json()["extraction_hidden"] is True


def test_duplicate_submission_is_409_with_nothing_written(task, client_for):
    client = client_for("annotator")
    assert client.post(api(task, "annotations"), {"labels": labels()}, format="json").status_code == 201
    r = client.post(api(task, "annotations"), {"labels": labels(canal=1)}, format="json")
    # the task is done now: closed to anyone; the message says why
    assert r.status_code == 409 and "not open for annotation" in r.json()["detail"]
    assert Annotation.objects.count() == 1 and VerifiedLabels.objects.get().labels == labels()


# ---- a finished task reopens read-only; no debug page -------------------------------------------------------------

def test_a_finished_task_reopens_read_only(task, client_for, users):
    client = client_for("annotator")
    mine = labels(canal=1, par=-1)
    client.post(api(task, "annotations"), {"labels": mine, "comment": "pars unclear"}, format="json")
    r = client.get(f"/annotate/tasks/{task.pk}")
    assert r.status_code == 200
    html = r.content.decode()
    assert 'data-state="readonly"' in html and "Read-only." in html and "suggestions not seen" in html
    assert checked(html) == {k: str(v) for k, v in mine.items()}
    assert len(re.findall(r'type="radio"[^>]*disabled', html)) == 3 * len(CONDITION_KEYS)
    assert 'id="submit' not in html and "textarea" not in html and "pars unclear" in html
    assert "Final labels: one annotator" in html
    queue = client.get("/annotate/").content.decode()
    assert re.search(rf'<tr data-task="{task.pk}">.*?blind.*?Open \(read-only\)', queue, re.S)


@pytest.mark.parametrize("debug", [False, True])
def test_a_task_you_may_not_open_is_a_plain_404_page(task, client_for, users, annotator2, settings, debug):
    settings.DEBUG = debug
    services.submit_annotation(task, users["admin"], labels())  # done by someone else
    from rest_framework.test import APIClient

    other = APIClient()
    other.force_login(annotator2)
    for path in (f"/annotate/tasks/{task.pk}", "/annotate/tasks/987654"):
        r = other.get(path)
        assert r.status_code == 404
        html = r.content.decode()
        assert 'data-testid="task-missing"' in html and "Back to the queue" in html
        assert "URLconf" not in html and "Traceback" not in html and "DEBUG = True" not in html


# ---- submit and next ----------------------------------------------------------------------------------------------

def test_next_opens_the_first_task_of_your_queue_then_the_empty_queue(task, client_for):
    client = client_for("annotator")
    r = client.get("/annotate/next?order=oldest")
    assert r.status_code == 302 and r["Location"] == f"/annotate/tasks/{task.pk}?order=oldest"
    client.post(api(task, "annotations"), {"labels": labels()}, format="json")
    r = client.get("/annotate/next?order=oldest")
    assert r.status_code == 302 and r["Location"] == "/annotate/?order=oldest&finished=1"
    assert "Your queue is empty" in client.get(r["Location"]).content.decode()
    assert client.get("/annotate/next?order=nonsense")["Location"].startswith("/annotate/?order=priority")


# ---- adjudication -------------------------------------------------------------------------------------------------

@pytest.fixture
def disputed(users, annotator2):
    task = services.create_task(study_instance_uid=UID + ".2", text=TEXT, source=LabelTask.IMPORTED,
                                required_annotations=2)[0]
    services.submit_annotation(task, users["annotator"], labels(canal=1), "discitis negated, inflammation absent")
    services.submit_annotation(task, annotator2, labels(canal=1, inflammation=1, par=-1), "")
    task.refresh_from_db()
    assert task.status == LabelTask.ADJUDICATION
    return task


def test_adjudication_marks_disagreeing_rows_and_shows_comments(disputed, client_for):
    client = client_for("admin")
    detail = client.get(api(disputed)).json()
    assert sorted(detail["disagreements"]) == ["inflammation", "par"]
    assert detail["preset"]["canal"] == 1 and detail["preset"]["inflammation"] is None
    html = client.get(f"/annotate/tasks/{disputed.pk}").content.decode()
    rows = re.findall(r'<tr data-condition="(\w+)"[^>]*class="([^"]*)"', html)
    assert sorted(k for k, c in rows if "disagree" in c) == ["inflammation", "par"]
    assert '<span id="n-disagree">2</span>' in html
    assert "discitis negated, inflammation absent" in html and "no comment" in html
    assert re.search(r'data-condition="inflammation".*?annotator: absent.*?annotator2: present', html, re.S)
    assert checked(html).get("inflammation") is None and checked(html)["canal"] == "1"
    assert '"submit_url": "/api/annotations/tasks/%d/adjudicate"' % disputed.pk in html
    assert '"next_url": "/annotate/next?order=priority\\u0026queue=adjudication"' in html
    assert f'"revision": "{detail["revision"]}"' in html
    # 'save and next' opens the next task awaiting adjudication (this one, until it is decided)
    assert client.get("/annotate/next?queue=adjudication")["Location"] == f"/annotate/tasks/{disputed.pk}?order=priority"


def test_adjudicating_a_task_that_changed_meanwhile_is_409(disputed, client_for):
    client = client_for("admin")
    seen = client.get(api(disputed)).json()["revision"]
    # the LLM's extraction arrives while the adjudicator is reading (what the Celery task writes)
    rules = disputed.extractions.get().labels
    Extraction.objects.create(task=disputed, labeler="llm", labeler_version="llm:test:p1", labels=rules)
    r = client.post(api(disputed, "adjudicate"), {"labels": labels(canal=1), "revision": seen}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "stale" and "changed since you opened it" in r.json()["detail"]
    assert not VerifiedLabels.objects.filter(task=disputed).exists()
    disputed.refresh_from_db()
    assert disputed.status == LabelTask.ADJUDICATION
    r = client.post(api(disputed, "adjudicate"), {"labels": labels(canal=1), "revision": 5}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "revision"
    fresh = r = client.get(api(disputed)).json()["revision"]
    r = client.post(api(disputed, "adjudicate"), {"labels": labels(canal=1), "revision": fresh}, format="json")
    assert r.status_code == 201
    # a second adjudicator with the same (now old) page: the task is closed
    r = client.post(api(disputed, "adjudicate"), {"labels": labels(), "revision": fresh}, format="json")
    assert r.status_code == 409 and r.json()["error"] == "wrong_status"
    assert VerifiedLabels.objects.get(task=disputed).labels == labels(canal=1)
    html = client.get(f"/annotate/tasks/{disputed.pk}").content.decode()
    assert 'data-state="readonly"' in html and "Final labels: adjudicated" in html


def test_other_annotators_labels_stay_hidden_while_you_may_annotate(users, annotator2, client_for, settings):
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"
    task = services.create_task(study_instance_uid=UID + ".3", text=TEXT, source=LabelTask.IMPORTED,
                                required_annotations=2)[0]
    services.submit_annotation(task, annotator2, labels(inflammation=1), "looks inflamed")
    detail = client_for("admin").get(api(task)).json()  # the admin may still annotate it
    assert "annotations_detail" not in detail and "revision" not in detail
    assert "looks inflamed" not in client_for("admin").get(f"/annotate/tasks/{task.pk}").content.decode()


@pytest.mark.django_db(transaction=True)
def test_two_tabs_submitting_at_once_write_one_annotation(users):
    """A double click or two open tabs: the task row is locked, so exactly one annotation is written and the
    other request is a clear 409, never a half-written task or a 500 from the unique constraint."""
    import threading

    from django.db import connection

    task = services.create_task(study_instance_uid=UID + ".9", text=TEXT, source=LabelTask.IMPORTED,
                                required_annotations=2)[0]
    barrier, outcomes = threading.Barrier(2), []

    def submit(values):
        try:
            barrier.wait()
            services.submit_annotation(task, users["annotator"], values)
            outcomes.append("created")
        except services.Conflict as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(v,)) for v in (labels(), labels(canal=1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["already_annotated", "created"]
    assert Annotation.objects.filter(task=task).count() == 1
    task.refresh_from_db()
    assert task.status == LabelTask.OPEN and not VerifiedLabels.objects.filter(task=task).exists()


def test_metrics_split_agreement_by_exposure_and_count_what_the_reveal_changed(users, annotator2, client_for,
                                                                               settings):
    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"
    seen_task = services.create_task(study_instance_uid=UID + ".5", text=TEXT, source=LabelTask.IMPORTED,
                                     required_annotations=2)[0]
    services.submit_annotation(seen_task, users["annotator"], labels(canal=1, inflammation=1))
    services.submit_annotation(seen_task, annotator2, labels(canal=1, inflammation=1))
    settings.SPINEAGENT_ANNOTATION_MODE = "blind"
    mixed = services.create_task(study_instance_uid=UID + ".6", text=TEXT, source=LabelTask.IMPORTED,
                                 required_annotations=2)[0]
    # first pass: canal only; after seeing the suggestion (canal 1, inflammation 1) two rows change:
    # inflammation 0 -> 1 (to the suggestion), par 0 -> -1 (the suggestion says 0)
    services.reveal(mixed, users["annotator"], labels(canal=1))
    services.submit_annotation(mixed, users["annotator"], labels(canal=1, inflammation=1, par=-1))
    services.submit_annotation(mixed, annotator2, labels(canal=1))  # blind, never revealed
    body = client_for("admin").get("/api/annotations/metrics").json()
    agreement = body["annotator_agreement"]
    assert agreement["n_tasks"] == 2
    assert agreement["by_exposure"]["seen"]["n_tasks"] == 1  # the mixed pair is in neither
    assert agreement["by_exposure"]["unseen"]["n_tasks"] == 0
    assert agreement["by_exposure"]["seen"]["conditions"]["inflammation"]["observed_agreement"] == 1.0
    assert agreement["conditions"]["inflammation"]["observed_agreement"] == 0.5
    assert body["reveal_effect"] == {"n_annotations": 1, "rows": len(CONDITION_KEYS), "rows_changed": 2,
                                     "changed_to_suggestion": 1}
