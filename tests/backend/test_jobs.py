"""The job state machine, and real Celery workers running jobs, including a worker killed mid-job."""

import signal

import pytest

from backend import celery
from backend.inference import jobs
from backend.inference.models import InferenceJob, InferenceResult
from backend.studies.models import Study

CROP_INDEX = 45  # seed 7, varied: a 3-disc crop with no landmark, counted on its localizer (tests/models/test_vertebrae.py)

pytestmark = [pytest.mark.services]


@pytest.fixture
def job(db, active_model):
    study = Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.999.1")
    return InferenceJob.objects.create(study=study, model_version=active_model)


@pytest.mark.django_db
def test_state_machine_success_once(job):
    started = jobs.start(job.pk, worker="w")
    assert started.status == "running" and started.attempts == 1
    assert jobs.succeed(job.pk, {"conditions": []}, {"total_s": 1.0}) is not None
    # A duplicate delivery neither restarts nor stores a second result.
    assert jobs.start(job.pk) is None
    assert jobs.succeed(job.pk, {"conditions": ["other"]}, {}) is None
    job.refresh_from_db()
    assert job.status == "succeeded" and job.progress == 100 and job.finished_at
    assert InferenceResult.objects.filter(job=job).count() == 1
    assert InferenceResult.objects.get(job=job).data == {"conditions": []}


@pytest.mark.django_db
def test_state_machine_requeue_then_give_up(job, settings):
    settings.SPINEAGENT_MAX_JOB_ATTEMPTS = 2
    jobs.start(job.pk)
    jobs.requeue(job.pk, "Orthanc is unavailable")
    job.refresh_from_db()
    assert job.status == "queued" and job.error == "Orthanc is unavailable"
    jobs.start(job.pk)
    jobs.requeue(job.pk, "still down")
    assert jobs.start(job.pk) is None
    job.refresh_from_db()
    assert job.status == "failed" and "gave up after 2 attempts" in job.error and "still down" in job.error


@pytest.mark.django_db
def test_end_is_final_and_checked(job):
    jobs.start(job.pk)
    jobs.end(job.pk, "unsupported", "modality CT is not MR")
    jobs.end(job.pk, "failed", "late failure must not overwrite")
    job.refresh_from_db()
    assert (job.status, job.error) == ("unsupported", "modality CT is not MR")
    with pytest.raises(jobs.InvalidTransition):
        jobs.end(job.pk, "succeeded", "")


@pytest.mark.django_db
def test_queue_job_answers_503_when_redis_is_down(client_for, users, monkeypatch):
    study = Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.999.2")
    monkeypatch.setattr(celery, "broker_available", lambda: False)
    response = client_for("admin").post(f"/api/studies/{study.study_instance_uid}/jobs")
    assert response.status_code == 503 and response.json()["service"] == "Redis"
    assert not InferenceJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_job_created_while_broker_down_is_dispatched_later(active_model, monkeypatch):
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    study = Study.objects.create(study_instance_uid="1.2.826.0.1.3680043.10.999.3")
    monkeypatch.setattr(celery.app, "send_task", broker_down)
    job = jobs.create_job(study)
    job.refresh_from_db()
    assert job.status == "queued" and job.dispatched_at is None
    monkeypatch.undo()
    assert jobs.dispatch_pending() == 1
    job.refresh_from_db()
    assert job.dispatched_at is not None


def _upload_study(client_for, phantom_files, upload, seed):
    response = upload(client_for("admin"), phantom_files(seed=seed))
    assert response.status_code == 201, response.content
    return InferenceJob.objects.get(study__study_instance_uid=response.json()["studies"][0]["study_instance_uid"])


@pytest.mark.django_db(transaction=True)
def test_worker_runs_job_to_one_result(active_model, users, client_for, phantom_files, upload, start_worker,
                                       wait_until):
    job = _upload_study(client_for, phantom_files, upload, seed=401)
    start_worker("w1")
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).status in InferenceJob.TERMINAL, timeout=120,
               what="job to finish")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.attempts == 1 and job.model_version == active_model
    result = InferenceResult.objects.get(job=job)
    assert result.data["model_name"] == active_model.name
    assert set(job.timings) >= {"fetch_s", "analyze_s", "total_s"}


@pytest.mark.django_db(transaction=True)
def test_non_mr_study_ends_unsupported_with_reason(active_model, users, client_for, upload, testdata_file,
                                                   start_worker, wait_until):
    response = upload(client_for("admin"), [("CT_small.dcm", testdata_file("CT_small.dcm"))])
    assert response.status_code == 201
    job = InferenceJob.objects.get(study__study_instance_uid=response.json()["studies"][0]["study_instance_uid"])
    start_worker("w1")
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).status in InferenceJob.TERMINAL, timeout=120)
    job.refresh_from_db()
    assert job.status == "unsupported"
    assert job.error == "modality CT is not MR; SpineAgent reads spine MRI"


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_job_is_redelivered_and_finishes_once(active_model, users, client_for, phantom_files,
                                                                 upload, start_worker, wait_until):
    """SIGSTOP the worker while the job is running, then SIGKILL it: a second worker must finish the job."""
    for attempt in range(5):
        job = _upload_study(client_for, phantom_files, upload, seed=410 + attempt)
        first = start_worker(f"victim{attempt}")
        wait_until(lambda: InferenceJob.objects.get(pk=job.pk).status != "queued", timeout=120,
                   what="first worker to take the job")
        first.signal(signal.SIGSTOP)
        if InferenceJob.objects.get(pk=job.pk).status == "running":
            break  # frozen mid-job: the case under test
        first.stop()  # finished before we froze it; try again with a fresh study
    else:
        pytest.fail("could not catch a worker mid-job in 5 tries")
    first.signal(signal.SIGKILL)
    first.process.wait()
    start_worker("rescuer")
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).status in InferenceJob.TERMINAL, timeout=120,
               what="redelivered job to finish")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    assert InferenceResult.objects.filter(job=job).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_cropped_stack_is_counted_on_the_studys_localizer(active_model, users, client_for, phantom_files, upload,
                                                           start_worker, wait_until):
    """Through the front door (upload, Orthanc, worker): the worker fetches the sagittal localizer for
    counting only, the draft names levels counted on it and says so, and the localizer is not read."""
    files = phantom_files(7, CROP_INDEX, acquisition="varied", include_axial=False, other_sequence_probability=0.5,
                          localizer_probability=1.0)
    response = upload(client_for("admin"), files)
    assert response.status_code == 201, response.content
    job = InferenceJob.objects.get(study__study_instance_uid=response.json()["studies"][0]["study_instance_uid"])
    start_worker("w1")
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).status in InferenceJob.TERMINAL, timeout=120,
               what="job to finish")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    data = InferenceResult.objects.get(job=job).data
    check = data["spine_check"]
    assert check["counted_on"] and check["counted_on_name"].endswith("(series 1)") and not check["count_conflict"]
    assert check["counted_on"] not in {s["series_instance_uid"] for s in data["series"]}  # fetched, not read
    assert all(d["level"] for d in check["discs"]) and data["coverage"]
    assert f"(levels counted on {check['counted_on_name']})" in data["draft_text"]
    study_uid = response.json()["studies"][0]["study_instance_uid"]
    shown = client_for("radiologist").get(f"/api/studies/{study_uid}/report").json()["result"]
    assert shown["levels_note"] == f"levels counted on {check['counted_on_name']}"  # the panel's line
