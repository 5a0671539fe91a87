"""The admin's training screens in headless Chromium against the live server, with a real Celery worker on
the ``training`` queue: snapshot, start a run, follow progress and log, comparison and gate as the API has
them, promote with an override reason; and the browsable API's POST form, styled and CSRF-safe. Browser part: training_flow.mjs. Screenshots: test-artifacts/e2e-training/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e-training"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def verified_cases(model, n: int = 48) -> None:
    """Analysed studies with verified labels that the embedding decides (the retrained heads can learn)."""
    from backend.annotations.models import LabelTask, VerifiedLabels
    from backend.inference.models import InferenceJob, InferenceResult
    from backend.studies.models import Study
    from spinefm.conditions import CONDITIONS

    keys = [c.key for c in CONDITIONS]
    directions = np.random.default_rng(7).standard_normal((len(keys), 4))
    for i in range(n):
        rng = np.random.default_rng(1000 + i)
        signal = rng.standard_normal(4)
        z = np.concatenate([signal, 0.05 * rng.standard_normal(124)])
        uid = f"1.2.826.0.1.3680043.10.999.80.{i}"
        study = Study.objects.create(study_instance_uid=uid, patient_id=f"TB{i:03d}", modalities="MR")
        job = InferenceJob.objects.create(study=study, model_version=model, status=InferenceJob.SUCCEEDED)
        InferenceResult.objects.create(job=job, study=study, model_version=model,
                                       data={"embedding": (z / np.linalg.norm(z)).round(6).tolist()})
        task = LabelTask.objects.create(study=study, study_instance_uid=uid, patient_id=study.patient_id,
                                        source=LabelTask.IMPORTED, text=f"report {i}", text_sha256=f"{i:064d}",
                                        status=LabelTask.DONE)
        VerifiedLabels.objects.create(task=task, method=VerifiedLabels.SINGLE,
                                      labels={k: int(signal @ directions[j] > 0) for j, k in enumerate(keys)})


@pytest.fixture
def data_dir(monkeypatch, settings, tmp_path):
    """SPINEAGENT_DATA_DIR in this test's tmp dir: set before start_worker copies the environment."""
    path = tmp_path / "data"
    monkeypatch.setenv("SPINEAGENT_DATA_DIR", str(path))
    settings.DATA_DIR = path
    return path


def test_admin_retrains_and_promotes_in_the_browser(data_dir, live_server, users, password, active_model,
                                                    start_worker):
    from backend.audit.models import AuditEvent
    from backend.inference.models import ModelVersion
    from backend.training.models import TrainingRun

    if not (ROOT / "ohif-extension" / "node_modules" / "playwright-core").is_dir() or not Path(CHROMIUM).exists() \
            or not shutil.which("node"):
        pytest.fail("browser tests need playwright-core (scripts/build_viewer.sh), Chromium and node")
    verified_cases(active_model)
    start_worker("trainer", queues="training")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    env = dict(os.environ, BASE_URL=live_server.url, ADMIN=f"admin:{password}", OUT_DIR=str(ARTIFACTS),
               CHROMIUM=CHROMIUM)
    run = subprocess.run(["node", str(Path(__file__).with_name("training_flow.mjs"))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=420)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"training_flow.mjs printed no JSON (exit {run.returncode}):\n{run.stdout[-2000:]}\n"
                    f"{run.stderr[-2000:]}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.json").write_text(json.dumps(report, indent=2))
    assert run.returncode == 0 and report["ok"], json.dumps(report, indent=2)[:6000]
    assert report["csp"] == [], report["csp"]
    # The refused snapshot (a 400 the page showed) is the only failed request.
    assert [f for f in report["failedRequests"] if "/api/training/datasets/" not in f] == [], report["failedRequests"]

    [tr] = TrainingRun.objects.select_related("candidate").all()
    assert tr.candidate.path.startswith(str(data_dir))
    assert tr.decision == "promoted" and tr.decision_reason == "browser test: synthetic phantoms, reviewed"
    assert tr.candidate.state == ModelVersion.ACTIVE
    active_model.refresh_from_db()
    assert active_model.state == ModelVersion.RETIRED
    event = AuditEvent.objects.get(target_type="training-run", target_id=str(tr.pk))
    assert event.username == "admin" and event.detail["decision"] == "promote"
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["start run and follow it"]["log_lines"] >= 5
    # bootstrap.min.css fixes the navbar; without the static files it would be a plain (static) block
    assert steps["browsable API form"]["status"] == 201 and steps["browsable API form"]["navbar_position"] == "fixed"
