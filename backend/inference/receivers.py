"""Reactions to index events (a newly indexed study queues one automatic job) and to a finished job (its
result's DICOM SR is exported)."""

import logging

from django.conf import settings
from django.db import transaction

from .jobs import create_job
from .models import InferenceJob

log = logging.getLogger(__name__)


def queue_job_for_new_study(sender, study, created, **kwargs):
    if not (created and settings.SPINEAGENT_AUTO_QUEUE_INFERENCE):
        return
    if InferenceJob.objects.filter(study=study, trigger=InferenceJob.AUTO).exists():
        return
    create_job(study, trigger=InferenceJob.AUTO)


def dispatch_sr_export(result_id: int) -> None:
    """Queue the SR export; a broker outage is logged, never raised (the job already succeeded)."""
    from .tasks import export_sr, record

    record(result_id, "queued")  # before sending: a fast worker's outcome must not be overwritten
    try:
        export_sr.apply_async((result_id,), retry=True, retry_policy={"max_retries": 1, "interval_start": 0.2})
    except Exception as exc:
        log.exception("could not queue the DICOM SR export for result %s", result_id)
        record(result_id, "failed", f"could not be queued ({exc.__class__.__name__}); retry when the broker is back")


def export_sr_of_result(sender, result, **kwargs):
    """inference_succeeded: queue the result's DICOM SR once the transaction commits."""
    transaction.on_commit(lambda: dispatch_sr_export(result.pk))
