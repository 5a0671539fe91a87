"""Celery tasks: run a job, dispatch pending ones, export a result's DICOM SR. Late acks + reject on worker
loss: a killed worker's job is delivered again."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_process_init, worker_ready

from backend.errors import ServiceUnavailable, redact_addresses
from backend.studies.orthanc.client import OrthancClient, get_client
from spinefm.results import UnsupportedStudy

from . import dicom_sr, jobs, runner
from .models import InferenceJob, InferenceResult

log = logging.getLogger(__name__)

RETRY_DELAYS = (5, 15, 60)
SR_RETRY_DELAYS = (10, 60, 300)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=len(RETRY_DELAYS),
             name="backend.inference.tasks.run_inference_job")
def run_inference_job(self, job_id: int) -> str:
    job = jobs.start(job_id, worker=self.request.hostname or "")
    if job is None:
        return "nothing to do"
    try:
        data, timings = runner.run(job)
    except UnsupportedStudy as exc:
        jobs.end(job_id, InferenceJob.UNSUPPORTED, str(exc))
        return InferenceJob.UNSUPPORTED
    except ServiceUnavailable as exc:
        if self.request.retries >= len(RETRY_DELAYS):
            jobs.end(job_id, InferenceJob.FAILED, str(exc))
            return InferenceJob.FAILED
        jobs.requeue(job_id, str(exc))
        raise self.retry(exc=exc, countdown=RETRY_DELAYS[self.request.retries])
    except Exception as exc:
        log.exception("job %s failed", job_id)
        jobs.end(job_id, InferenceJob.FAILED, f"{exc.__class__.__name__}: {exc}")
        return InferenceJob.FAILED
    if data.get("draft_fallback"):
        log.warning("job %s: draft written by %s; %s", job_id, data.get("draft_backend"), data["draft_fallback"])
    else:
        log.info("job %s: draft written by %s", job_id, data.get("draft_backend") or "no drafter")
    jobs.succeed(job_id, data, timings)
    return InferenceJob.SUCCEEDED


@shared_task(name="backend.inference.tasks.dispatch_pending_jobs")
def dispatch_pending_jobs() -> int:
    return jobs.dispatch_pending()


def record(result_id: int, status: str, error: str = "") -> None:
    """The SR export's outcome on its result (``InferenceResult.sr_status`` / ``sr_error``), which the reader
    and the admin see and an admin can retry (``POST /api/studies/<uid>/result/sr-export``)."""
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


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=len(SR_RETRY_DELAYS),
             name="backend.inference.tasks.export_sr")
def export_sr(self, result_id: int) -> str:
    """Write a result's DICOM SR into Orthanc. Idempotent; never touches the job's outcome, only its own
    (``record``)."""
    result = InferenceResult.objects.select_related("study").filter(pk=result_id).first()
    if result is None:
        return "result gone"
    try:
        outcome = export(result, get_client())
    except ServiceUnavailable as exc:
        if self.request.retries >= len(SR_RETRY_DELAYS):
            log.error("SR export of result %s gave up: %s", result_id, exc)
            record(result_id, "failed", f"Orthanc stayed unavailable: {exc}")
            return "failed"
        log.warning("SR export of result %s: %s; retrying", result_id, exc)
        record(result_id, "queued", f"waiting to retry: {exc}")
        raise self.retry(exc=exc, countdown=SR_RETRY_DELAYS[self.request.retries])
    except Exception as exc:
        log.exception("SR export of result %s failed", result_id)
        record(result_id, "failed", f"{exc.__class__.__name__}: {exc}")
        return "failed"
    record(result_id, outcome)
    return outcome


@worker_process_init.connect
def _load_model_on_start(**kwargs):
    """Each process that runs jobs (the prefork children, or the solo pool's process) loads the active model
    and its drafter when it starts, so the log says at start-up which drafter will write, or why it cannot.
    In a thread: the prefork pool kills a child whose start-up takes more than a few seconds, and loading an
    8B drafter takes longer; a job arriving meanwhile waits for the same load (analyzers._lock)."""
    def load():
        from django.db import connection

        from .analyzers import preload_active_model

        try:
            preload_active_model()
        finally:
            connection.close()

    threading.Thread(target=load, name="spineagent-model-preload", daemon=True).start()


@worker_ready.connect
def _dispatch_on_start(sender=None, **kwargs):
    """Jobs created while Redis was down are sent when a worker (and so the broker) is back."""
    try:
        jobs.dispatch_pending()
    except Exception:
        log.exception("could not dispatch pending jobs at worker start")
