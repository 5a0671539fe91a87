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
