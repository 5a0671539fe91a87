"""spine_labels' labelers as the model library finds them: by name, through the ``spinefm.labelers`` entry
points (pyproject.toml), so ``models/`` never imports this package (dependencies point one way).

Each factory returns ``(name, label)``: the name a result records, and ``label(text) -> LabelSet``.
"""

from __future__ import annotations

from .llm import PROMPT_VERSION, LLMLabeler
from .rules import RULES_VERSION, RuleLabeler


def rules(**options):
    return f"spine_labels {RULES_VERSION}", RuleLabeler(**options).label


def llm(base_url: str, model: str, api_key: str | None = None, **options):
    labeler = LLMLabeler(base_url=base_url, model=model, api_key=api_key, **options)
    return f"spine_labels LLM {model} (prompt {PROMPT_VERSION})", labeler.label
