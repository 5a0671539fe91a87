"""The promotion gate (candidate vs active on the run's held-out test split), promote / override / reject
through the API, each audited; the run's log; and the run page that shows all of it.

Runs execute in-process (``runs.execute``, the Celery task's body) on real embeddings and the shipped bundle;
the worker path itself is covered by test_training_runs.py."""

from __future__ import annotations

import numpy as np
import pytest

from backend.annotations.models import LabelTask, VerifiedLabels
from backend.audit.models import AuditEvent
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.studies.models import Study
from backend.training import datasets, promotion, runs
from backend.training.models import TrainingRun
from spinefm.bundle import read_manifest
from spinefm.conditions import CONDITIONS

KEYS = [c.key for c in CONDITIONS]
DIM = 128


def make_case(i: int, model: ModelVersion) -> None:
    """A verified, analysed study whose embedding's first 4 coordinates decide every label (as in
    test_training_runs.py, which --import-mode=importlib keeps us from importing)."""
    rng = np.random.default_rng(1000 + i)
    signal = rng.standard_normal(4)
    z = np.concatenate([signal, 0.05 * rng.standard_normal(DIM - 4)])
    z /= np.linalg.norm(z)
    directions = np.random.default_rng(7).standard_normal((len(KEYS), 4))
    labels = {k: int(signal @ directions[j] > 0) for j, k in enumerate(KEYS)}
    uid = f"1.2.826.0.1.3680043.10.999.78.{i}"
    study = Study.objects.create(study_instance_uid=uid, patient_id=f"TQ{i:03d}", modalities="MR")
    job = InferenceJob.objects.create(study=study, model_version=model, status=InferenceJob.SUCCEEDED)
    InferenceResult.objects.create(job=job, study=study, model_version=model, data={"embedding": z.round(6).tolist()})
    task = LabelTask.objects.create(study=study, study_instance_uid=uid, patient_id=study.patient_id,
                                    source=LabelTask.IMPORTED, text=f"report {i}", text_sha256=f"{i:064d}",
                                    status=LabelTask.DONE)
    VerifiedLabels.objects.create(task=task, labels=labels, method=VerifiedLabels.SINGLE)

OPTIONS = {"steps": 150, "n_boot": 20}


def executed_run(ds, base: ModelVersion, user=None) -> TrainingRun:
    run = TrainingRun.objects.create(dataset=ds, base_model=base, options=runs.parse_options(OPTIONS),
                                     started_by=user)
    assert runs.execute(run.pk) == TrainingRun.SUCCEEDED, TrainingRun.objects.get(pk=run.pk).error
    return TrainingRun.objects.select_related("candidate").get(pk=run.pk)


# ---- the gate on its own (one function, comparison dicts written out) -------------------------------------------

def metrics(auroc, lo):
    return {"auroc": auroc, "auroc_ci95": [lo, None], "n": 20, "n_pos": 8}


def comparison(rows, active_id=1, candidate_id=2, source="the run's base model"):
    return {"active": {"id": active_id}, "candidate": {"id": candidate_id}, "active_metrics_source": source,
            "conditions": [{"condition": c, "candidate": cand, "active": act,
                            "validated": {"candidate": vc, "active": va}}
                           for c, cand, act, vc, va in rows]}


def test_gate_passes_a_candidate_not_worse_anywhere():
    g = promotion.gate(comparison([("canal", metrics(0.9, 0.8), metrics(0.85, 0.7), True, True),
                                   ("fracture", metrics(0.7, 0.6), metrics(0.7, 0.6), False, False)]))
    assert g["passed"] and g["reasons"] == [] and g["validated"] == ["canal"]
    assert g["mean_auroc_lower"] == {"candidate": pytest.approx(0.7), "active": pytest.approx(0.65),
                                     "conditions": 2}


def test_gate_refuses_a_worse_mean_lower_bound_even_with_a_better_point_estimate():
    g = promotion.gate(comparison([("canal", metrics(0.95, 0.55), metrics(0.9, 0.7), False, False)]))
    assert not g["passed"] and g["reasons"] == ["mean AUROC lower bound 0.550 < active 0.700 (over 1 conditions)"]


def test_gate_refuses_a_worse_validated_condition_when_the_mean_is_better():
    g = promotion.gate(comparison([("canal", metrics(0.99, 0.95), metrics(0.6, 0.5), False, False),
                                   ("fracture", metrics(0.8, 0.69), metrics(0.8, 0.7), True, True)]))
    assert not g["passed"] and g["reasons"] == ["fracture: AUROC lower bound 0.690 < active 0.700"]
    # the same drop on a condition neither version validates does not block
    g = promotion.gate(comparison([("canal", metrics(0.99, 0.95), metrics(0.6, 0.5), False, False),
                                   ("fracture", metrics(0.8, 0.69), metrics(0.8, 0.7), False, False)]))
    assert g["passed"]


def test_gate_refuses_losing_a_validated_condition_and_an_unscorable_active_version():
    g = promotion.gate(comparison([("canal", metrics(0.9, 0.8), metrics(0.8, 0.7), False, True)]))
    assert not g["passed"] and "validated for the active version, not for the candidate" in g["reasons"][0]
    g = promotion.gate(comparison([("canal", metrics(0.9, 0.8), None, True, None)], source="embeds differently"))
    assert not g["passed"] and "could not be scored" in g["reasons"][0] and "embeds differently" in g["reasons"][0]
    # no bootstrap (n_boot 0): the point AUROC stands in for the lower bound
    g = promotion.gate(comparison([("canal", {"auroc": 0.6, "auroc_ci95": [None, None]}, metrics(0.9, 0.7),
                                    False, False)]))
    assert not g["passed"] and "0.600 < active 0.700" in g["reasons"][0]
    assert promotion.gate({**comparison([]), "active": None})["passed"]


# ---- through the API, on real runs ------------------------------------------------------------------------------

def test_promotion_gate_override_and_rejection(data_dir, active_model, users, client_for):
    for i in range(48):
        make_case(i, active_model)
    ds = datasets.snapshot("gate", ratios={"train": 0.5, "val": 0.1, "test": 0.4})
    admin = client_for("admin")
    run = executed_run(ds, active_model, users["admin"])
    assert "training diagnosis heads" in run.log and run.log.rstrip().endswith(
        f"succeeded: candidate {run.candidate.name} {run.candidate.version}")
    assert admin.get(f"/api/training/runs/{run.pk}/").json()["log"] == run.log

    # The shipped bundle validates conditions on its own held-out studies; the candidate's val split (about 5
    # cases) validates none, so it would stop calling them: the gate refuses.
    validated_by_active = [p["condition"] for p in read_manifest(active_model.path)["operating_points"]["points"]
                           if p["validated"]]
    assert validated_by_active
    g = admin.get(f"/api/training/runs/{run.pk}/gate").json()
    assert g["gate"]["passed"] is False and g["comparison"]["active"]["id"] == active_model.pk
    assert {r.split(":")[0] for r in g["gate"]["reasons"] if "not for the candidate" in r} == set(validated_by_active)

    # Refused without a reason: nothing changes.
    for role in ("radiologist", "annotator"):
        assert client_for(role).post(f"/api/training/runs/{run.pk}/promote", {}, format="json").status_code == 403
    assert client_for(None).post(f"/api/training/runs/{run.pk}/promote", {}, format="json").status_code in (401, 403)
    r = admin.post(f"/api/training/runs/{run.pk}/promote", {}, format="json")
    assert r.status_code == 409 and r.json()["gate"]["reasons"] == g["gate"]["reasons"]
    assert "override" in r.json()["detail"]
    for body, field in (([1], None), ({"reason": 5}, "reason"), ({"reason": "  "}, "reason"),
                        ({"reason": "a\x00b"}, "reason"),
                        ({"reason": "x" * 2001}, "reason")):
        r = admin.post(f"/api/training/runs/{run.pk}/promote", body, format="json")
        assert r.status_code == 400 and r.json().get("field") == field, r.content
    # The generic promote endpoint does not bypass the gate.
    r = admin.post(f"/api/model-versions/{run.candidate_id}/promote")
    assert r.status_code == 409 and r.json()["training_run"] == run.pk
    run.refresh_from_db()
    active_model.refresh_from_db()
    assert active_model.state == ModelVersion.ACTIVE and run.decision == "" and run.candidate.state == "candidate"
    assert not AuditEvent.objects.filter(target_type="training-run", target_id=str(run.pk)).exists()

    # Override with a written reason: promoted, audited with the gate's numbers.
    r = admin.post(f"/api/training/runs/{run.pk}/promote", {"reason": "reviewed: synthetic demo"}, format="json")
    assert r.status_code == 200, r.content
    d = r.json()["decision"]
    assert d["decision"] == "promoted" and d["reason"] == "reviewed: synthetic demo" and d["by"] == "admin"
    assert d["gate"]["override"] is True and d["gate"]["reasons"] == g["gate"]["reasons"]
    active_model.refresh_from_db()
    assert active_model.state == ModelVersion.RETIRED
    assert ModelVersion.objects.get(pk=run.candidate_id).state == ModelVersion.ACTIVE
    event = AuditEvent.objects.get(target_type="training-run", target_id=str(run.pk))
    assert event.action == AuditEvent.ADMIN and event.username == "admin"
    assert event.detail["override"] is True and event.detail["reason"] == "reviewed: synthetic demo"
    assert event.detail["previous_active"]["id"] == active_model.pk
    assert admin.post(f"/api/training/runs/{run.pk}/promote", {"reason": "again"}, format="json").status_code == 409

    # Retrained again from the promoted candidate, same data and seed: the same heads, not worse anywhere,
    # so the gate passes and no reason is needed.
    again = executed_run(ds, run.candidate, users["admin"])
    g2 = admin.get(f"/api/training/runs/{again.pk}/gate").json()["gate"]
    assert g2["passed"] is True, g2
    # ... but this one is rejected: a reason is required, the candidate is retired, the rejection audited.
    r = admin.post(f"/api/training/runs/{again.pk}/reject", {}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "reason"
    r = admin.post(f"/api/training/runs/{again.pk}/reject", {"reason": "no gain over the active heads"},
                   format="json")
    assert r.status_code == 200 and r.json()["decision"]["decision"] == "rejected"
    assert ModelVersion.objects.get(pk=again.candidate_id).state == ModelVersion.RETIRED
    assert ModelVersion.objects.get(pk=run.candidate_id).state == ModelVersion.ACTIVE
    event = AuditEvent.objects.get(target_type="training-run", target_id=str(again.pk))
    assert event.detail["decision"] == "reject" and event.detail["reason"] == "no gain over the active heads"
    assert admin.post(f"/api/training/runs/{again.pk}/promote", {}, format="json").status_code == 409
    assert admin.post(f"/api/model-versions/{again.candidate_id}/promote").status_code == 409
    # A version promoted through its run once may be made active again directly (a rollback).
    assert admin.post(f"/api/model-versions/{run.candidate_id}/promote").status_code == 200

    # The run page shows the comparison, the gate and the decision.
    html = admin.get(f"/training/runs/{run.pk}").content.decode()
    assert 'id="comparison"' in html and f'data-condition="{KEYS[0]}"' in html
    assert 'id="gate" class="gate gate-fail"' in html and "(gate overridden)" in html
    assert "reviewed: synthetic demo" in html and 'id="promote-form"' not in html
    # ... as they stood at the decision: not the promoted candidate compared with itself
    assert "already the active version" not in html and "as they stood when the candidate was promoted" in html
    assert TrainingRun.objects.get(pk=run.pk).gate["comparison"]["active"]["id"] == active_model.pk
    html = admin.get(f"/training/runs/{again.pk}").content.decode()
    assert "rejected" in html and "no gain over the active heads" in html


def test_undecided_run_page_offers_promote_and_reject(data_dir, active_model, users, client_for):
    for i in range(48):
        make_case(i, active_model)
    ds = datasets.snapshot("page", ratios={"train": 0.5, "val": 0.1, "test": 0.4})
    run = executed_run(ds, active_model, users["admin"])
    html = client_for("admin").get(f"/training/runs/{run.pk}").content.decode()
    assert 'id="promote-form"' in html and 'id="reject-form"' in html
    assert "Override the gate and promote" in html and 'name="csrfmiddlewaretoken"' in html
    assert f'"promote_url": "/api/training/runs/{run.pk}/promote"' in html
    for line in run.log.splitlines():
        assert line in html


def test_decisions_refused_on_runs_without_a_candidate(db, active_model, users, client_for):
    make_case(1, active_model)
    ds = datasets.snapshot("none")
    run = TrainingRun.objects.create(dataset=ds, base_model=active_model, options=runs.parse_options({}))
    admin = client_for("admin")
    r = admin.post(f"/api/training/runs/{run.pk}/promote", {"reason": "x"}, format="json")
    assert r.status_code == 409 and r.json()["status"] == "queued"
    r = admin.post(f"/api/training/runs/{run.pk}/reject", {"reason": "x"}, format="json")
    assert r.status_code == 409
    assert admin.get(f"/api/training/runs/{run.pk}/gate").status_code == 409
    assert admin.post("/api/training/runs/999999/promote", {}, format="json").status_code == 404
    run.refresh_from_db()
    assert run.decision == "" and not AuditEvent.objects.filter(target_type="training-run").exists()
