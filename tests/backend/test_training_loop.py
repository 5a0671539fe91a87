"""Issue 7's full loop on phantom reports, with real services (Orthanc, PostgreSQL, Redis, one Celery worker):

upload phantom studies -> inference with the shipped bundle stores case embeddings -> the phantoms' own
report texts become label tasks (rule extraction) -> an annotator verifies them -> snapshot a dataset
version -> retrain on the ``training`` queue -> candidate metrics -> the admin promotes through the API ->
the next job on a study runs on the candidate, with no worker restart.

Everything here is SYNTHETIC (phantom studies, phantom-trained base model); the numbers only show the
pipeline works, not that the model is any good.
"""

from __future__ import annotations

import pytest
import spine_phantom

from backend.annotations import services as annotations
from backend.annotations.models import LabelTask
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.training import datasets
from backend.training.models import TrainingRun
from spinefm.bundle import read_manifest

PHANTOM_SEED, N_STUDIES = 71, 6
RATIOS = {"train": 0.5, "val": 0.0, "test": 0.5}


@pytest.fixture
def loop_worker(data_dir, start_worker):
    """One worker for everything: inference jobs and the training run."""
    return start_worker("loop", queues="inference,default,training")


def split_seed(groups: list[str]) -> int:
    """The first split seed putting at least two patients in train and two in test (splits are seeded hashes)."""
    for seed in range(1000):
        splits = [datasets.split_of(g, seed, RATIOS) for g in groups]
        if splits.count("train") >= 2 and splits.count("test") >= 2:
            return seed
    raise AssertionError("no seed splits these patients")


def test_full_loop_on_phantom_reports(loop_worker, data_dir, active_model, users, client_for, phantom_files,
                                      upload, wait_until):
    admin, annotator = client_for("admin"), client_for("annotator")
    phantoms = [spine_phantom.generate_study(seed=PHANTOM_SEED, index=i) for i in range(N_STUDIES)]

    # 1. Upload; each new study queues one automatic job, which the worker runs with the shipped bundle.
    for i in range(N_STUDIES):
        r = upload(admin, phantom_files(PHANTOM_SEED, i))
        assert r.status_code == 201, r.content
    uids = [p.study_instance_uid for p in phantoms]
    wait_until(lambda: InferenceJob.objects.filter(study__study_instance_uid__in=uids,
                                                   status=InferenceJob.SUCCEEDED).count() == N_STUDIES,
               timeout=240, what="inference on the phantom studies")
    results = InferenceResult.objects.filter(study__study_instance_uid__in=uids)
    assert {r.model_version_id for r in results} == {active_model.pk}
    assert all(len(r.data["embedding"]) == 128 for r in results)

    # 2. Extract: the phantoms' own reports become label tasks; the rule labeler suggests labels.
    tasks = []
    for p in phantoms:
        task, created = annotations.create_task(study_instance_uid=p.study_instance_uid,
                                                text=p.truth["report"]["text"], source=LabelTask.IMPORTED)
        assert created and task.extractions.exists() and task.patient_id == p.patient_id
        tasks.append(task)

    # 3. Verify: the annotator submits the labels through the API (here the phantom's ground truth).
    for task, p in zip(tasks, phantoms):
        r = annotator.post(f"/api/annotations/tasks/{task.pk}/annotations", {"labels": p.truth["labels"]},
                           format="json")
        assert r.status_code == 201, r.content
        assert r.json()["task_status"] == LabelTask.DONE

    # 4. Snapshot, split by patient.
    seed = split_seed([datasets.split_group(p.patient_id, p.study_instance_uid) for p in phantoms])
    r = admin.post("/api/training/datasets/", {"name": "phantom-loop", "seed": seed, "ratios": RATIOS}, format="json")
    assert r.status_code == 201, r.content
    ds = r.json()
    assert ds["counts"]["items"] == N_STUDIES and ds["synthetic"] and ds["label"].startswith("SYNTHETIC")

    # 5. Retrain on the training queue.
    r = admin.post("/api/training/runs/", {"dataset": ds["id"], "options": {"n_boot": 20}}, format="json")
    assert r.status_code == 201, r.content
    run_id = r.json()["id"]
    wait_until(lambda: TrainingRun.objects.get(pk=run_id).status in (TrainingRun.SUCCEEDED, TrainingRun.FAILED),
               timeout=180, what="the training run")
    run = admin.get(f"/api/training/runs/{run_id}/").json()
    assert run["status"] == "succeeded", run["error"]

    # 6. Candidate metrics, next to the active version's on the same test split.
    metrics = run["metrics"]
    assert metrics["n_skipped"] == 0 and metrics["n_test"] >= 2 and metrics["label"].startswith("SYNTHETIC")
    assert set(metrics["candidate"]["per_condition"]) == set(read_manifest(active_model.path)["conditions"])
    candidate = ModelVersion.objects.get(pk=run["candidate"]["id"])
    assert candidate.state == ModelVersion.CANDIDATE and candidate.synthetic_training
    assert candidate.metrics["candidate"] == metrics["candidate"]
    cmp = admin.get(f"/api/training/runs/{run_id}/comparison")
    assert cmp.status_code == 200 and cmp.json()["active"]["id"] == active_model.pk
    assert [r["condition"] for r in cmp.json()["conditions"]] == read_manifest(candidate.path)["conditions"]

    # 7. Promote through the API: the generic endpoint sends a run's candidate to its run, where the promotion
    # gate applies (a failed gate needs a written reason).
    r = admin.post(f"/api/model-versions/{candidate.pk}/promote")
    assert r.status_code == 409 and r.json()["training_run"] == run_id
    gate = admin.get(f"/api/training/runs/{run_id}/gate").json()["gate"]
    body = {} if gate["passed"] else {"reason": "end-to-end test on synthetic phantoms"}
    r = admin.post(f"/api/training/runs/{run_id}/promote", body, format="json")
    assert r.status_code == 200 and r.json()["candidate"]["state"] == "active"
    assert r.json()["decision"]["gate"]["override"] is (not gate["passed"])
    active_model.refresh_from_db()
    assert active_model.state == ModelVersion.RETIRED

    # 8. The next job, on the same (still running) worker, uses the candidate.
    r = admin.post(f"/api/studies/{uids[0]}/jobs")
    assert r.status_code == 201, r.content
    job_id = r.json()["id"]
    wait_until(lambda: InferenceJob.objects.get(pk=job_id).status in InferenceJob.TERMINAL, timeout=120,
               what="the job after promotion")
    job = InferenceJob.objects.get(pk=job_id)
    assert job.status == InferenceJob.SUCCEEDED, job.error
    result = InferenceResult.objects.get(job=job)
    assert result.model_version_id == candidate.pk
    assert result.data["model_version"] == candidate.version and result.data["synthetic_training"] is True
