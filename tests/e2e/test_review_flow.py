"""The radiologist's review flow in headless Chromium against the whole stack on loopback.

Real services: Orthanc, PostgreSQL, Redis, a Celery worker with the active model, Django (live_server)
serving the prebuilt OHIF viewer, our extension and the APIs. The browser part is review_flow.mjs
(Playwright, npm playwright-core), which prints a JSON report; screenshots go to test-artifacts/e2e/.
SPINEAGENT_DOC_SCREENSHOTS=1 also copies the key ones to docs/img/review/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from backend.inference.analyzers import NO_FINDINGS

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
DOC_IMAGES = ROOT / "docs" / "img" / "review"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SEED, INDEX = 1, 1  # a cervical phantom with three findings
KEY_SCREENSHOTS = ["01-login", "02-worklist", "03-viewer-panel", "04-sentence-link", "05-edited", "06-offline",
                   "07-merge", "08-history", "09-radpeer", "10-signed-addenda", "11-annotator-worklist",
                   "12-annotator-refused"]


def _require_browser_stack():
    missing = []
    if not (ROOT / "var" / "ohif" / "viewer" / "index.html").is_file():
        missing.append("the OHIF viewer (scripts/build_viewer.sh)")
    if not (ROOT / "ohif-extension" / "node_modules" / "playwright-core").is_dir():
        missing.append("npm packages (scripts/build_viewer.sh)")
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if not shutil.which("node"):
        missing.append("node")
    if missing:
        pytest.fail("browser tests need " + ", ".join(missing) + "; scripts/test.sh installs them")


@pytest.fixture
def analysed_study(live_server, users, client_for, upload, phantom_files, active_model, start_worker, wait_until):
    """A phantom study uploaded through the API and analysed by a real worker; its UID."""
    from backend.inference.models import InferenceJob

    start_worker()
    response = upload(client_for("admin"), phantom_files(SEED, INDEX))
    assert response.status_code in (200, 201), response.content[:500]
    [study] = response.json()["studies"]
    uid = study["study_instance_uid"]
    wait_until(lambda: InferenceJob.objects.filter(study__study_instance_uid=uid, status__in=InferenceJob.TERMINAL)
               .exists(), timeout=300, what="the inference job")
    assert InferenceJob.objects.get(study__study_instance_uid=uid).status == InferenceJob.SUCCEEDED
    assert active_model.path != NO_FINDINGS, "the e2e flow runs on the shipped phantom-trained bundle"
    return uid


def test_radiologist_reviews_and_signs_annotator_is_refused(live_server, analysed_study, password):
    _require_browser_stack()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    env = dict(os.environ, BASE_URL=live_server.url, STUDY_UID=analysed_study, OUT_DIR=str(ARTIFACTS),
               RADIOLOGIST=f"radiologist:{password}", ANNOTATOR=f"annotator:{password}", CHROMIUM=CHROMIUM)
    run = subprocess.run(["node", str(Path(__file__).with_name("review_flow.mjs"))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"review_flow.mjs printed no JSON (exit {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    (ARTIFACTS / "report.json").write_text(json.dumps(report, indent=2))
    assert run.returncode == 0 and report["ok"], json.dumps(report, indent=2)[:6000]

    steps = {s["name"]: s for s in report["steps"]}
    assert steps["viewer and panel"]["synthetic_label"] is True
    assert steps["viewer and panel"]["region"]  # the region line is shown (checked against the API in the script)
    # every condition is shown with the bundle's own call and its mark (not validated: a dash)
    from backend.audit.models import AuditEvent
    from backend.inference.models import InferenceResult
    from backend.reports.models import Report

    result = InferenceResult.objects.filter(job__study__study_instance_uid=analysed_study).latest("pk").data
    stored = {c["condition"]: c["status"] for c in result["conditions"]}
    marks = {"present": "●", "possible": "◐", "absent": "○", "not_assessed": "–"}
    calls = steps["viewer and panel"]["calls"]
    assert sorted(c for c, _, _ in calls) == sorted(stored)
    assert all(status == stored[c] and mark == marks[status] for c, status, mark in calls), calls
    assert "not_assessed" in stored.values()  # the shipped bundle validates 5 of 17 conditions
    assert len(steps["opens where the reading starts"]["hung"]) == 2  # T1 | T2
    assert steps["sentences linked to findings"]["links"]
    assert steps["no lost keystrokes"]["prompts"] == ["beforeunload"]
    assert steps["notice acknowledged once per user, back to the worklist"]["notice_shown_again"] is False
    assert steps["annotator is refused"]["report_api"] == 403
    report_row = Report.objects.get(study__study_instance_uid=analysed_study)
    assert report_row.status == "signed" and report_row.versions.filter(source="addendum").count() == 2
    # The analysis was final when the panel opened: it never polled, so it wrote no audit rows by itself.
    assert report["stateRequests"] == 0
    assert AuditEvent.objects.filter(target_type="report", target_id=analysed_study, action="view").exists()
    # The viewer read images only through our gateway: nothing failed but the deliberate 409 and 403s.
    unexpected = [r for r in report["failedRequests"] if not (" 409 " in r or r.startswith("annotator 403"))]
    assert unexpected == [], unexpected
    assert report["csp"] == [], report["csp"]  # the CSP blocked nothing the viewer or the panel needed
    if os.environ.get("SPINEAGENT_DOC_SCREENSHOTS") == "1":
        _copy_to_docs()


def _copy_to_docs() -> None:
    """The key screenshots as JPEG for docs/review.md (a tenth of the PNG size in git)."""
    from PIL import Image

    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    for name in KEY_SCREENSHOTS:
        Image.open(ARTIFACTS / f"{name}.png").convert("RGB").save(DOC_IMAGES / f"{name}.jpg", quality=82)
