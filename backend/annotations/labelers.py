"""Which labeler a site runs, read from settings (or the environment) at call time.

The rule labeler is the offline default and always runs: it is cheap, it gives
evidence spans for every task, and it is the second opinion the LLM is compared
with for the disagreement signal. The LLM labeler is added when
``SPINEAGENT_LABELER = "llm"`` and an endpoint is configured. Settings are read
with ``getattr(settings, NAME, os.environ.get(NAME))`` so a deployment can set
them either way and tests can override them.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from django.conf import settings

from spine_labels import LabelSet, LLMLabeler, RuleLabeler

RULES, LLM = "rules", "llm"


class Labeler(Protocol):
    version: str

    def label(self, text: str) -> LabelSet: ...


class LabelerNotConfigured(Exception):
    """``SPINEAGENT_LABELER = "llm"`` without a base URL or model."""


def setting(name: str, default: Any = None) -> Any:
    value = getattr(settings, name, None)
    if value in (None, ""):
        value = os.environ.get(name, default)
    return default if value in (None, "") else value


def configured_name() -> str:
    """"rules" or "llm"; anything else is a configuration error, said plainly."""
    name = str(setting("SPINEAGENT_LABELER", RULES)).strip().lower()
    if name not in (RULES, LLM):
        raise LabelerNotConfigured(f"SPINEAGENT_LABELER must be 'rules' or 'llm', not {name!r}")
    return name


def llm_labeler() -> LLMLabeler:
    base_url, model = setting("SPINEAGENT_LLM_BASE_URL"), setting("SPINEAGENT_LLM_MODEL")
    if not base_url or not model:
        raise LabelerNotConfigured("the LLM labeler needs SPINEAGENT_LLM_BASE_URL and SPINEAGENT_LLM_MODEL")
    return LLMLabeler(base_url=str(base_url), model=str(model), api_key=setting("SPINEAGENT_LLM_API_KEY"),
                      timeout=float(setting("SPINEAGENT_LLM_TIMEOUT", 60)),
                      max_retries=int(setting("SPINEAGENT_LLM_MAX_RETRIES", 2)))


def get_labeler(name: str | None = None) -> Labeler:
    """The labeler called ``name`` ("rules"/"llm"), or the configured one when None."""
    name = configured_name() if name is None else name
    if name == RULES:
        return RuleLabeler()
    if name == LLM:
        return llm_labeler()
    raise LabelerNotConfigured(f"unknown labeler {name!r}; use 'rules' or 'llm'")
