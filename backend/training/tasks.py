"""Celery task of the ``training`` queue (a GPU worker in production; settings.CELERY_TASK_ROUTES).

Late acks + reject on worker loss, as for inference jobs: a worker killed mid-run leaves the message
unacknowledged and the run is delivered again; a finished run's redelivery does nothing.
"""

from __future__ import annotations

from celery import shared_task

from . import runs


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, name="backend.training.tasks.run_training")
def run_training(self, run_id: int) -> str:
    return runs.execute(run_id, worker=self.request.hostname or "")


@shared_task(name="backend.training.tasks.rebuild_site_index")
def rebuild_site_index(model_version_id: int) -> str:
    """After a promotion: the new active version's similar cases from the site's signed reports."""
    from backend.inference.models import ModelVersion

    from . import site_index
    from backend.errors import Conflict

    try:
        summary = site_index.rebuild(ModelVersion.objects.get(pk=model_version_id), via="after promotion")
    except Conflict as exc:
        return f"site index not rebuilt: {exc}"
    return f"{summary.description} indexed into {summary.path}"
