"""ReportAgent: projector + causal LM (+ LoRA), image tokens spliced into inputs_embeds.

The LM is any ``transformers`` causal LM: Llama-3.1-8B(-Instruct) from a local
path when ``lm_path`` is configured, else a tiny LlamaForCausalLM with our own
tokenizer (tests, demo bundle). Prompts come from :mod:`spinefm.report.prompt`
only; this module just turns (head ids, image tokens, tail ids, answer ids)
into one embedded sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from spinefm.report.projector import AttentionPoolProjector
from spinefm.report.prompt import build_messages, encode

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class AgentConfig:
    in_dim: int = 64                 # slice-embedding width (encoder width)
    n_queries: int = 64              # image tokens (release: 64)
    pool_dim: int | None = None      # attention width in the pooler (default in_dim)
    n_heads: int = 4
    max_slices: int = 350
    lm_path: str | None = None       # local HF dir (e.g. Llama-3.1-8B-Instruct); None = tiny LM
    tiny_lm: dict[str, Any] = field(default_factory=lambda: {
        "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 256, "max_position_embeddings": 2048})
    vocab_size: int = 2000           # tiny tokenizer only
    lora_r: int = 128                # release: r=128, alpha=256
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    agents: bool = True              # False = LLaVA-direct baseline (image tokens only)
    threshold: float = 0.5
    margin: float = 0.1
    similar_chars: int = 1200
    max_new_tokens: int = 512
    version: str = "0"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AgentConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tiny_llama(vocab_size: int, tiny: dict[str, Any], tokenizer) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=vocab_size, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      tie_word_embeddings=True, **tiny)
    return LlamaForCausalLM(cfg)


class ReportAgent(nn.Module):
    def __init__(self, lm: nn.Module, tokenizer, projector: AttentionPoolProjector, config: AgentConfig):
        super().__init__()
        self.lm, self.tokenizer, self.projector, self.config = lm, tokenizer, projector, config
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    # -- construction ----------------------------------------------------
    @classmethod
    def build(cls, config: AgentConfig, tokenizer=None, corpus: list[str] | None = None,
              torch_dtype: torch.dtype | None = None) -> "ReportAgent":
        """New agent: LM from ``lm_path`` or a fresh tiny Llama (tokenizer trained on ``corpus``)."""
        if config.lm_path:
            from transformers import AutoModelForCausalLM, AutoTokenizer
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(config.lm_path)
            lm = AutoModelForCausalLM.from_pretrained(config.lm_path, dtype=torch_dtype or torch.bfloat16)
        else:
            if tokenizer is None:
                from spinefm.report.tokenizer import train_tokenizer
                if not corpus:
                    raise ValueError("a tiny LM needs a tokenizer or a corpus to train one on")
                tokenizer = train_tokenizer(corpus, config.vocab_size)
            lm = tiny_llama(len(tokenizer), config.tiny_lm, tokenizer)
        lm_dim = lm.get_input_embeddings().weight.shape[1]
        projector = AttentionPoolProjector(config.in_dim, lm_dim, config.n_queries, config.pool_dim,
                                           config.n_heads, config.max_slices)
        projector.to(dtype=lm.get_input_embeddings().weight.dtype)
        return cls(lm, tokenizer, projector, config)

    def add_lora(self) -> None:
        """Wrap the LM in a peft LoRA model (stage 2); base weights frozen."""
        from peft import LoraConfig, get_peft_model
        if hasattr(self.lm, "peft_config"):
            return
        names = {n.split(".")[-1] for n, _ in self.lm.named_modules()}
        targets = [t for t in self.config.lora_targets if t in names]
        cfg = LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha,
                         lora_dropout=self.config.lora_dropout, target_modules=targets,
                         task_type="CAUSAL_LM")
        self.lm = get_peft_model(self.lm, cfg)

    @property
    def device(self) -> torch.device:
        return self.lm.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype

    # -- prompt -> embeddings ------------------------------------------------
    def messages(self, result, task: str | None = None) -> list[dict[str, str]]:
        kw = {"agents": self.config.agents, "threshold": self.config.threshold,
              "margin": self.config.margin, "similar_chars": self.config.similar_chars}
        return build_messages(result, task, **kw) if task else build_messages(result, **kw)

    def encode(self, messages, answer: str | None = None):
        return encode(messages, self.tokenizer, answer)

    def assemble(self, items: list[tuple[list[int], list[int], list[int]]],
                 embeddings: list[dict | None], left_pad: bool = False, max_len: int | None = None):
        """inputs_embeds [B,T,H], attention_mask [B,T], labels [B,T] (-100 except answers), position_ids.

        Right padding for training, left padding for generation.
        """
        img = self.projector(embeddings).to(self.dtype)  # [B, Q, H]
        table = self.lm.get_input_embeddings()
        seqs, labs = [], []
        for (head, tail, ans), tokens in zip(items, img):
            ids = torch.tensor(head + tail + ans, dtype=torch.long, device=self.device)
            e = table(ids)
            e = torch.cat([e[: len(head)], tokens, e[len(head):]])
            lab = [-100] * (len(head) + tokens.shape[0] + len(tail)) + list(ans)
            if max_len is not None and e.shape[0] > max_len:
                e, lab = e[:max_len], lab[:max_len]
            seqs.append(e)
            labs.append(lab)
        T = max(s.shape[0] for s in seqs)
        B, H = len(seqs), seqs[0].shape[1]
        x = seqs[0].new_zeros(B, T, H)
        mask = torch.zeros(B, T, dtype=torch.long, device=self.device)
        labels = torch.full((B, T), -100, dtype=torch.long, device=self.device)
        for i, (s, lab) in enumerate(zip(seqs, labs)):
            n = s.shape[0]
            sl = slice(T - n, T) if left_pad else slice(0, n)
            x[i, sl] = s
            mask[i, sl] = 1
            labels[i, sl] = torch.tensor(lab, dtype=torch.long, device=self.device)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        return x, mask, labels, pos

    def loss(self, items, embeddings, max_len: int | None = None) -> torch.Tensor:
        x, mask, labels, pos = self.assemble(items, embeddings, max_len=max_len)
        out = self.lm(inputs_embeds=x, attention_mask=mask, position_ids=pos, labels=labels)
        return out.loss
