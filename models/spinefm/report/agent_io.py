"""Save/load a ReportAgent as ``<bundle>/report_agent/``.

Layout: ``config.json`` (AgentConfig, chat template, LM config, provenance),
``projector.safetensors``, ``adapter/`` (peft LoRA: adapter_config.json +
adapter_model.safetensors) when stage 2 ran, ``lm.safetensors`` + the LM config
only for the tiny LM (a configured Llama is loaded from ``lm_path``), and
``tokenizer.json``. Base LM weights are stored without LoRA so the adapter stays
separable (and auditable); serving merges it on load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from spinefm.report.model import AgentConfig, ReportAgent
from spinefm.report.projector import AttentionPoolProjector

FORMAT = "spinefm-report-agent"
FORMAT_VERSION = 1


def _tensors(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


def _base_lm_state(lm) -> dict[str, torch.Tensor]:
    """Base weights without LoRA tensors, with the peft wrapper names undone."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    out = {}
    for k, v in base.state_dict().items():
        if "lora_" in k:
            continue
        out[k.replace(".base_layer.", ".")] = v
    if getattr(base.config, "tie_word_embeddings", False):
        out.pop("lm_head.weight", None)
    return out


def save_report_agent(agent: ReportAgent, directory: Path, extra: dict[str, Any] | None = None) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = agent.config
    base = agent.lm.get_base_model() if hasattr(agent.lm, "get_base_model") else agent.lm
    tiny = not cfg.lm_path
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "agent": cfg.to_dict(),
            "projector": agent.projector.config(), "chat_template": agent.tokenizer.chat_template,
            "lm_config": base.config.to_dict() if tiny else None,
            "has_adapter": hasattr(agent.lm, "peft_config"), **(extra or {})}
    save_file(_tensors(agent.projector.state_dict()), str(d / "projector.safetensors"))
    if tiny:
        save_file(_tensors(_base_lm_state(agent.lm)), str(d / "lm.safetensors"))
    if meta["has_adapter"]:
        agent.lm.save_pretrained(str(d / "adapter"))
    agent.tokenizer.backend_tokenizer.save(str(d / "tokenizer.json"))
    (d / "config.json").write_text(json.dumps(meta, indent=2, default=str))
    return d


def read_config(directory: Path) -> dict[str, Any]:
    meta = json.loads((Path(directory) / "config.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory} is not a report agent (format {meta.get('format')!r})")
    return meta


def load_report_agent(directory: Path, lm_path: str | None = None, device: str | torch.device = "cpu",
                      dtype: torch.dtype | None = None, merge: bool = False,
                      trainable: bool = False) -> ReportAgent:
    """Rebuild the agent. ``lm_path`` overrides the configured base LM location.

    ``merge=True`` folds LoRA into the weights (serving); ``trainable=True`` keeps the
    adapter trainable (resuming stage 2).
    """
    d = Path(directory)
    meta = read_config(d)
    cfg = AgentConfig.from_dict(meta["agent"])
    if lm_path:
        cfg.lm_path = lm_path
    if cfg.lm_path and meta.get("lm_config") is None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(cfg.lm_path)
        lm = AutoModelForCausalLM.from_pretrained(cfg.lm_path, dtype=dtype or torch.bfloat16)
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        from spinefm.report.tokenizer import load_tokenizer
        cfg.lm_path = None
        tokenizer = load_tokenizer(d / "tokenizer.json", meta.get("chat_template"))
        lm_cfg = {k: v for k, v in meta["lm_config"].items()
                  if k not in ("architectures", "transformers_version", "dtype", "torch_dtype")}
        lm = LlamaForCausalLM(LlamaConfig(**lm_cfg))
        missing, unexpected = lm.load_state_dict(load_file(str(d / "lm.safetensors")), strict=False)
        if unexpected or [m for m in missing if m != "lm_head.weight"]:
            raise ValueError(f"LM weights do not match: missing {missing}, unexpected {unexpected}")
        lm.tie_weights()
    p = meta["projector"]
    lm_dim = lm.get_input_embeddings().weight.shape[1]
    if int(p["lm_dim"]) != lm_dim:
        raise ValueError(f"{d / 'projector.safetensors'} was trained for an LM of width {p['lm_dim']}, but "
                         f"{cfg.lm_path or 'the tiny LM'} has width {lm_dim}: train the projector and adapter "
                         "for this LM (python -m spinefm.train.report_agent --lm-path ...)")
    projector = AttentionPoolProjector(p["in_dim"], p["lm_dim"], p["n_queries"], p["pool_dim"],
                                       p["n_heads"], p["max_slices"])
    projector.load_state_dict(load_file(str(d / "projector.safetensors")))
    if meta.get("has_adapter"):
        from peft import PeftModel
        lm = PeftModel.from_pretrained(lm, str(d / "adapter"), is_trainable=trainable)
        if merge:
            lm = lm.merge_and_unload()
    if dtype is not None:
        lm.to(dtype)
    projector.to(dtype=lm.get_input_embeddings().weight.dtype)
    agent = ReportAgent(lm, tokenizer, projector, cfg)
    agent.to(device)
    agent.meta = meta
    return agent
