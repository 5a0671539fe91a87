"""Celery tasks. Late acks + reject on worker loss: a killed worker's job is delivered again."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_process_init, worker_ready

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
    if data.get("draft_fallback"):
        log.warning("job %s: draft written by %s; %s", job_id, data.get("draft_backend"), data["draft_fallback"])
    else:
        log.info("job %s: draft written by %s", job_id, data.get("draft_backend") or "no drafter")
    jobs.succeed(job_id, data, timings)
    return InferenceJob.SUCCEEDED


@shared_task(name="backend.inference.tasks.dispatch_pending_jobs")
def dispatch_pending_jobs() -> int:
    return jobs.dispatch_pending()


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
