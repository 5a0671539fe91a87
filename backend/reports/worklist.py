"""The reading worklist: one query over studies with the latest job and the report joined in.

The display status is derived in SQL (a CASE over the report status and the latest
job), so filtering and paging happen in the database and rows cost no extra queries.
The latest job is joined once (a FilteredRelation), not looked up by one correlated subquery per
column, in one of two forms (bench/load_api.py, docs/benchmarks.md, 10,000 studies):
- no status filter: the join condition picks the row's newest job by a correlated lookup, so
  PostgreSQL walks the received_at index and stops after one page (~2 ms), and the count is taken
  on the studies alone (the joins add no rows);
- status filter: the display status is needed for every study, so the condition is membership in
  the set of latest jobs (one DISTINCT ON over the job table, hashed once), not 10,000 lookups;
  the total comes from the same query (COUNT(*) OVER ()), so that work is done once per request.
  Sorting by anything but arrival (status, priority, reader, study date) takes the second form too.

Quick filters: ``mine`` (the caller reads or signed it), ``unread`` (nobody opened it yet and it is not
signed), ``hide`` (display statuses left out: the radiologist's page hides ``unsupported`` by default).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import (Case, CharField, Count, Exists, F, FilteredRelation, IntegerField, OuterRef, Q,
                              QuerySet, Subquery, Value, When, Window)
from django.db.models.functions import Coalesce

from backend.errors import Invalid
from backend.inference.models import InferenceJob
from backend.studies.models import Study

from .models import Report

QUEUED, RUNNING, DRAFT_READY, IN_REVIEW, SIGNED, FAILED, UNSUPPORTED, NOT_QUEUED = (
    "queued", "running", "draft ready", "in review", "signed", "failed", "unsupported", "not queued")
STATUSES = (QUEUED, RUNNING, DRAFT_READY, IN_REVIEW, SIGNED, FAILED, UNSUPPORTED, NOT_QUEUED)
# ?ordering=<key> or -<key>; sorting by status follows the reading workflow (STATUSES order).
ORDERINGS = {"received": "received_at", "date": "study_date", "status": "status_rank", "priority": "priority",
             "reader": "reader_name"}
DEFAULT_ORDERING = "-received"


def _latest_job_condition(every_row: bool) -> Q:
    """Which of a study's jobs is "the latest" (newest created_at, then higher id), in the form that
    suits the query: a set for queries over every study, a per-row lookup for one page."""
    if every_row:
        latest_ids = InferenceJob.objects.order_by("study_id", "-created_at", "-pk").distinct("study_id")
        return Q(jobs__pk__in=Subquery(latest_ids.values("pk")))
    newest = InferenceJob.objects.filter(study=OuterRef("pk")).order_by("-created_at", "-pk")
    return Q(jobs__pk=Subquery(newest.values("pk")[:1]))


def worklist_queryset(every_row: bool = False) -> QuerySet:
    """Studies annotated with job_*, report_*, reader, model_* and the derived ``display_status``.

    Precedence: signed; in review (a radiologist is on it, even if a re-run is queued);
    queued/running; draft ready (also when the latest job succeeded and the draft is being
    built); failed (latest job failed, no draft); unsupported (latest job found the study is not a
    spine MRI it can read, no draft); not queued.
    """
    qs = Study.objects.annotate(
        latest_job=FilteredRelation("jobs", condition=_latest_job_condition(every_row)),
    ).annotate(
        job_id=F("latest_job__pk"),
        job_status=F("latest_job__status"),
        job_error=F("latest_job__error"),
        job_model_name=F("latest_job__model_version__name"),
        job_model_version=F("latest_job__model_version__version"),
        job_model_synthetic=F("latest_job__model_version__synthetic_training"),
        report_status=F("report__status"),
        reader_name=Coalesce(F("report__signed_by__username"), F("report__reader__username")),
        priority=F("report__ai_priority"),
    )
    return qs.annotate(display_status=Case(
        When(Q(report_status=Report.SIGNED), then=Value(SIGNED)),
        When(Q(report_status=Report.IN_REVIEW), then=Value(IN_REVIEW)),
        When(Q(job_status=InferenceJob.QUEUED), then=Value(QUEUED)),
        When(Q(job_status=InferenceJob.RUNNING), then=Value(RUNNING)),
        When(Q(report_status=Report.DRAFT_READY) | Q(job_status=InferenceJob.SUCCEEDED), then=Value(DRAFT_READY)),
        When(Q(job_status=InferenceJob.FAILED), then=Value(FAILED)),
        When(Q(job_status=InferenceJob.UNSUPPORTED), then=Value(UNSUPPORTED)),
        default=Value(NOT_QUEUED), output_field=CharField(),
    )).order_by("-received_at", "-pk")


def _status_rank() -> Case:
    return Case(*(When(display_status=s, then=Value(i)) for i, s in enumerate(STATUSES)),
                output_field=IntegerField())


@dataclass(frozen=True)
class Filters:
    """The worklist's filters and sort, validated (``serializers.WorklistQuery`` reads them off the query):
    display statuses asked for and hidden (empty: no filter), study dates (inclusive), reader, the quick
    filters ``mine`` and ``unread``, and ``ordering`` (an ORDERINGS key, prefixed - for descending)."""

    status: frozenset[str] = frozenset()
    hide: frozenset[str] = frozenset()
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    reader: str = ""
    mine: bool = False
    unread: bool = False
    ordering: str = DEFAULT_ORDERING

    @property
    def statuses(self) -> set[str]:
        """The display statuses to show (``status`` minus ``hide``); empty = no status filter."""
        wanted = set(self.status)
        if self.hide:
            wanted = (wanted or set(STATUSES)) - self.hide
        return wanted if wanted != set(STATUSES) else set()

    @property
    def sort(self) -> tuple[str, bool]:
        """(annotation to sort by, descending)."""
        return ORDERINGS[self.ordering.lstrip("-")], self.ordering.startswith("-")

    @property
    def needs_every_status(self) -> bool:
        """Whether the query needs every study's display status: an explicit status filter, a hidden status
        other than unsupported, or sorting by status. Hiding unsupported studies alone does not: those are
        found from the few unsupported jobs (``unsupported_study_ids``)."""
        return bool(self.status) or bool(self.hide - {UNSUPPORTED}) or self.sort[0] == "status_rank"


def unsupported_study_ids() -> QuerySet:
    """Ids of the studies whose display status is ``unsupported``: the latest job is unsupported and the
    report has no draft (the CASE in worklist_queryset gives every other status precedence over it; the
    test suite checks the two agree). Starts from the unsupported jobs, few, by the status index."""
    newer = InferenceJob.objects.filter(
        Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk")),
        study=OuterRef("study"))
    return (InferenceJob.objects.filter(status=InferenceJob.UNSUPPORTED).exclude(Exists(newer))
            .exclude(study__report__status__in=(Report.SIGNED, Report.IN_REVIEW, Report.DRAFT_READY))
            .values("study_id"))


def _study_filters(qs: QuerySet, filters: Filters, user=None) -> QuerySet:
    """The filters on the study and its report, which need no job: dates (study date, inclusive), reader,
    mine (the caller's name as reader), unread (nobody opened it, not signed)."""
    if filters.date_from:
        qs = qs.filter(study_date__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(study_date__lte=filters.date_to)
    if filters.reader:
        qs = qs.filter(_reader_is(filters.reader))
    if filters.mine:
        if user is None or not user.is_authenticated:
            raise Invalid("mine needs a logged-in user", field="mine")
        qs = qs.filter(_reader_is(user.get_username()))
    if filters.unread:
        qs = qs.filter(Q(report__isnull=True) | Q(report__first_opened_at__isnull=True)).exclude(
            report__status=Report.SIGNED)
    return qs


def _reader_is(username: str) -> Q:
    # Spelled out (not the Coalesce annotation) so PostgreSQL can use the username and FK indexes.
    return (Q(report__signed_by__username=username)
            | Q(report__signed_by__isnull=True, report__reader__username=username))


def filtered(filters: Filters, user=None) -> QuerySet:
    """Apply the filters and the ordering on the every-row form of the query (see the module docstring)."""
    wanted = filters.statuses
    field, descending = filters.sort
    qs = _study_filters(worklist_queryset(every_row=True), filters, user)
    if wanted:
        qs = qs.filter(display_status__in=wanted)
    if field == "status_rank":
        qs = qs.annotate(status_rank=_status_rank())
    return qs.order_by(_sort_key(field, descending), "-received_at", "-pk")


def _sort_key(field: str, descending: bool):
    """Rows without a value last; received_at is never null, and plain ASC/DESC lets its index serve."""
    if field == "received_at":
        return F(field).desc() if descending else F(field).asc()
    return F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True)


def _cheap_studies(filters: Filters, user=None, hidden_ids: list[int] | None = None) -> QuerySet:
    """The studies the worklist shows when no display status is needed to filter or sort: the study and
    report filters, minus unsupported studies when those are hidden (``hidden_ids``: their ids, when the
    caller has them already)."""
    qs = _study_filters(Study.objects.all(), filters, user)
    if UNSUPPORTED in filters.hide:
        qs = qs.exclude(pk__in=hidden_ids if hidden_ids is not None else unsupported_study_ids())
    return qs


def count(filters: Filters, user=None) -> int:
    """How many rows the worklist has for ``filters``; without a status filter, counted on the studies alone
    (every join of the worklist adds at most one row per study, so the number is the same)."""
    if filters.needs_every_status:
        return filtered(filters, user).count()
    return _cheap_studies(filters, user).count()


def page(filters: Filters, offset: int, limit: int, user=None) -> tuple[list, int]:
    """One page of the worklist and the total number of rows.

    Needing every study's display status (status filter or sort), the page and its total come from one
    every-row query (a window count; an empty page past the end counts apart). Otherwise the total is counted
    on the studies (minus hidden unsupported ones, read once), and the page is either the per-row form of the
    query in arrival order when nothing is hidden (an index walk) or its ids picked on the studies and their
    report without any job, then those rows alone annotated (cheap at any offset).
    """
    if filters.needs_every_status:
        rows = list(filtered(filters, user).annotate(total_rows=Window(Count("pk")))[offset:offset + limit])
        return rows, (rows[0].total_rows if rows else count(filters, user))
    field, descending = filters.sort
    hidden = list(unsupported_study_ids().values_list("study_id", flat=True)) \
        if UNSUPPORTED in filters.hide else None  # few: read once for the page and the count
    if field == "received_at" and hidden is None:
        # In arrival order, nothing hidden: PostgreSQL walks the received_at index and stops after one page.
        rows = _study_filters(worklist_queryset(every_row=False), filters, user)
        if not descending:
            rows = rows.order_by("received_at", "pk")
        return list(rows[offset:offset + limit]), _cheap_studies(filters, user, hidden).count()
    ids = _cheap_studies(filters, user, hidden).annotate(priority=F("report__ai_priority"), reader_name=Coalesce(
        F("report__signed_by__username"), F("report__reader__username"))).order_by(
        _sort_key(field, descending), "-received_at", "-pk")
    ids = list(ids.values_list("pk", flat=True)[offset:offset + limit])
    rows = {row.pk: row for row in worklist_queryset(every_row=False).filter(pk__in=ids)}
    return [rows[pk] for pk in ids if pk in rows], _cheap_studies(filters, user, hidden).count()
