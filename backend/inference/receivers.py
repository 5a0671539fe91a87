"""Reactions to index events: a newly indexed study queues one automatic job."""

from django.conf import settings

from .jobs import create_job
from .models import InferenceJob


def queue_job_for_new_study(sender, study, created, **kwargs):
    if not (created and settings.SPINEAGENT_AUTO_QUEUE_INFERENCE):
        return
    if InferenceJob.objects.filter(study=study, trigger=InferenceJob.AUTO).exists():
        return
    create_job(study, trigger=InferenceJob.AUTO)
