"""Honest panel and worklist states in headless Chromium (issue 22 item 6, issue 18 item 9), on the whole stack.

Two studies besides the usual phantom: one whose analysis failed (the job ended through the real state machine
before any worker ran it, as an outage that outlasted the retries would end it) and one that is not a spine MRI
(a phantom whose BodyPartExamined says KNEE, analysed by a real worker, which ends it "unsupported"). The browser
part is review_states.mjs; it compares every state on screen with the API.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from .test_review_flow import ARTIFACTS, CHROMIUM, DOC_IMAGES, ROOT, _require_browser_stack

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]

OUT = ARTIFACTS.parent / "e2e-states"
KEY_SCREENSHOTS = ["01-worklist-states", "02-panel-failed", "03-panel-unsupported", "04-panel-after-retry",
                   "05-signed-elsewhere", "06-study-not-found"]
FAILED_REASON = "Orthanc stayed unavailable after 3 attempts (e2e: the analysis was ended as an outage ends it)"


def _as_knee(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The same phantom with new UIDs and BodyPartExamined KNEE: a sagittal MR that is not a spine."""
    import pydicom
    from pydicom.uid import generate_uid

    study, series = generate_uid(), {}
    out = []
    for name, data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series.setdefault(ds.SeriesInstanceUID, generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.BodyPartExamined = "KNEE"
        ds.StudyDescription = "MR KNEE"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append((name, buffer.getvalue()))
    return out


@pytest.fixture
def failed_and_unsupported(live_server, users, client_for, upload, phantom_files, active_model, start_worker,
                           wait_until):
    """(uid of a study whose analysis failed, uid of a knee MR found unsupported by a real worker)."""
    from backend.inference import jobs
    from backend.inference.models import InferenceJob

    admin = client_for("admin")
    # Failed: uploaded (its job queued) before any worker runs; the job is ended through the state machine.
    response = upload(admin, phantom_files(1, 2))
    assert response.status_code in (200, 201), response.content[:500]
    failed_uid = response.json()["studies"][0]["study_instance_uid"]
    job = InferenceJob.objects.get(study__study_instance_uid=failed_uid)
    jobs.start(job.pk, worker="e2e")
    jobs.end(job.pk, InferenceJob.FAILED, FAILED_REASON)
    start_worker()  # takes the failed job's message and drops it (terminal), then runs the knee study
    response = upload(admin, _as_knee(phantom_files(1, 3)))
    assert response.status_code in (200, 201), response.content[:500]
    knee_uid = response.json()["studies"][0]["study_instance_uid"]
    wait_until(lambda: InferenceJob.objects.filter(study__study_instance_uid=knee_uid,
                                                   status__in=InferenceJob.TERMINAL).exists(),
               timeout=300, what="the knee study's job")
    knee = InferenceJob.objects.get(study__study_instance_uid=knee_uid)
    assert knee.status == InferenceJob.UNSUPPORTED, (knee.status, knee.error)
    return failed_uid, knee_uid


def test_failed_and_unsupported_studies_say_why_and_offer_what_fits(live_server, failed_and_unsupported, password):
    from backend.audit.models import AuditEvent
    from backend.inference.models import InferenceJob
    from backend.reports.models import Report

    _require_browser_stack()
    failed_uid, knee_uid = failed_and_unsupported
    env = dict(os.environ, BASE_URL=live_server.url, FAILED_UID=failed_uid, UNSUPPORTED_UID=knee_uid,
               OUT_DIR=str(OUT), RADIOLOGIST=f"radiologist:{password}", ADMIN=f"admin:{password}", CHROMIUM=CHROMIUM)
    run = subprocess.run(["node", str(Path(__file__).with_name("review_states.mjs"))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"review_states.mjs printed no JSON (exit {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(report, indent=2))
    assert run.returncode == 0 and report["ok"], json.dumps(report, indent=2)[:6000]
    steps = {s["name"]: s for s in report["steps"]}

    # A final state is not polled: no /state request and no audit row while the panel sat open.
    assert steps["radiologist: failed study"]["state_requests_while_open"] == 0
    assert steps["radiologist: failed study"]["audit_rows_while_open"] == 0
    # The retry was followed by polling, which stopped once the analysis was final.
    retry = steps["admin: retry the failed analysis"]
    assert retry["state_requests"] > 0 or retry["final_at_first_load"], retry  # polled while it could change
    assert retry["state_requests_after_final"] == 0
    assert InferenceJob.objects.filter(study__study_instance_uid=failed_uid).latest("created_at").status == "succeeded"
    # The knee study was reported from scratch, explicitly, and signed without a RADPEER score.
    knee_report = Report.objects.get(study__study_instance_uid=knee_uid)
    assert knee_report.status == "signed" and knee_report.radpeer_score == ""
    assert not knee_report.versions.filter(source="ai").exists()
    # Signed from a second tab while typing: the typed text became an addendum, nothing was lost.
    failed_report = Report.objects.get(study__study_instance_uid=failed_uid)
    assert failed_report.status == "signed"
    assert failed_report.versions.filter(source="addendum", text__contains="Typed while it was signed.").exists()
    bogus = steps["a study UID that does not exist"]["bogus"]
    unexpected = [r for r in report["failedRequests"] if " 409 " not in r and bogus not in r]
    assert unexpected == [], unexpected
    assert report["csp"] == [], report["csp"]
    views = AuditEvent.objects.filter(target_type="report", target_id=failed_uid, action=AuditEvent.VIEW).count()
    assert views < 40, views  # reloads after real changes only (one per open, save, sign), never per poll
    if os.environ.get("SPINEAGENT_DOC_SCREENSHOTS") == "1":
        from PIL import Image

        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        for name in KEY_SCREENSHOTS:  # as JPEG for docs/review.md, named states-*
            Image.open(OUT / f"{name}.png").convert("RGB").save(DOC_IMAGES / f"states-{name}.jpg", quality=82)
