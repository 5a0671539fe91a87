"""The configured drafter, with the template behind it: a draft is written even when the drafter is not.

A drafter that could not be loaded (bad path, weights that do not fit, unreachable setting) or that
fails on one study (server down, out of memory) must not cost the radiologist the draft: the
template, which cannot invent anything, writes it instead, and the Draft says so (``fallback`` holds
the reason, ``label`` names both). The reason of a load failure is kept, so every later draft
repeats it instead of retrying a load that failed.
"""

from __future__ import annotations

import logging
from typing import Any

from spinefm.report.backends.base import Draft, Drafter
from spinefm.report.backends.template import TemplateDrafter
from spinefm.results import AnalysisResult

log = logging.getLogger(__name__)


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:limit]


class GuardedDrafter(Drafter):
    """``primary`` (None when it failed to load, with ``load_error``) and the template fallback."""

    def __init__(self, primary: Drafter | None, configured: str, load_error: str = "",
                 fallback: Drafter | None = None):
        self.primary, self.configured, self.load_error = primary, configured, load_error
        self.fallback = fallback or TemplateDrafter()
        shown = primary or self.fallback
        self.name, self.version = shown.name, shown.version

    @property
    def status(self) -> str:
        """One line for the worker log: what will write the drafts."""
        if self.primary is not None:
            return f"drafter {self.primary.name}/{self.primary.version} loaded"
        return (f"drafter {self.configured} could not be loaded ({self.load_error}); drafts will be written by "
                f"{self.fallback.name}/{self.fallback.version} with the fallback recorded")

    def settings(self) -> dict[str, Any]:
        return (self.primary or self.fallback).settings()

    def _fallback(self, result: AnalysisResult, reason: str) -> Draft:
        return Draft(self.fallback.draft(result), self.fallback.name, self.fallback.version,
                     self.fallback.settings(), fallback=reason, configured=self.configured)

    def draft_record(self, result: AnalysisResult, slice_embeddings: dict | None = None) -> Draft:
        if self.primary is None:
            return self._fallback(result, f"{self.configured} not loaded: {self.load_error}")
        try:
            return self.primary.draft_record(result, slice_embeddings)
        except Exception as exc:  # one study's failure (server down, OOM): the template writes this draft
            log.warning("drafter %s failed on this study (%s); the template writes the draft", self.configured,
                        one_line(exc))
            return self._fallback(result, f"{self.configured} failed: {one_line(exc)}")

    def draft(self, result: AnalysisResult, slice_embeddings: dict | None = None) -> str:
        return self.draft_record(result, slice_embeddings).text
