"""Reactions to other apps' signals. Failures are logged, never raised: the sender already committed.

* report_signed: the signed text becomes a label task (source "signed"); the LLM, if configured, is
  queued on Celery so signing never waits on a model.
* study_indexed: tasks imported before their images get linked to the study (and its patient id).
* inference_succeeded: the study's tasks get their model-uncertainty / disagreement signals refreshed.
"""

from __future__ import annotations

import logging

from django.db import transaction

from . import priority, services
from .models import LabelTask

log = logging.getLogger(__name__)


def task_from_signed_report(report_id: int) -> LabelTask | None:
    from backend.reports.models import Report

    report = Report.objects.select_related("study").filter(pk=report_id).first()
    if report is None or not report.locked or report.signed_number is None:
        return None
    version = report.versions.filter(number=report.signed_number).first()
    if version is None or not version.text.strip():
        return None
    task, _ = services.create_task(study_instance_uid=report.study.study_instance_uid, text=version.text,
                                   source=LabelTask.SIGNED, patient_id=report.study.patient_id, report=report,
                                   defer_llm=True)
    return task


def on_report_signed(sender, report_id, **kwargs):
    try:
        task_from_signed_report(report_id)
    except Exception:
        log.exception("could not create the label task of signed report %s", report_id)


def on_study_indexed(sender, study, **kwargs):
    try:
        with transaction.atomic():  # a savepoint: a failure here must not break the indexer's transaction
            services.link_study(study)
    except Exception:
        log.exception("could not link label tasks to study %s", getattr(study, "pk", None))


def on_inference_succeeded(sender, result, **kwargs):
    try:
        with transaction.atomic():
            for task in LabelTask.objects.filter(study_instance_uid=result.study.study_instance_uid):
                if task.study_id is None:
                    task.study = result.study
                    task.save(update_fields=["study", "updated_at"])
                priority.refresh(task)
    except Exception:
        log.exception("could not refresh label priorities after result %s", getattr(result, "pk", None))
