"""The LLaVA-style backend: our trained report agent drafts from image + agent tokens.

Loads ``report_agent/`` once (LoRA merged), then drafts several studies per call
with the static-cache decoder. Greedy decoding, so a draft is reproducible for a
given model version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spinefm.report.backends.base import Drafter, printable
from spinefm.results import AnalysisResult

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def eos_ids(tokenizer, lm) -> list[int]:
    ids = set()
    for tok in ("<|end|>", "<|eot_id|>", "<|eom_id|>", tokenizer.eos_token):
        if tok and tok in tokenizer.get_vocab():
            ids.add(tokenizer.convert_tokens_to_ids(tok))
    gen = getattr(lm, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(extra)
    return sorted(ids)


class LlavaDrafter(Drafter):
    name = "llava"

    def __init__(self, agent, max_new_tokens: int | None = None, compile: bool | str = "auto",
                 batch_size: int = 16, source: str = ""):
        from spinefm.report.decode import StaticDecoder
        self.agent = agent.eval()
        cfg = agent.config
        self.max_new_tokens = max_new_tokens or cfg.max_new_tokens
        self.batch_size = batch_size
        self.decoder = StaticDecoder(agent.lm, compile=compile)
        self.eos = eos_ids(agent.tokenizer, agent.lm)
        lm_name = Path(cfg.lm_path).name if cfg.lm_path else "tiny-llama"
        mode = "agents" if cfg.agents else "direct"
        self.version = f"{cfg.version}+{lm_name}+{mode}"
        self.source = source

    @classmethod
    def from_dir(cls, directory: Path, config: dict[str, Any] | None = None) -> "LlavaDrafter":
        from spinefm.report.agent_io import load_report_agent
        config = config or {}
        device = config.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        # bf16 on a GPU; float32 on a CPU, where bf16 matmuls are slow on most processors (SPINEAGENT_DRAFTER_DTYPE)
        dtype = _DTYPES.get(config.get("dtype") or ("bfloat16" if device.startswith("cuda") else "float32"))
        agent = load_report_agent(Path(directory), lm_path=config.get("lm_path"), device=device,
                                  dtype=dtype, merge=True)
        return cls(agent, config.get("max_new_tokens"), config.get("compile", "auto"),
                   int(config.get("batch_size", 16)), str(directory))

    def settings(self) -> dict[str, Any]:
        c = self.agent.config
        return {"source": self.source, "lm_path": c.lm_path, "device": str(self.agent.device),
                "dtype": str(self.agent.dtype).replace("torch.", ""), "n_queries": c.n_queries,
                "agents": c.agents, "max_new_tokens": self.max_new_tokens, "decoding": "greedy",
                "threshold": c.threshold, "margin": c.margin}

    def draft(self, result: AnalysisResult, slice_embeddings: dict | None = None) -> str:
        return self.draft_many([result], [slice_embeddings])[0]

    @torch.inference_mode()
    def draft_many(self, results: list[AnalysisResult],
                   slice_embeddings: list[dict | None] | None = None) -> list[str]:
        embs = slice_embeddings or [None] * len(results)
        out: list[str] = []
        for i in range(0, len(results), self.batch_size):
            chunk, chunk_e = results[i:i + self.batch_size], embs[i:i + self.batch_size]
            items = [self.agent.encode(self.agent.messages(r)) for r in chunk]
            x, mask, _, _ = self.agent.assemble(items, list(chunk_e), left_pad=True)
            rows = self.decoder.generate(x, mask, self.max_new_tokens, self.eos,
                                         pad_id=self.agent.tokenizer.pad_token_id or 0)
            out.extend(printable(self.agent.tokenizer.decode(r, skip_special_tokens=True)).strip() for r in rows)
        return out
