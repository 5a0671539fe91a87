"""The annotations app's LLM path against a local fake OpenAI-compatible server (the one tests/annotation use).

Configured through settings, as a site would: SPINEAGENT_LABELER = "llm" with a base URL and model.
"""

import importlib.util
import json
from pathlib import Path

import pytest

from backend import celery
from backend.annotations import services
from backend.annotations.models import Extraction, LabelTask
from backend.annotations.tasks import llm_extract
from spinefm.conditions import CONDITION_KEYS

pytestmark = [pytest.mark.django_db]

_spec = importlib.util.spec_from_file_location(
    "fake_openai_server", Path(__file__).resolve().parents[1] / "annotation" / "test_labels_llm.py")
_fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fake)
FakeServer, good_labels, completion, REPORT = _fake.FakeServer, _fake.good_labels, _fake.completion, _fake.REPORT

UID = "1.2.826.0.1.3680043.10.999.77"


@pytest.fixture
def server(settings):
    s = FakeServer()
    settings.SPINEAGENT_LABELER = "llm"
    settings.SPINEAGENT_LLM_BASE_URL = s.url
    settings.SPINEAGENT_LLM_MODEL = "fake-70b"
    settings.SPINEAGENT_LLM_API_KEY = "sk-test"
    settings.SPINEAGENT_LLM_MAX_RETRIES = 1
    yield s
    s.close()


def test_llm_extraction_is_stored_beside_the_rules(server):
    # The LLM agrees with the rules except on the pars defect, which it calls present: 1 of 17 differ.
    server.script = [completion(json.dumps(good_labels(
        par={"value": 1, "evidence": ["Possible pars defect at L5"], "severity": None})))]
    task, _ = services.create_task(study_instance_uid=UID, text=REPORT, source=LabelTask.IMPORTED)
    rows = {e.labeler: e for e in Extraction.objects.filter(task=task)}
    assert set(rows) == {"rules", "llm"}
    llm = rows["llm"]
    assert llm.labeler_version == "llm:fake-70b:p1"
    assert llm.labels["labels"]["canal"]["source"] == "llm"
    ev = llm.labels["labels"]["canal"]["evidence"][0]
    assert REPORT[ev["start"]:ev["end"]] == ev["text"]
    assert "rules_disagree:-1" in llm.labels["labels"]["par"]["flags"]
    assert server.requests[0]["auth"] == "Bearer sk-test" and server.requests[0]["body"]["model"] == "fake-70b"
    task.refresh_from_db()
    assert task.labeler_disagreement == pytest.approx(1 / 17)
    detail_preset = services.priority.values_of(services.priority.preferred([rows["rules"], llm]))
    assert detail_preset["par"] == 1  # the validated LLM reading presets the toggles


def test_malformed_replies_fall_back_to_the_rules(server):
    server.script = [completion("sure! here are the labels"), completion(json.dumps({"labels": {"canal": 1}}))]
    task, _ = services.create_task(study_instance_uid=UID, text=REPORT, source=LabelTask.IMPORTED)
    fallback = Extraction.objects.get(task=task, labeler="llm-fallback-rules")
    assert fallback.labeler_version == "llm:fake-70b:p1"
    assert fallback.labels["meta"]["fallback"] == "all" and len(fallback.labels["meta"]["errors"]) == 2
    assert all("llm_failed" in lab["flags"] for lab in fallback.labels["labels"].values())
    rules = Extraction.objects.get(task=task, labeler="rules")
    values = {k: v["value"] for k, v in fallback.labels["labels"].items()}
    assert values == {k: v["value"] for k, v in rules.labels["labels"].items()}
    assert set(values) == set(CONDITION_KEYS)
    assert len(server.requests) == 2  # one retry, then fall back


def test_signed_reports_defer_the_llm_to_celery(server, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(celery.app, "send_task", lambda name, args, **kw: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        task, _ = services.create_task(study_instance_uid=UID, text=REPORT, source=LabelTask.SIGNED, defer_llm=True)
    assert queued == [(task.pk,)] and not server.requests
    assert list(task.extractions.values_list("labeler", flat=True)) == ["rules"]
    server.script = [completion(json.dumps(good_labels()))]
    assert llm_extract(task.pk) == "llm"  # what the worker runs
    assert set(task.extractions.values_list("labeler", flat=True)) == {"rules", "llm"}
    assert llm_extract(10**9) == "task gone"


def test_llm_without_endpoint_keeps_the_rules(settings):
    settings.SPINEAGENT_LABELER = "llm"
    settings.SPINEAGENT_LLM_BASE_URL = ""
    task, _ = services.create_task(study_instance_uid=UID, text=REPORT, source=LabelTask.IMPORTED)
    assert list(task.extractions.values_list("labeler", flat=True)) == ["rules"]
    assert llm_extract(task.pk) == "not configured"
