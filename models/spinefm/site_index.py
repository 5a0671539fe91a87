"""A site's own retrieval bank: its signed reports and their studies' case embeddings, beside the bundle.

A bundle's ``index.safetensors`` holds the cases the bundle was trained on (synthetic phantoms for the
default bundle), so "similar cases" would always show those. A site builds its own bank from the
reports its radiologists signed. This module owns that bank's on-disk format, one directory per
embedding key (:func:`spinefm.bundle.embedding_key`: every bundle with that key embeds a study the
same way, so the bank serves all of them):

    index.safetensors   image (n, d) case embeddings, text (n, d) report embeddings
    index.json          format, embedding_key, built_at, description, case_ids, reports

Report texts are embedded exactly as :meth:`spinefm.bundle.Bundle.search_reports` embeds a query (the
bundle's text tower, then its CLIP projection). Nothing here knows where the texts came from: the
caller removes identifiers before, and gives opaque case ids.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file

from .retrieval import EmbeddingIndex

FORMAT = "spineagent-site-index/1"
WEIGHTS, META = "index.safetensors", "index.json"


class SiteIndexError(ValueError):
    """The bank cannot be built or read; the message names the file or the reason."""


@dataclass(frozen=True)
class SiteCase:
    case_id: str                 # opaque: never a UID, accession or patient id
    embedding: Sequence[float]   # the study's stored case embedding (InferenceResult.data["embedding"])
    report: str                  # the signed report, identifiers removed


def directory_for(root: str | Path, embedding_key: str) -> Path:
    return Path(root) / embedding_key[:16]


def embed_reports(bundle, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
    """(n, d) report embeddings in the bundle's shared space (text tower + CLIP projection)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            features = bundle.text_encoder()(list(texts[start:start + batch_size]))
            out.append(bundle.model.encode_text(features).float())
    return torch.cat(out) if out else torch.zeros(0, 0)


def build(bundle, cases: Sequence[SiteCase]) -> EmbeddingIndex:
    """The bank for ``cases``; their embeddings must have the bundle's case-embedding size."""
    if not cases:
        raise SiteIndexError("no cases to index")
    image = torch.tensor([list(c.embedding) for c in cases], dtype=torch.float32)
    if not torch.isfinite(image).all():
        raise SiteIndexError("a case embedding contains NaN or infinite values")
    text = embed_reports(bundle, [c.report for c in cases])
    if image.shape[1] != text.shape[1]:
        raise SiteIndexError(f"case embeddings have {image.shape[1]} values; this bundle's shared space has "
                             f"{text.shape[1]} (they come from another model)")
    return EmbeddingIndex(image, text, [c.case_id for c in cases], [c.report for c in cases])


def write(root: str | Path, embedding_key: str, index: EmbeddingIndex, description: str) -> Path:
    """Replace the bank for ``embedding_key`` at once: readers see the old bank or the new, never half."""
    target = directory_for(root, embedding_key)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".site-index-", dir=target.parent))
    try:
        save_file({"image": index.image.contiguous(), "text": index.text.contiguous()}, str(staging / WEIGHTS))
        meta = {"format": FORMAT, "embedding_key": embedding_key,
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "description": description, "case_ids": index.case_ids, "reports": index.reports}
        (staging / META).write_text(json.dumps(meta, indent=1))
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def read_meta(root: str | Path, embedding_key: str) -> dict | None:
    """The bank's index.json for this key, or None when the site has none."""
    path = directory_for(root, embedding_key) / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SiteIndexError(f"{path}: unreadable ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("embedding_key") != embedding_key:
        raise SiteIndexError(f"{path}: not a site index for this model (format {meta.get('format')!r}, "
                             f"key {str(meta.get('embedding_key'))[:16]!r})")
    return meta


def read(root: str | Path, embedding_key: str) -> EmbeddingIndex | None:
    """The site's bank for this embedding key, or None when it has none."""
    meta = read_meta(root, embedding_key)
    if meta is None:
        return None
    path = directory_for(root, embedding_key) / WEIGHTS
    try:
        state = load_file(str(path))
        return EmbeddingIndex(state["image"], state["text"], meta["case_ids"], meta["reports"])
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise SiteIndexError(f"{path}: unreadable ({exc})") from None
