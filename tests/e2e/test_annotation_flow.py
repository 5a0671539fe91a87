"""The annotator's verification page in headless Chromium against Django on loopback (live_server).

Covers what the Django test client cannot: the page's JS posts the toggles to the API with the CSRF
token from the form, and the stored verification is exactly what was clicked. Browser part:
annotation_flow.mjs (Playwright, npm playwright-core). Screenshots go to test-artifacts/e2e-annotation/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e-annotation"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TEXT = ("FINDINGS: Mild canal stenosis at L4-L5 <script>alert(1)</script>. No fracture. "
        "Possible pars defect at L5.\nIMPRESSION: Mild canal stenosis at L4-L5.")


def test_annotator_verifies_a_task_in_the_browser(live_server, users, password):
    from backend.annotations import services
    from backend.annotations.models import LabelTask, VerifiedLabels

    if not (ROOT / "ohif-extension" / "node_modules" / "playwright-core").is_dir() or not Path(CHROMIUM).exists() \
            or not shutil.which("node"):
        pytest.fail("browser tests need playwright-core (scripts/build_viewer.sh), Chromium and node")
    task, _ = services.create_task(study_instance_uid="1.2.826.0.1.3680043.10.999.79", text=TEXT,
                                   source=LabelTask.IMPORTED)
    preset = {k: v["value"] for k, v in task.extractions.get().labels["labels"].items()}
    assert preset["par"] == -1 and preset["canal"] == 1
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    env = dict(os.environ, BASE_URL=live_server.url, TASK_ID=str(task.pk), ANNOTATOR=f"annotator:{password}",
               OUT_DIR=str(ARTIFACTS), CHROMIUM=CHROMIUM)
    run = subprocess.run(["node", str(Path(__file__).with_name("annotation_flow.mjs"))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"annotation_flow.mjs printed no JSON (exit {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    assert run.returncode == 0 and report["ok"], json.dumps(report, indent=2)[:4000]
    assert report["csp"] == [], report["csp"]
    verified = VerifiedLabels.objects.get(task=task)
    assert verified.labels == {**preset, "par": 1} and verified.method == "single"
    assert verified.task.annotations.get().comment == "pars defect clearly seen on the images"
