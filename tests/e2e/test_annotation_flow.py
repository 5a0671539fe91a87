"""The annotator's and the adjudicator's pages in headless Chromium against Django on loopback (live_server).

Covers what the Django test client cannot: the page's JS posts the toggles to the API with the CSRF
token from the form, the keyboard drives every choice, 'submit and next' opens the next task, blind
mode shows nothing of the extraction until the first pass is revealed, and the stored annotations
record what the annotator saw. Browser part: annotation_flow.mjs (Playwright, npm playwright-core).
Screenshots go to test-artifacts/e2e-annotation[-assisted]/; with SPINEAGENT_DOC_SCREENSHOTS=1 the key
ones are copied to docs/img/annotation/ for docs/annotation.md.
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
DOC_IMAGES = ROOT / "docs" / "img" / "annotation"
KEY_SCREENSHOTS = ("02-blind-first-pass", "03-revealed", "05-readonly", "06-adjudicate")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TEXT = ("FINDINGS: Mild canal stenosis at L4-L5 <script>alert(1)</script>. No fracture. "
        "Possible pars defect at L5.\nIMPRESSION: Mild canal stenosis at L4-L5.")
# The labeler's known error: "Negative for discitis" after "Other:" is suggested as inflammation present.
DISCITIS = "FINDINGS: Mild canal stenosis at L4-L5.\nOther: Negative for discitis."


def _browser(env: dict, out: Path) -> dict:
    if not (ROOT / "ohif-extension" / "node_modules" / "playwright-core").is_dir() or not Path(CHROMIUM).exists() \
            or not shutil.which("node"):
        pytest.fail("browser tests need playwright-core (scripts/build_viewer.sh), Chromium and node")
    shutil.rmtree(out, ignore_errors=True)
    run = subprocess.run(["node", str(Path(__file__).with_name("annotation_flow.mjs"))], cwd=ROOT,
                         env=dict(os.environ, OUT_DIR=str(out), CHROMIUM=CHROMIUM, **env),
                         capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"annotation_flow.mjs printed no JSON (exit {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    assert run.returncode == 0 and report["ok"], json.dumps(report, indent=2)[:4000]
    assert report["csp"] == [], report["csp"]
    return {s["name"]: s for s in report["steps"]}


def _labels(**values):
    from spinefm.conditions import CONDITION_KEYS

    return {k: values.get(k, 0) for k in CONDITION_KEYS}


def test_blind_annotation_and_adjudication_in_the_browser(live_server, users, password):
    from django.contrib.auth.models import Group, User

    from backend.annotations import services
    from backend.annotations.models import Annotation, LabelTask, Reveal, VerifiedLabels

    task, _ = services.create_task(study_instance_uid="1.2.826.0.1.3680043.10.999.79", text=TEXT,
                                   source=LabelTask.IMPORTED)
    following, _ = services.create_task(study_instance_uid="1.2.826.0.1.3680043.10.999.80", text=DISCITIS,
                                        source=LabelTask.IMPORTED)
    preset = {k: v["value"] for k, v in task.extractions.get().labels["labels"].items()}
    assert preset["par"] == -1 and preset["canal"] == 1
    # A task two other annotators disagreed on, waiting for the adjudicator (admin).
    disputed, _ = services.create_task(study_instance_uid="1.2.826.0.1.3680043.10.999.81", text=DISCITIS,
                                       source=LabelTask.IMPORTED, required_annotations=2)
    second = User.objects.create_user("annotator2", password=password)
    second.groups.add(Group.objects.get(name="annotator"))
    services.submit_annotation(disputed, second, _labels(canal=1, inflammation=1))
    third = User.objects.create_user("annotator3", password=password)
    third.groups.add(Group.objects.get(name="annotator"))
    services.submit_annotation(disputed, third, _labels(canal=1, par=-1), "Negative for discitis: inflammation absent")

    steps = _browser({"BASE_URL": live_server.url, "TASK_ID": str(task.pk), "NEXT_TASK_ID": str(following.pk),
                      "DISPUTED_TASK_ID": str(disputed.pk), "ANNOTATOR": f"annotator:{password}",
                      "ADJUDICATOR": f"admin:{password}", "SCENARIO": "blind"}, ARTIFACTS)

    assert steps["reveal: the suggestions after the first pass, differing rows marked"]["differs"] == ["fracture", "par"]
    verified = VerifiedLabels.objects.get(task=task)
    assert verified.labels == {**preset, "par": 1} and verified.method == "single"
    first = task.annotations.get()
    assert first.comment == "pars defect clearly seen on the images"
    # What an agreement study needs: blind, revealed after a complete first pass that is kept as it was.
    assert (first.mode, first.extraction_seen) == ("blind", True)
    assert first.blind_labels == {**preset, "par": 1, "fracture": -1} == Reveal.objects.get(task=task).labels
    nxt = following.annotations.get()
    assert (nxt.mode, nxt.extraction_seen, nxt.extraction_id, nxt.labels) == ("blind", False, None, _labels())
    assert steps["the finished task reopens read-only; a duplicate is refused"]["duplicate"]["error"] == "wrong_status"
    decided = VerifiedLabels.objects.get(task=disputed)
    assert (decided.method, decided.decided_by.username) == ("adjudicated", "admin")
    assert decided.labels == _labels(canal=1, par=-1)
    assert Annotation.objects.count() == 4
    if os.environ.get("SPINEAGENT_DOC_SCREENSHOTS") == "1":
        _copy_to_docs()


def test_assisted_annotation_marks_changed_rows_in_the_browser(live_server, users, password, settings):
    from backend.annotations import services
    from backend.annotations.models import LabelTask

    settings.SPINEAGENT_ANNOTATION_MODE = "assisted"
    task, _ = services.create_task(study_instance_uid="1.2.826.0.1.3680043.10.999.82", text=TEXT,
                                   source=LabelTask.IMPORTED)
    preset = {k: v["value"] for k, v in task.extractions.get().labels["labels"].items()}
    steps = _browser({"BASE_URL": live_server.url, "TASK_ID": str(task.pk), "ANNOTATOR": f"annotator:{password}",
                      "SCENARIO": "assisted"}, ARTIFACTS.with_name("e2e-annotation-assisted"))
    assert steps["assisted: preset, a changed row is marked"]["changed"] == ["par"]
    two = steps["assisted: one condition at two levels, by keyboard"]
    assert two["levels"] == ["L3-L4", "L4-L5"] and two["api_canal"] == {"L3-L4": -1, "L4-L5": 1}
    annotation = task.annotations.get()
    assert (annotation.mode, annotation.extraction_seen, annotation.labels) == ("assisted", True, {**preset, "par": 1})
    # canal is present (at L4-L5), whatever L3-L4 is; the other conditions sit where the extraction put them
    assert annotation.level_labels["canal"] == {"L3-L4": -1, "L4-L5": 1}
    assert annotation.level_labels["par"] == {"L5": 1}
    verified = task.verified
    assert verified.level_labels["canal"] == {"L3-L4": -1, "L4-L5": 1} and verified.labels["canal"] == 1
    if os.environ.get("SPINEAGENT_DOC_SCREENSHOTS") == "1":
        _copy_to_docs(ARTIFACTS.with_name("e2e-annotation-assisted"), ("03-assisted-two-levels",))


def _copy_to_docs(folder: Path = ARTIFACTS, names: tuple[str, ...] = KEY_SCREENSHOTS) -> None:
    """The key screenshots as JPEG for docs/annotation.md (a tenth of the PNG size in git)."""
    from PIL import Image

    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.open(folder / f"{name}.png").convert("RGB").save(DOC_IMAGES / f"{name}.jpg", quality=82)
