"""Reactions to a finished inference job: the AI draft version, then the DICOM SR export."""

from __future__ import annotations

import logging

from django.db import transaction

from .versions import add_ai_draft

log = logging.getLogger(__name__)


def dispatch_sr_export(result_id: int) -> None:
    """Queue the SR export; a broker outage is logged, never raised (the job already succeeded)."""
    from .tasks import export_sr

    from .tasks import record

    record(result_id, "queued")  # before sending: a fast worker's outcome must not be overwritten
    try:
        export_sr.apply_async((result_id,), retry=True, retry_policy={"max_retries": 1, "interval_start": 0.2})
    except Exception as exc:
        log.exception("could not queue the DICOM SR export for result %s", result_id)
        record(result_id, "failed", f"could not be queued ({exc.__class__.__name__}); retry when the broker is back")


def draft_from_result(sender, result, **kwargs):
    """inference_succeeded: version 0 (or a newer AI version while nobody edited), then queue the SR."""
    try:
        add_ai_draft(result)
    except Exception:
        # The report GET rebuilds a missing draft from the latest result, so a failure here is recoverable.
        log.exception("could not store the AI draft of result %s", result.pk)
    transaction.on_commit(lambda: dispatch_sr_export(result.pk))
