"""Celery task: the LLM extraction of one label task, off the request path (sign-off, bulk upload)."""

from __future__ import annotations

import logging

from celery import shared_task

from . import labelers, services
from .models import LabelTask

log = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, name="backend.annotations.tasks.llm_extract")
def llm_extract(task_id: int) -> str:
    task = LabelTask.objects.filter(pk=task_id).first()
    if task is None:
        return "task gone"
    try:
        extraction = services.extract(task, labelers.LLM)
    except labelers.LabelerNotConfigured as exc:
        log.error("LLM extraction of label task %s: %s", task_id, exc)
        return "not configured"
    return extraction.labeler
