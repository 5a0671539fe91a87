"""Synthesizer (router): per-layer fusion of the frozen T1 and T2 encoders.

For sequences neither encoder was trained on (STIR, Dixon, post-contrast...),
the image goes through both token embeddings; at every layer the T1 block and
the T2 block run on the same state and their outputs are mixed by
alpha_l = sigmoid(logit_l) (init 0.5); the mix feeds both next blocks; the T1
final norm and [CLS] give the embedding. Only the mixing weights (and the
optional gating net) train; both encoders stay frozen.

``gate="input"`` is the ablation: a small net on the mean patch embedding adds
per-image offsets to the layer logits (zero-initialised, so it starts as the
scalar model).
"""

from __future__ import annotations

import torch
from torch import nn

from .vit import VisionTransformer


class LayerwiseSynthesizer(nn.Module):
    def __init__(self, t1: VisionTransformer, t2: VisionTransformer, gate: str = "scalar", gate_hidden: int = 64,
                 freeze: bool = True):
        super().__init__()
        if len(t1.blocks) != len(t2.blocks) or t1.embed_dim != t2.embed_dim:
            raise ValueError("the synthesizer needs T1 and T2 encoders of the same size")
        if t1.config.pos_embed != t2.config.pos_embed or t1.patch_size != t2.patch_size:
            raise ValueError("the synthesizer needs T1 and T2 encoders with the same position embedding and patch size")
        if gate not in ("scalar", "input"):
            raise ValueError(f"gate must be 'scalar' or 'input', got {gate!r}")
        self.t1, self.t2 = t1, t2
        self.gate = gate
        depth = len(t1.blocks)
        # logits[0] mixes the two token embeddings, logits[l+1] the outputs of block l.
        self.logits = nn.Parameter(torch.zeros(depth + 1))
        self.gate_net = None
        if gate == "input":
            self.gate_net = nn.Sequential(nn.Linear(t1.embed_dim, gate_hidden), nn.GELU(), nn.Linear(gate_hidden, depth + 1))
            nn.init.zeros_(self.gate_net[-1].weight)
            nn.init.zeros_(self.gate_net[-1].bias)
        self.encoders_frozen = False
        if freeze:
            self.freeze_encoders()

    def freeze_encoders(self) -> None:
        """Encoders frozen and kept in eval mode; only the mixing weights (and gate) train."""
        self.encoders_frozen = True
        for enc in (self.t1, self.t2):
            enc.requires_grad_(False)
            enc.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoders_frozen:
            self.t1.eval()
            self.t2.eval()
        return self

    def alphas(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(depth+1,) for the scalar gate; (B, depth+1) for the input gate."""
        if self.gate_net is None or tokens is None:
            return torch.sigmoid(self.logits)
        summary = tokens[:, 1 + self.t1.num_registers:].mean(1)
        return torch.sigmoid(self.logits + self.gate_net(summary))

    @staticmethod
    def _mix(a: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        a = a.view(-1, 1, 1)  # scalar -> (1, 1, 1); per image (B,) -> (B, 1, 1)
        return a.to(x1.dtype) * x1 + (1 - a.to(x1.dtype)) * x2

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tok1, tok2 = self.t1.prepare_tokens(x), self.t2.prepare_tokens(x)
        alphas = self.alphas(tok1)
        col = (lambda i: alphas[i]) if alphas.ndim == 1 else (lambda i: alphas[:, i])
        h = self._mix(col(0), tok1, tok2)
        rope = self.t1.rope_for(x)  # same grid for both (RoPE has no weights); None for learnt positions
        for i, (b1, b2) in enumerate(zip(self.t1.blocks, self.t2.blocks)):
            h = self._mix(col(i + 1), b1(h, rope), b2(h, rope))
        return self.t1.split_tokens(self.t1.norm(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["cls"]
