"""Which labeler a site runs, read from settings (or the environment) at call time.

The rule labeler is the offline default and always runs: it is cheap, it gives
evidence spans for every task, and it is the second opinion the LLM is compared
with for the disagreement signal. The LLM labeler is added when
``SPINEAGENT_LABELER = "llm"`` and an endpoint is configured (backend/settings.py,
read at call time so tests can override them).
"""

from __future__ import annotations

from typing import Protocol

from django.conf import settings

from spine_labels import LabelSet, LLMLabeler, RuleLabeler

RULES, LLM = "rules", "llm"


class Labeler(Protocol):
    version: str

    def label(self, text: str) -> LabelSet: ...


class LabelerNotConfigured(Exception):
    """``SPINEAGENT_LABELER = "llm"`` without a base URL or model."""


def configured_name() -> str:
    """"rules" or "llm"; anything else is a configuration error, said plainly."""
    name = str(settings.SPINEAGENT_LABELER or RULES).strip().lower()
    if name not in (RULES, LLM):
        raise LabelerNotConfigured(f"SPINEAGENT_LABELER must be 'rules' or 'llm', not {name!r}")
    return name


def llm_labeler() -> LLMLabeler:
    base_url, model = settings.SPINEAGENT_LLM_BASE_URL, settings.SPINEAGENT_LLM_MODEL
    if not base_url or not model:
        raise LabelerNotConfigured("the LLM labeler needs SPINEAGENT_LLM_BASE_URL and SPINEAGENT_LLM_MODEL")
    return LLMLabeler(base_url=str(base_url), model=str(model), api_key=settings.SPINEAGENT_LLM_API_KEY or None,
                      timeout=float(settings.SPINEAGENT_LLM_TIMEOUT),
                      max_retries=int(settings.SPINEAGENT_LLM_MAX_RETRIES))


def get_labeler(name: str | None = None) -> Labeler:
    """The labeler called ``name`` ("rules"/"llm"), or the configured one when None."""
    name = configured_name() if name is None else name
    if name == RULES:
        return RuleLabeler()
    if name == LLM:
        return llm_labeler()
    raise LabelerNotConfigured(f"unknown labeler {name!r}; use 'rules' or 'llm'")
