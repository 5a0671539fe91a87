"""The QA reviewer's pages in headless Chromium against Django on loopback (live_server), then the reader's
worklist: what the Django test client cannot show (the CSRF form as a browser posts it, the worklist's JS
drawing the marker, no CSP violation). Browser part: qa_flow.mjs. Screenshots: test-artifacts/e2e-qa/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e-qa"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
UID = "1.2.826.0.1.3680043.10.999.95"


def test_reviewer_changes_a_score_and_the_reader_sees_it(live_server, users, password, settings):
    from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
    from backend.qa.models import QACase
    from backend.reports import versions
    from backend.studies.models import Study

    if not (ROOT / "ohif-extension" / "node_modules" / "playwright-core").is_dir() or not Path(CHROMIUM).exists() \
            or not shutil.which("node"):
        pytest.fail("browser tests need playwright-core (scripts/build_viewer.sh), Chromium and node")
    settings.SPINEAGENT_QA_SAMPLE_RATE = 0.0
    reader = users["radiologist"]
    mv = ModelVersion.objects.create(name="phantom-nano", version="0.4", path="builtin:b")
    study = Study.objects.create(study_instance_uid=UID, patient_id="QA1", patient_name="QA^FLOW",
                                 study_description="MRI L-SPINE")
    job = InferenceJob.objects.create(study=study, model_version=mv, status="succeeded")
    draft = {"draft_text": "FINDINGS: L4-L5 herniation.", "draft_backend": "template"}
    result = InferenceResult.objects.create(job=job, study=study, model_version=mv, data=draft)
    versions.add_ai_draft(result)
    versions.mark_opened(study, reader)
    number = versions.save_version(study, reader, "FINDINGS: No herniation.", 0).number
    versions.sign(study, reader, number, "2b", "called a herniation that is not there")  # committed: receivers ran
    case = QACase.objects.get(report__study=study)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    env = dict(os.environ, BASE_URL=live_server.url, CASE_ID=str(case.pk), STUDY_UID=UID, OUT_DIR=str(ARTIFACTS),
               REVIEWER=f"qa_reviewer:{password}", READER=f"radiologist:{password}", CHROMIUM=CHROMIUM)
    run = subprocess.run(["node", str(Path(__file__).with_name("qa_flow.mjs"))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"qa_flow.mjs printed no JSON (exit {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    assert run.returncode == 0 and report["ok"], json.dumps(report, indent=2)[:4000]
    case.refresh_from_db()
    assert (case.status, case.decision, case.reviewed_score, case.review_reason) == (
        "reviewed", "change", "1", "no herniation on the sagittal T2 images")
