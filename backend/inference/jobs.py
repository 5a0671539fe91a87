"""The inference job state machine and its dispatch to Celery.

queued -> running -> succeeded | failed | unsupported; running -> queued when
a backing service is down (retried later) or the worker died (redelivered).
Every transition takes a row lock, so a redelivered message and a slow worker
cannot both finish the same job.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backend import celery
from backend.errors import redact_addresses
from backend.studies.models import Study

from .models import InferenceJob, InferenceResult, ModelVersion
from .signals import inference_succeeded

log = logging.getLogger(__name__)


class InvalidTransition(RuntimeError):
    pass


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(state=ModelVersion.ACTIVE).first()


def create_job(study: Study, trigger: str = InferenceJob.MANUAL, model_version: ModelVersion | None = None) -> InferenceJob:
    """Create a queued job and dispatch it once the transaction commits."""
    job = InferenceJob.objects.create(study=study, trigger=trigger,
                                      model_version=model_version or active_model_version())
    transaction.on_commit(lambda: dispatch(job.pk))
    return job


def dispatch(job_id: int) -> bool:
    """Publish the job to the broker. With Redis down the job stays queued, undispatched."""
    try:
        celery.enqueue("backend.inference.tasks.run_inference_job", job_id, retry=True,
                       retry_policy=settings.CELERY_TASK_PUBLISH_RETRY_POLICY)
    except Exception as exc:  # kombu raises OperationalError and friends
        log.warning("job %s not dispatched (broker unavailable: %s); it will be re-sent", job_id, exc)
        return False
    InferenceJob.objects.filter(pk=job_id, dispatched_at__isnull=True).update(dispatched_at=timezone.now())
    return True


def dispatch_pending(older_than: timedelta = timedelta(seconds=0)) -> int:
    """Re-send queued jobs that never reached the broker. Returns how many were sent."""
    cutoff = timezone.now() - older_than
    pending = InferenceJob.objects.filter(status=InferenceJob.QUEUED, dispatched_at__isnull=True,
                                          created_at__lte=cutoff).values_list("pk", flat=True)
    return sum(dispatch(pk) for pk in list(pending))


@transaction.atomic
def start(job_id: int, worker: str = "") -> InferenceJob | None:
    """Claim the job for this delivery. None when there is nothing to do (already finished)."""
    job = InferenceJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        log.warning("job %s no longer exists; message dropped", job_id)
        return None
    if job.status in InferenceJob.TERMINAL:
        return None
    if job.attempts >= settings.SPINEAGENT_MAX_JOB_ATTEMPTS:
        _finish(job, InferenceJob.FAILED, f"gave up after {job.attempts} attempts" +
                (f"; last error: {job.error}" if job.error else ""))
        return None
    if job.status == InferenceJob.RUNNING:
        log.warning("job %s was running on %s when its worker stopped; running it again", job.pk, job.worker)
    job.status = InferenceJob.RUNNING
    job.attempts += 1
    job.worker = worker
    job.started_at = timezone.now()
    job.stage, job.progress = "starting", 0
    job.dispatched_at = job.dispatched_at or job.started_at
    job.save()
    return job


def set_stage(job: InferenceJob, stage: str, progress: int) -> None:
    InferenceJob.objects.filter(pk=job.pk, status=InferenceJob.RUNNING).update(stage=stage, progress=progress)
    job.stage, job.progress = stage, progress


def _finish(job: InferenceJob, status: str, error: str = "", timings: dict | None = None) -> None:
    job.status = status
    job.error = error
    job.finished_at = timezone.now()
    job.stage = status
    job.progress = 100 if status == InferenceJob.SUCCEEDED else job.progress
    if timings:
        job.timings = timings
    job.save()


@transaction.atomic
def succeed(job_id: int, data: dict, timings: dict) -> InferenceResult | None:
    """Store the one result and mark success, atomically; a duplicate delivery stores nothing."""
    job = InferenceJob.objects.select_for_update().get(pk=job_id)
    if job.status in InferenceJob.TERMINAL:
        return None
    result, _ = InferenceResult.objects.get_or_create(
        job=job, defaults={"study_id": job.study_id, "model_version": job.model_version, "data": data})
    _finish(job, InferenceJob.SUCCEEDED, timings=timings)
    transaction.on_commit(lambda: inference_succeeded.send(sender=InferenceResult, result=result))
    return result


@transaction.atomic
def end(job_id: int, status: str, error: str) -> None:
    """Mark failed or unsupported with the reason shown to users."""
    if status not in (InferenceJob.FAILED, InferenceJob.UNSUPPORTED):
        raise InvalidTransition(status)
    job = InferenceJob.objects.select_for_update().get(pk=job_id)
    if job.status not in InferenceJob.TERMINAL:
        _finish(job, status, redact_addresses(error))


@transaction.atomic
def requeue(job_id: int, error: str) -> None:
    """Back to queued after a transient outage; the task retries it later."""
    job = InferenceJob.objects.select_for_update().get(pk=job_id)
    if job.status == InferenceJob.RUNNING:
        job.status, job.error, job.stage = InferenceJob.QUEUED, redact_addresses(error), "waiting to retry"
        job.save()
