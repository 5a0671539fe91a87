"""spine_labels: ternary condition labels from spine MRI report text.

``extract_labels(text, labeler="rules")`` returns a :class:`LabelSet` with,
for every condition of the spinefm registry, a value (1 present, 0 absent,
-1 uncertain), the evidence spans (offsets, sentence, level, severity, cue)
and provenance (source, labeler version). The rule labeler is the offline
default; the LLM labeler talks to any OpenAI-compatible endpoint and falls
back to the rules when its output cannot be trusted. Importable without
Django or torch.
"""

from __future__ import annotations

from typing import Any

from .agreement import (cohen_kappa, condition_metrics, confusion, evaluate, fleiss_kappa, format_table,
                        jackknife_ci, pair_kappa, pair_kappa_ci)
from .importing import ImportResult, ReportRow, RowError, read_reports
from .llm import PROMPT_VERSION, LLMLabeler
from .rules import RULES_VERSION, RuleLabeler
from .schema import SOURCE_FALLBACK, SOURCE_LLM, SOURCE_RULES, STUDY_LEVEL, Evidence, Label, LabelSet

__version__ = "1.0.0"


def extract_labels(text: str, labeler: str = "rules", **kw: Any) -> LabelSet:
    """Label one report.

    ``labeler="rules"`` (offline, keyword ``include_history``) or
    ``labeler="llm"`` with ``base_url=``, ``model=`` and optionally
    ``api_key=``, ``timeout=``, ``max_retries=`` (see :class:`LLMLabeler`).
    """
    if labeler == "rules":
        return RuleLabeler(**kw).label(text)
    if labeler == "llm":
        return LLMLabeler(**kw).label(text)
    raise ValueError(f"unknown labeler {labeler!r}; use 'rules' or 'llm'")


__all__ = [
    "extract_labels", "LabelSet", "Label", "Evidence", "RuleLabeler", "LLMLabeler", "RULES_VERSION",
    "PROMPT_VERSION", "SOURCE_RULES", "SOURCE_LLM", "SOURCE_FALLBACK", "cohen_kappa", "confusion",
    "condition_metrics", "evaluate", "format_table", "read_reports", "ImportResult", "ReportRow", "RowError",
    "fleiss_kappa", "jackknife_ci", "pair_kappa", "pair_kappa_ci", "STUDY_LEVEL",
]
