"""The drafter a worker serves with (spinefm.report.load_drafter): chosen by the site or the bundle, checked,
loaded once, the template behind it. LLaVA with a tiny random Llama-3-layout LM saved to disk plus our projector
and LoRA adapter; OpenAI-compatible with a local server."""

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from spinefm.report import load_drafter
from spinefm.report.backends.llava import LlavaDrafter
from spinefm.report.backends.template import TemplateDrafter

ROOT = Path(__file__).resolve().parents[2]


def tiny_weights():
    spec = importlib.util.spec_from_file_location("tiny_weights", ROOT / "scripts" / "tiny_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def llava_dirs(tmp_path_factory):
    """(Llama-3-layout LM directory, our report agent for it: projector + LoRA adapter) on disk."""
    from spinefm.report.agent_io import save_report_agent
    from spinefm.report.model import AgentConfig, ReportAgent

    root = tmp_path_factory.mktemp("llava")
    lm = tiny_weights().llama(root / "Llama-3.1-tiny")
    torch.manual_seed(0)
    agent = ReportAgent.build(AgentConfig(in_dim=16, n_queries=4, lm_path=str(lm), lora_r=4, lora_alpha=8,
                                          max_new_tokens=6, version="t1"), torch_dtype=torch.float32)
    agent.add_lora()
    with torch.no_grad():  # a trained adapter is not zero: make merging it change the weights
        for n, p in agent.lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    save_report_agent(agent, root / "report_agent")
    return lm, root / "report_agent"


def embeddings(n=3):
    return {"t1": torch.randn(n, 16), "t2": torch.randn(n + 1, 16)}


def test_llava_from_a_local_llama_directory_with_our_projector_and_adapter(llava_dirs, result):
    lm, agent_dir = llava_dirs
    drafter = load_drafter({"backend": "llava", "lm_path": str(lm), "agent_dir": str(agent_dir)})
    assert isinstance(drafter.primary, LlavaDrafter), drafter.status
    assert drafter.name == "llava" and drafter.version == "t1+Llama-3.1-tiny+agents"
    assert drafter.origin == "site" and drafter.status.startswith("drafter llava/t1+Llama-3.1-tiny+agents loaded")
    assert drafter.settings()["device"] == "cpu" and drafter.settings()["dtype"] == "float32"  # no GPU here
    assert drafter.primary.eos == [drafter.primary.agent.tokenizer.convert_tokens_to_ids("<|eot_id|>")]
    record = drafter.draft_record(result, embeddings())
    assert record.label == "llava/t1+Llama-3.1-tiny+agents" and record.fallback == ""
    assert isinstance(record.text, str) and all(ch in "\n\t" or ord(ch) >= 32 for ch in record.text)
    texts = drafter.primary.draft_many([result] * 3, [embeddings(), embeddings(2), None])  # one batch of 3
    assert len(texts) == 3
    # the merged adapter is in the served weights: they differ from the base LM's
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(lm, dtype=torch.float32)
    served = drafter.primary.agent.lm.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(served, base.model.layers[0].self_attn.q_proj.weight)


def test_site_setting_wins_over_the_bundle_and_the_bundle_over_the_default(llava_dirs, tmp_path):
    lm, agent_dir = llava_dirs
    bundle = {"backend": "llava", "lm_path": str(lm), "agent_dir": str(agent_dir)}
    site = load_drafter({"backend": "template", "lm_path": "/ignored"}, bundle)
    assert site.name == "template" and site.origin == "site"
    chosen = load_drafter({"backend": ""}, bundle)  # SPINEAGENT_DRAFTER unset: the manifest decides
    assert chosen.name == "llava" and chosen.origin == "bundle"
    default = load_drafter(None, None, tmp_path)
    assert default.name == "template" and default.origin == "default" and default.primary is not None


@pytest.mark.parametrize("config,reason", [
    ({"backend": "gpt"}, "unknown drafter 'gpt'; choose one of template, llava, openai"),
    ({"backend": "openai", "model": "m"}, "openai drafter needs base_url"),
    ({"backend": "openai", "base_url": "http://vllm:8000/v1"}, "openai drafter needs model"),
    ({"backend": "openai", "base_url": "http://h/v1", "model": "m", "timeout_s": "soon"}, "timeout_s must be a number"),
    ({"backend": "llava", "lm_path": "/nonexistent/Llama-3.1-8B"}, "lm_path '/nonexistent/Llama-3.1-8B' is not a directory"),
    ({"backend": "llava", "dtype": "int4"}, "dtype must be float32, bfloat16 or float16"),
    ({"backend": "llava"}, "backend 'llava' needs a trained report agent"),
])
def test_a_drafter_that_cannot_load_leaves_the_template_with_the_reason(config, reason, result):
    drafter = load_drafter(config)
    assert drafter.primary is None and reason in drafter.status and "could not be loaded" in drafter.status
    record = drafter.draft_record(result)
    assert record.text == TemplateDrafter().draft(result)
    assert record.label == f"template/1.1 (fallback from {config['backend']})"
    assert reason in record.fallback and record.fallback.startswith(f"{config['backend']} not loaded: ")


def test_projector_trained_for_another_lm_width_is_refused_in_one_line(llava_dirs, tmp_path, result):
    _, agent_dir = llava_dirs
    wider = tiny_weights().llama(tmp_path / "Llama-wider", hidden=96)
    drafter = load_drafter({"backend": "llava", "lm_path": str(wider), "agent_dir": str(agent_dir)})
    assert drafter.primary is None
    assert "was trained for an LM of width 64" in drafter.load_error and "has width 96" in drafter.load_error
    assert "\n" not in drafter.status
    assert drafter.draft_record(result).label == "template/1.1 (fallback from llava)"


class Handler(BaseHTTPRequestHandler):
    status = {"code": 200}

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        code = Handler.status["code"]
        data = json.dumps({"choices": [{"message": {"content": f"IMPRESSION: from {body['model']}"}}]}
                          if code == 200 else {"error": "overloaded"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Handler.status["code"] = 200
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_openai_drafter_and_its_fallback_when_the_server_fails(server, result):
    drafter = load_drafter({"backend": "openai", "base_url": server, "model": "llama-8b", "timeout_s": "5",
                            "retries": 0})
    record = drafter.draft_record(result)
    assert record.text == "IMPRESSION: from llama-8b" and record.label == f"openai/llama-8b@{server}+prompt1"
    Handler.status["code"] = 503
    record = drafter.draft_record(result)
    assert record.text == TemplateDrafter().draft(result)
    assert record.label == "template/1.1 (fallback from openai)"
    assert record.fallback.startswith("openai failed: DrafterError: openai backend:") and "HTTP 503" in record.fallback


def test_control_characters_an_lm_emits_never_reach_the_draft():
    from spinefm.report.backends.base import printable

    assert printable("FINDINGS:\r\nL4-L5:\x00 disc\x1b[31m herniation.\tok\x7f") == "FINDINGS:\nL4-L5: disc[31m herniation.\tok"
