"""Celery tasks. Late acks + reject on worker loss: a killed worker's job is delivered again."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from backend.errors import ServiceUnavailable
from spinefm.results import UnsupportedStudy

from . import jobs, runner
from .models import InferenceJob

log = logging.getLogger(__name__)

RETRY_DELAYS = (5, 15, 60)


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
    jobs.succeed(job_id, data, timings)
    return InferenceJob.SUCCEEDED


@shared_task(name="backend.inference.tasks.dispatch_pending_jobs")
def dispatch_pending_jobs() -> int:
    return jobs.dispatch_pending()


@worker_ready.connect
def _dispatch_on_start(sender=None, **kwargs):
    """Jobs created while Redis was down are sent when a worker (and so the broker) is back."""
    try:
        jobs.dispatch_pending()
    except Exception:
        log.exception("could not dispatch pending jobs at worker start")
