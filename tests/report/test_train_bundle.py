"""Tiny agent: LoRA steps reduce loss, resumable stages, save -> make_drafter -> generate."""

import json

import pytest
import torch

from spinefm.report import load_report_agent, make_drafter, save_report_agent
from spinefm.report.backends.llava import LlavaDrafter
from spinefm.report.data import build_vqa, corpus_texts, toy_studies
from spinefm.report.model import AgentConfig, ReportAgent
from spinefm.train.report_agent import train_stage

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "intermediate_size": 64, "max_position_embeddings": 1024,
        "initializer_range": 0.1}  # larger init: a random tiny LM whose logits LoRA can move


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    studies = toy_studies(6, seed=1, in_dim=16)
    train = [s for s in studies if s.split == "train"]
    cfg = AgentConfig(in_dim=16, n_queries=4, n_heads=2, tiny_lm=TINY, vocab_size=1000, lora_r=4,
                      lora_alpha=8, lora_dropout=0.0, similar_chars=200, max_new_tokens=12, version="test")
    agent = ReportAgent.build(cfg, corpus=corpus_texts(train))
    ex = build_vqa(train[:2], tasks=("report",), similar_chars=200)
    return agent, ex, studies


def test_assemble_splices_image_tokens(tiny):
    agent, ex, _ = tiny
    items = [agent.encode(e.messages, e.answer) for e in ex[:2]]
    x, mask, labels, pos = agent.assemble(items, [e.embeddings for e in ex[:2]])
    lens = [len(h) + 4 + len(t) + len(a) for h, t, a in items]
    assert x.shape == (2, max(lens), 32) and mask.sum(1).tolist() == lens
    h, t, a = items[0]
    assert (labels[0, : len(h) + 4 + len(t)] == -100).all()
    assert labels[0, len(h) + 4 + len(t): lens[0]].tolist() == a
    img = agent.projector([ex[0].embeddings])[0]
    assert torch.allclose(x[0, len(h): len(h) + 4], img, atol=1e-6)


def test_stages_lora_reduces_loss_and_resume(tiny, tmp_path):
    agent, ex, _ = tiny
    r1 = train_stage(agent, ex, "projector", tmp_path, max_steps=1, batch_size=2, log=lambda *a: None)
    assert r1.steps == 1 and not any(p.requires_grad for p in agent.lm.parameters())
    r2 = train_stage(agent, ex, "lora", tmp_path, lr=3e-2, max_steps=6, batch_size=2, log=lambda *a: None)
    assert hasattr(agent.lm, "peft_config")
    trainable = [n for n, p in agent.lm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert r2.last_loss < r2.first_loss - 0.2, r2
    # rerun: checkpoint says finished, nothing is repeated
    logs = []
    r3 = train_stage(agent, ex, "lora", tmp_path, lr=3e-2, max_steps=6, batch_size=2, log=logs.append)
    assert any("resumed at step 6/6" in l for l in logs) and r3.last_loss == r2.last_loss


def test_save_load_generate(tiny, tmp_path):
    agent, _, studies = tiny
    if not hasattr(agent.lm, "peft_config"):
        agent.add_lora()
    bundle = tmp_path / "bundle"
    save_report_agent(agent, bundle / "report_agent")
    meta = json.loads((bundle / "report_agent" / "config.json").read_text())
    assert meta["has_adapter"] and (bundle / "report_agent" / "adapter" / "adapter_model.safetensors").is_file()
    assert (bundle / "report_agent" / "tokenizer.json").is_file()
    d = make_drafter(None, bundle_dir=bundle)           # agent present -> llava by default
    assert d.name == "llava" and d.version == "test+tiny-llama+agents"
    s = studies[:3]
    texts = d.draft_many([x.result for x in s], [x.embeddings for x in s])
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert d.draft(s[1].result, s[1].embeddings) == texts[1]   # batching does not change a draft
    # same outputs as the in-memory (unmerged) agent through HF generate
    ref = LlavaDrafter(agent, compile=False)
    assert ref.draft(s[0].result, s[0].embeddings) == texts[0]
    loaded = load_report_agent(bundle / "report_agent", trainable=True)
    assert any(p.requires_grad for n, p in loaded.lm.named_parameters() if "lora_" in n)
    rec = make_drafter({"backend": "llava"}, bundle_dir=bundle).draft_record(s[0].result, s[0].embeddings)
    assert rec.backend == "llava" and rec.settings["decoding"] == "greedy"
