"""The one interface every drafting backend implements.

``draft`` returns plain text (what the viewer edits); ``draft_record`` adds who
wrote it (backend name, model version, settings) so the immutable AI draft can
be stored beside the signed report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spinefm.results import AnalysisResult


_CONTROL = {c: None for c in range(32) if chr(c) not in "\n\t"} | {0x7F: None}


def printable(text: str) -> str:
    """An LM's text without control characters (NUL, escape, ...): a language model can emit any token, and
    PostgreSQL's JSON, the DICOM SR and the viewer refuse or mangle them. Newlines and tabs stay."""
    return text.replace("\r\n", "\n").translate(_CONTROL)


@dataclass
class Draft:
    text: str
    backend: str
    version: str
    settings: dict[str, Any] = field(default_factory=dict)
    fallback: str = ""  # why the configured drafter did not write this draft ("" when it did)
    configured: str = ""  # the drafter that was asked for, when another one wrote the draft

    @property
    def tag(self) -> str:
        """Short provenance string, e.g. for AnalysisResult.draft_backend."""
        return f"{self.backend}:{self.version}"

    @property
    def label(self) -> str:
        """Who wrote the text, for AnalysisResult.draft_backend: ``name/version``, and on a fallback
        ``template/1.0 (fallback from llava)``; the reason itself is in ``fallback``."""
        label = f"{self.backend}/{self.version}"
        return f"{label} (fallback from {self.configured})" if self.fallback else label


class Drafter:
    name: str = "base"
    version: str = "0"

    def draft(self, result: AnalysisResult, slice_embeddings: dict | None = None) -> str:
        raise NotImplementedError

    def draft_many(self, results: list[AnalysisResult],
                   slice_embeddings: list[dict | None] | None = None) -> list[str]:
        """Several studies per call; backends that can batch override this."""
        embs = slice_embeddings or [None] * len(results)
        return [self.draft(r, e) for r, e in zip(results, embs)]

    def settings(self) -> dict[str, Any]:
        return {}

    def draft_record(self, result: AnalysisResult, slice_embeddings: dict | None = None) -> Draft:
        return Draft(self.draft(result, slice_embeddings), self.name, self.version, self.settings())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}:{self.version}>"
