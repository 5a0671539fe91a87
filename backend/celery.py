"""The Celery application (Redis broker, late acks so a killed worker's job is redelivered), the one
check that its broker can be reached, which every request that queues work makes before it writes, and
the one way services queue a task: by its name, so a service never imports the tasks that call it."""

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

app = Celery("spineagent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue(name: str, *args: Any, **options: Any) -> None:
    """Queue the task registered as ``name`` with ``args``; ``options`` as for ``apply_async`` (retry, ...).

    By name: tasks import the services they run, and a service that imported its tasks back would close
    an import circle. The queue comes from CELERY_TASK_ROUTES by that name, as it would for ``apply_async``.
    ``send_task`` ignores CELERY_TASK_ALWAYS_EAGER, so an eager app runs the task here instead, as
    ``apply_async`` would, after importing every app's tasks module (what a worker does when it starts).
    """
    if app.conf.task_always_eager:
        app.autodiscover_tasks(force=True)
        app.tasks[name].apply_async(args, **options)
        return
    app.send_task(name, args=args, **options)


def broker_available() -> bool:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


def require_broker() -> None:
    """ServiceUnavailable (503, Retry-After) unless the broker answers: nothing is queued half-way."""
    from backend.errors import ServiceUnavailable

    if not broker_available():
        raise ServiceUnavailable("Redis", "the job queue (Celery broker) cannot be reached; try again shortly")
