"""The Celery application (Redis broker, late acks so a killed worker's job is redelivered) and the one
check that its broker can be reached, which every request that queues work makes before it writes."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

app = Celery("spineagent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
