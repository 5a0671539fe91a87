"""Training runs on a real Celery worker consuming the ``training`` queue: candidate registered, bundle loads,
metrics and comparison served; failures recorded; bad requests refused with clear JSON."""

from __future__ import annotations

import numpy as np
import pytest

from backend.annotations.models import LabelTask, VerifiedLabels
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.studies.models import Study
from backend.training import datasets
from backend.training.models import TrainingRun
from spinefm.bundle import load_bundle, read_manifest
from spinefm.conditions import CONDITIONS

KEYS = [c.key for c in CONDITIONS]
DIM = 128


@pytest.fixture
def training_worker(data_dir, start_worker):
    return start_worker("trainer", queues="training")


def separable_case(i: int) -> tuple[list[float], dict]:
    """Embedding whose first 4 coordinates decide every label (each condition its own direction)."""
    rng = np.random.default_rng(1000 + i)
    signal = rng.standard_normal(4)
    z = np.concatenate([signal, 0.05 * rng.standard_normal(DIM - 4)])
    z /= np.linalg.norm(z)
    directions = np.random.default_rng(7).standard_normal((len(KEYS), 4))
    return z.round(6).tolist(), {k: int(signal @ directions[j] > 0) for j, k in enumerate(KEYS)}


def make_case(i: int, model: ModelVersion | None, with_embedding: bool = True) -> None:
    uid = f"1.2.826.0.1.3680043.10.999.77.{i}"
    study = Study.objects.create(study_instance_uid=uid, patient_id=f"TP{i:03d}", modalities="MR")
    emb, labels = separable_case(i)
    if with_embedding:
        job = InferenceJob.objects.create(study=study, model_version=model, status=InferenceJob.SUCCEEDED)
        InferenceResult.objects.create(job=job, study=study, model_version=model, data={"embedding": emb})
    task = LabelTask.objects.create(study=study, study_instance_uid=uid, patient_id=study.patient_id,
                                    source=LabelTask.IMPORTED, text=f"report {i}", text_sha256=f"{i:064d}",
                                    status=LabelTask.DONE)
    VerifiedLabels.objects.create(task=task, labels=labels, method=VerifiedLabels.SINGLE)


def wait_run(wait_until, pk: int, timeout: float = 120) -> TrainingRun:
    wait_until(lambda: TrainingRun.objects.get(pk=pk).status in (TrainingRun.SUCCEEDED, TrainingRun.FAILED),
               timeout=timeout, what=f"training run {pk} to finish")
    return TrainingRun.objects.select_related("candidate").get(pk=pk)


def test_run_on_worker_registers_a_loadable_candidate(training_worker, data_dir, active_model, client_for,
                                                      wait_until):
    for i in range(48):
        make_case(i, active_model)
    make_case(99, None, with_embedding=False)  # labelled, never analysed: must be reported as skipped
    ds = datasets.snapshot("runs", ratios={"train": 0.5, "val": 0.1, "test": 0.4})
    admin = client_for("admin")

    r = admin.post("/api/training/runs/", {"dataset": ds.pk, "options": {"steps": 150, "n_boot": 20}}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["status"] == "queued" and r.json()["base_model"]["id"] == active_model.pk
    run = wait_run(wait_until, r.json()["id"])
    assert run.status == TrainingRun.SUCCEEDED, run.error

    detail = admin.get(f"/api/training/runs/{run.pk}/").json()
    assert (detail["progress"], detail["stage"]) == (100, "succeeded")
    candidate = ModelVersion.objects.get(pk=detail["candidate"]["id"])
    assert candidate.state == ModelVersion.CANDIDATE and candidate.version == f"{active_model.version}-r{run.pk}"
    assert candidate.synthetic_training  # derived from the phantom-trained default bundle
    assert candidate.path.startswith(str(data_dir / "bundles"))
    bundle = load_bundle(candidate.path)
    assert bundle.manifest["derived_from"]["version"] == active_model.version
    assert bundle.manifest["dataset"]["sha256"] == ds.sha256
    assert candidate.metrics["candidate"] == run.metrics["candidate"]

    m = run.metrics
    assert m["n_skipped"] == 1 and m["skipped"][0]["study_instance_uid"].endswith(".99")
    assert m["n_train"] + m["n_val"] + m["n_test"] == 48
    # The shipped heads never saw these directions; retrained ones separate them on held-out patients.
    assert m["candidate"]["mean_auroc"] > 0.8 > m["base"]["mean_auroc"] + 0.1

    cmp = admin.get(f"/api/training/runs/{run.pk}/comparison").json()
    assert cmp["active"]["id"] == active_model.pk and cmp["candidate"]["id"] == candidate.pk
    assert cmp["mean_auroc"] == {"candidate": m["candidate"]["mean_auroc"], "active": m["base"]["mean_auroc"]}
    row = {r["condition"]: r for r in cmp["conditions"]}[KEYS[0]]
    assert row["candidate"]["auroc"] is not None and row["active"]["n"] == row["candidate"]["n"]
    assert row["delta_auroc"] == pytest.approx(row["candidate"]["auroc"] - row["active"]["auroc"])
    # operating points: the candidate's from its val split (about 5 cases here: too few to validate any
    # condition, so it would call nothing), the active bundle's from its own held-out studies
    assert cmp["validated_conditions"]["candidate"] == [] and row["validated"]["candidate"] is False
    active_points = read_manifest(active_model.path).get("operating_points")
    expected = None if not active_points else [p["condition"] for p in active_points["points"] if p["validated"]]
    assert cmp["validated_conditions"]["active"] == expected
    assert cmp["candidate_calls_test"]["n_cases"] == m["n_test"] and cmp["candidate_calls_test"]["asserted_true"] == 0

    # Nothing to train on: the run fails, says why, and registers nothing.
    VerifiedLabels.objects.exclude(task__study_instance_uid__endswith=".99").delete()
    unembedded = datasets.snapshot("unembedded")
    r = admin.post("/api/training/runs/", {"dataset": unembedded.pk}, format="json")
    failed = wait_run(wait_until, r.json()["id"])
    assert failed.status == TrainingRun.FAILED and failed.candidate is None
    assert "no cases with a stored embedding" in failed.error
    c = admin.get(f"/api/training/runs/{failed.pk}/comparison")
    assert c.status_code == 409 and c.json()["status"] == "failed"
    assert ModelVersion.objects.count() == 2


def test_start_run_refuses_bad_requests(db, active_model, client_for):
    make_case(1, active_model)
    ds = datasets.snapshot("bad")
    placeholder = ModelVersion.objects.create(name="no-findings-placeholder", version="0", path="builtin:no-findings")
    admin = client_for("admin")
    cases = [
        ({"dataset": 999999}, 400, "dataset"),
        ({"dataset": "x"}, 400, "dataset"),
        ({}, 400, "dataset"),
        ({"dataset": ds.pk, "options": {"steps": 0}}, 400, "options.steps"),
        ({"dataset": ds.pk, "options": {"epochs": 3}}, 400, "options"),
        ({"dataset": ds.pk, "options": {"lr": True}}, 400, "options.lr"),
        ({"dataset": ds.pk, "base_model": placeholder.pk}, 409, "base_model"),
    ]
    for body, code, field in cases:
        r = admin.post("/api/training/runs/", body, format="json")
        assert (r.status_code, r.json().get("field")) == (code, field), (body, r.json())
    assert TrainingRun.objects.count() == 0
    active_model.state = ModelVersion.RETIRED
    active_model.save()
    r = admin.post("/api/training/runs/", {"dataset": ds.pk}, format="json")
    assert r.status_code == 409 and "no active model version" in r.json()["detail"]
    assert client_for("radiologist").post("/api/training/runs/", {"dataset": ds.pk}, format="json").status_code == 403
