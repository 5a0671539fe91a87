"""Drafting backends: template (default, no LM), llava (our model), openai (any endpoint)."""

from spinefm.report.backends.base import Draft, Drafter
from spinefm.report.backends.template import TemplateDrafter

__all__ = ["Draft", "Drafter", "TemplateDrafter"]
