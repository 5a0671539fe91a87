"""The Celery application: Redis broker, late acks so a killed worker's job is redelivered."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

app = Celery("spineagent")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
