"""The site's drafter (SPINEAGENT_DRAFTER*) in real Celery workers: loaded when the worker process starts and
said so in its log, the job log naming the drafter of each draft, the result recording it; a drafter that
cannot load is reported at start-up and the template writes the drafts with the fallback recorded."""

import importlib.util
import time
from pathlib import Path

import pytest
import torch

from backend.inference import analyzers
from backend.inference.models import InferenceJob, InferenceResult

pytestmark = [pytest.mark.services]
ROOT = Path(__file__).resolve().parents[2]


def test_drafter_settings_are_what_load_drafter_takes(settings):
    settings.SPINEAGENT_DRAFTER = ""
    assert analyzers.drafter_settings() is None  # the bundle decides
    settings.SPINEAGENT_DRAFTER = "openai"
    settings.SPINEAGENT_DRAFTER_BASE_URL, settings.SPINEAGENT_DRAFTER_MODEL = "http://vllm:8000/v1", "llama-8b"
    settings.SPINEAGENT_DRAFTER_API_KEY, settings.SPINEAGENT_DRAFTER_LM_PATH = "k", "/models/ignored"
    assert analyzers.drafter_settings() == {"backend": "openai", "base_url": "http://vllm:8000/v1",
                                            "model": "llama-8b", "api_key": "k", "timeout_s": "60",
                                            "lm_path": "/models/ignored"}
    settings.SPINEAGENT_DRAFTER = "llava"
    settings.SPINEAGENT_DRAFTER_AGENT_DIR = "/models/agent"
    assert analyzers.drafter_settings() == {"backend": "llava", "lm_path": "/models/ignored",
                                            "agent_dir": "/models/agent"}


@pytest.mark.django_db
def test_preload_reports_a_drafter_that_cannot_load(active_model, settings, monkeypatch, caplog):
    monkeypatch.setattr(analyzers, "_cache", {})
    settings.SPINEAGENT_DRAFTER, settings.SPINEAGENT_DRAFTER_LM_PATH = "llava", "/nonexistent/Llama-3.1-8B-Instruct"
    caplog.set_level("INFO")
    message = analyzers.preload_active_model()
    assert message.startswith(f"model {active_model.name} {active_model.version} loaded; drafter llava could not be "
                              "loaded (DrafterConfigError: lm_path '/nonexistent/Llama-3.1-8B-Instruct' is not a")
    assert "drafts will be written by template/1.1 with the fallback recorded" in message
    assert any(r.levelname == "ERROR" and "worker start-up" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def llava_weights(tmp_path_factory):
    """A tiny random Llama-3-layout LM on disk and our report agent for it (projector on the default bundle's
    64-wide slice embeddings, LoRA adapter), as a site would have them."""
    from spinefm.report.agent_io import save_report_agent
    from spinefm.report.model import AgentConfig, ReportAgent

    spec = importlib.util.spec_from_file_location("tiny_weights", ROOT / "scripts" / "tiny_weights.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    root = tmp_path_factory.mktemp("weights")
    lm = tiny.llama(root / "Llama-3.1-tiny")
    torch.manual_seed(0)
    agent = ReportAgent.build(AgentConfig(in_dim=64, n_queries=4, lm_path=str(lm), lora_r=4, lora_alpha=8,
                                          max_new_tokens=8, version="w1"), torch_dtype=torch.float32)
    agent.add_lora()
    save_report_agent(agent, root / "report_agent")
    return lm, root / "report_agent"


def _run_job_with_worker(request, monkeypatch, env: dict, name: str):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    start_worker = request.getfixturevalue("start_worker")  # its environment is read now, with ours in it
    client_for, upload = request.getfixturevalue("client_for"), request.getfixturevalue("upload")
    phantom_files, wait_until = request.getfixturevalue("phantom_files"), request.getfixturevalue("wait_until")
    log = ROOT / "var" / f"test-{name}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_bytes(b"")
    response = upload(client_for("admin"), phantom_files(seed=411))
    assert response.status_code == 201, response.content
    job = InferenceJob.objects.get(study__study_instance_uid=response.json()["studies"][0]["study_instance_uid"])
    start_worker(name)
    wait_until(lambda: InferenceJob.objects.get(pk=job.pk).status in InferenceJob.TERMINAL, timeout=180,
               what="job to finish")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    wait_until(lambda: f"job {job.pk}: draft written by" in log.read_text(errors="replace"), timeout=20,
               what="the job's log line")
    return job, InferenceResult.objects.get(job=job).data, log.read_text(errors="replace")


@pytest.mark.django_db(transaction=True)
def test_worker_serves_the_configured_llava_drafter(request, monkeypatch, active_model, llava_weights):
    lm, agent_dir = llava_weights
    job, data, log = _run_job_with_worker(request, monkeypatch, {
        "SPINEAGENT_DRAFTER": "llava", "SPINEAGENT_DRAFTER_LM_PATH": str(lm),
        "SPINEAGENT_DRAFTER_AGENT_DIR": str(agent_dir)}, f"drafter-llava-{int(time.time())}")
    assert data["draft_backend"] == "llava/w1+Llama-3.1-tiny+agents" and data["draft_fallback"] == ""
    assert isinstance(data["draft_text"], str)
    startup = [line for line in log.splitlines() if "worker start-up" in line]
    assert startup and f"model {active_model.name} {active_model.version} loaded; drafter llava/w1+Llama-3.1-tiny" \
        "+agents loaded" in startup[0], log[-2000:]
    assert log.index("worker start-up") < log.index(f"job {job.pk}: draft written by llava/w1+Llama-3.1-tiny+agents")


@pytest.mark.django_db(transaction=True)
def test_worker_with_a_drafter_that_cannot_load_starts_and_records_the_fallback(request, monkeypatch, active_model):
    job, data, log = _run_job_with_worker(request, monkeypatch, {
        "SPINEAGENT_DRAFTER": "llava", "SPINEAGENT_DRAFTER_LM_PATH": "/nonexistent/Llama-3.1-8B-Instruct"},
        f"drafter-broken-{int(time.time())}")
    assert data["draft_backend"] == "template/1.1 (fallback from llava)"
    assert data["draft_fallback"].startswith("llava not loaded: DrafterConfigError: lm_path "
                                             "'/nonexistent/Llama-3.1-8B-Instruct' is not a directory")
    assert data["draft_text"].startswith("TECHNIQUE:")
    assert "ERROR" in log and "drafter llava could not be loaded" in log  # said once, at start-up
    assert f"job {job.pk}: draft written by template/1.1 (fallback from llava); llava not loaded" in log
    assert job.attempts == 1  # no crash loop: the first attempt succeeded
