"""Reactions to a finished inference job: the AI draft version."""

from __future__ import annotations

import logging

from .versions import add_ai_draft

log = logging.getLogger(__name__)


def draft_from_result(sender, result, **kwargs):
    """inference_succeeded: version 0 (or a newer AI version while nobody edited)."""
    try:
        add_ai_draft(result)
    except Exception:
        # The report GET rebuilds a missing draft from the latest result, so a failure here is recoverable.
        log.exception("could not store the AI draft of result %s", result.pk)
