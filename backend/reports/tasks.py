"""Celery task: write a result's DICOM SR into Orthanc. Idempotent; never touches the job's outcome, but
records its own (``InferenceResult.sr_status`` / ``sr_error``), which the reader and the admin see and an
admin can retry (``POST /api/studies/<uid>/result/sr-export``)."""

from __future__ import annotations

import logging

from celery import shared_task

from backend.errors import ServiceUnavailable, redact_addresses
from backend.inference.models import InferenceResult
from backend.studies.orthanc.client import OrthancClient, get_client

from . import dicom_sr

log = logging.getLogger(__name__)

RETRY_DELAYS = (10, 60, 300)


def record(result_id: int, status: str, error: str = "") -> None:
    InferenceResult.objects.filter(pk=result_id).update(sr_status=status, sr_error=redact_addresses(error)[:2000])


def export(result: InferenceResult, client: OrthancClient) -> str:
    """Build and STOW the SR unless Orthanc already holds it (same deterministic SOPInstanceUID)."""
    _, sop_uid = dicom_sr.sr_uids(result)
    if any(m.get("Type") == "Instance" for m in client.lookup(sop_uid)):
        return "exists"
    sr = dicom_sr.build_sr(result, client.study_metadata(result.study.study_instance_uid))
    if sr is None:
        return "nothing to export"
    outcome = client.stow([dicom_sr.to_part10(sr)])
    if outcome.failed:
        raise RuntimeError(f"Orthanc refused the SR {sop_uid}: {outcome.failed}")
    return "stored"


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=len(RETRY_DELAYS),
             name="backend.reports.tasks.export_sr")
def export_sr(self, result_id: int) -> str:
    result = InferenceResult.objects.select_related("study").filter(pk=result_id).first()
    if result is None:
        return "result gone"
    try:
        outcome = export(result, get_client())
    except ServiceUnavailable as exc:
        if self.request.retries >= len(RETRY_DELAYS):
            log.error("SR export of result %s gave up: %s", result_id, exc)
            record(result_id, "failed", f"Orthanc stayed unavailable: {exc}")
            return "failed"
        log.warning("SR export of result %s: %s; retrying", result_id, exc)
        record(result_id, "queued", f"waiting to retry: {exc}")
        raise self.retry(exc=exc, countdown=RETRY_DELAYS[self.request.retries])
    except Exception as exc:
        log.exception("SR export of result %s failed", result_id)
        record(result_id, "failed", f"{exc.__class__.__name__}: {exc}")
        return "failed"
    record(result_id, outcome)
    return outcome
