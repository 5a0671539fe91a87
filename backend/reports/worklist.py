"""The reading worklist: one query over studies with the latest job and the report joined in.

The display status is derived in SQL (a CASE over the report status and the latest
job), so filtering and paging happen in the database and rows cost no extra queries.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Case, CharField, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from backend.inference.models import InferenceJob
from backend.studies.models import Study

from .models import Report

QUEUED, RUNNING, DRAFT_READY, IN_REVIEW, SIGNED, FAILED, NOT_QUEUED = (
    "queued", "running", "draft ready", "in review", "signed", "failed", "not queued")
STATUSES = (QUEUED, RUNNING, DRAFT_READY, IN_REVIEW, SIGNED, FAILED, NOT_QUEUED)


def _latest_job(field: str) -> Subquery:
    jobs = InferenceJob.objects.filter(study=OuterRef("pk")).order_by("-created_at", "-pk")
    return Subquery(jobs.values(field)[:1])


def worklist_queryset() -> QuerySet:
    """Studies annotated with job_*, report_*, reader, model_* and the derived ``display_status``.

    Precedence: signed; in review (a radiologist is on it, even if a re-run is queued);
    queued/running; draft ready (also when the latest job succeeded and the draft is being
    built); failed (latest job failed or unsupported and no draft); not queued.
    """
    qs = Study.objects.annotate(
        job_id=_latest_job("pk"),
        job_status=_latest_job("status"),
        job_error=_latest_job("error"),
        job_model_name=_latest_job("model_version__name"),
        job_model_version=_latest_job("model_version__version"),
        job_model_synthetic=_latest_job("model_version__synthetic_training"),
        report_status=F("report__status"),
        reader_name=Coalesce(F("report__signed_by__username"), F("report__reader__username")),
    )
    return qs.annotate(display_status=Case(
        When(Q(report_status=Report.SIGNED), then=Value(SIGNED)),
        When(Q(report_status=Report.IN_REVIEW), then=Value(IN_REVIEW)),
        When(Q(job_status=InferenceJob.QUEUED), then=Value(QUEUED)),
        When(Q(job_status=InferenceJob.RUNNING), then=Value(RUNNING)),
        When(Q(report_status=Report.DRAFT_READY) | Q(job_status=InferenceJob.SUCCEEDED), then=Value(DRAFT_READY)),
        When(Q(job_status__in=(InferenceJob.FAILED, InferenceJob.UNSUPPORTED)), then=Value(FAILED)),
        default=Value(NOT_QUEUED), output_field=CharField(),
    )).order_by("-received_at", "-pk")


class BadFilter(ValueError):
    pass


def _parse_date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None


def filtered(params) -> QuerySet:
    """Apply ?status=&date_from=&date_to=&reader= (dates are the study date, inclusive)."""
    qs = worklist_queryset()
    if status := params.get("status"):
        wanted = {s.strip().replace("_", " ") for s in status.split(",") if s.strip()}
        if unknown := wanted - set(STATUSES):
            raise BadFilter(f"unknown status {', '.join(sorted(unknown))}; one of {', '.join(STATUSES)}")
        qs = qs.filter(display_status__in=wanted)
    if value := params.get("date_from"):
        qs = qs.filter(study_date__gte=_parse_date("date_from", value))
    if value := params.get("date_to"):
        qs = qs.filter(study_date__lte=_parse_date("date_to", value))
    if reader := params.get("reader"):
        # Spelled out (not the Coalesce annotation) so PostgreSQL can use the username and FK indexes.
        qs = qs.filter(Q(report__signed_by__username=reader)
                       | Q(report__signed_by__isnull=True, report__reader__username=reader))
    return qs
