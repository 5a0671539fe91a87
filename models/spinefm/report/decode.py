"""Fast greedy decoding: static KV cache, one compiled decode step, many studies per call.

Why not plain ``generate``: its dynamic cache reallocates every step and the
Python-side logits processing dominates at batch 1. Here the cache is allocated
once (``StaticCache``), the per-token forward has fixed shapes (full-length
padding mask, [B, 1] inputs) so ``torch.compile`` (CUDA graphs on GPU via
``mode="reduce-overhead"``) can capture it, and the loop only syncs to check EOS
every ``check_every`` steps. Prefill runs eager (one big matmul, already efficient).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch


@dataclass
class DecodeStats:
    prefill_s: float = 0.0
    decode_s: float = 0.0
    new_tokens: int = 0   # generated positions x batch (incl. after EOS, as compute does)
    steps: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.decode_s if self.decode_s else 0.0


class StaticDecoder:
    """Reusable decoder for one LM; keeps the compiled step between calls."""

    def __init__(self, lm, compile: bool | str = "auto", check_every: int = 8, bucket: int = 64):
        self.lm = lm.eval()
        self.bucket = bucket  # cache length rounded up so shapes (and CUDA graphs) repeat
        self._cache = None
        self._cache_key = None
        dev = next(lm.parameters()).device
        if compile == "auto":
            compile = dev.type == "cuda"
        self.compile = bool(compile)
        self.check_every = check_every
        self._step = self._forward_step
        if self.compile:
            mode = "reduce-overhead" if dev.type == "cuda" else None
            self._step = torch.compile(self._forward_step, mode=mode, fullgraph=False, dynamic=False)
        self.stats = DecodeStats()

    def _forward_step(self, ids, pos, mask, cache):
        out = self.lm(input_ids=ids, position_ids=pos, attention_mask=mask, past_key_values=cache,
                      use_cache=True, logits_to_keep=1)
        return out.logits[:, -1].argmax(-1)

    @torch.inference_mode()
    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                 max_new_tokens: int, eos_ids: list[int], pad_id: int = 0,
                 stop_early: bool = True) -> list[list[int]]:
        """Greedy continuation of left-padded ``inputs_embeds`` [B,T,H]; token ids per row (no EOS)."""
        from transformers import StaticCache
        B, T, _ = inputs_embeds.shape
        dev = inputs_embeds.device
        L = -(-(T + max_new_tokens) // self.bucket) * self.bucket
        key = (B, L, inputs_embeds.dtype, dev)
        if self._cache_key == key:
            cache = self._cache
            cache.reset()
        else:
            cache = StaticCache(config=self.lm.config, max_cache_len=L)
            self._cache, self._cache_key = cache, key
        mask = torch.ones(B, L, dtype=torch.long, device=dev)
        mask[:, :T] = attention_mask
        pos = (attention_mask.cumsum(1) - 1).clamp(min=0)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        out = self.lm(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=pos,
                      past_key_values=cache, use_cache=True, logits_to_keep=1)  # only the last row's logits
        nxt = out.logits[:, -1].argmax(-1)
        sync()
        t1 = time.perf_counter()
        eos = torch.tensor(eos_ids, device=dev)
        done = torch.isin(nxt, eos)
        tokens = [nxt]
        cur = pos[:, -1:] + 1
        steps = 0
        for i in range(1, max_new_tokens):
            ids = torch.where(done, torch.full_like(nxt, pad_id), nxt).unsqueeze(1)
            nxt = self._step(ids, cur.clone(), mask, cache)
            nxt = nxt.clone()
            done = done | torch.isin(nxt, eos)
            tokens.append(nxt)
            cur = cur + 1
            steps += 1
            if stop_early and i % self.check_every == 0 and bool(done.all()):
                break
        sync()
        t2 = time.perf_counter()
        self.stats = DecodeStats(t1 - t0, t2 - t1, B * steps, steps)
        seq = torch.stack(tokens, 1).tolist()
        rows = []
        for row in seq:
            cut = [t for t in row]
            for j, t in enumerate(row):
                if t in eos_ids:
                    cut = row[:j]
                    break
            rows.append(cut)
        return rows
