"""The annotator's and the adjudicator's queues, as querysets with a chosen order.

``order``: ``priority`` (default: mean of the doubt signals, see priority.py),
``uncertainty`` (model uncertainty first), ``disagreement`` (labeler
disagreement first), ``oldest`` (first in, first out). Tasks without the
chosen signal come after those with it; ties go to the oldest task.
"""

from __future__ import annotations

from django.db.models import Count, F, QuerySet

from .models import LabelTask

ORDERS = {
    "priority": (F("priority").desc(), "created_at", "pk"),
    "uncertainty": (F("model_uncertainty").desc(nulls_last=True), "created_at", "pk"),
    "disagreement": (F("labeler_disagreement").desc(nulls_last=True), "created_at", "pk"),
    "oldest": ("created_at", "pk"),
}
DEFAULT_ORDER = "priority"


def _ordered(qs: QuerySet, order: str | None) -> QuerySet:
    """``order``: a key of ORDERS (the API's QueueQuery and the pages validate it), None for the default."""
    return qs.annotate(n_annotations=Count("annotations")).order_by(*ORDERS[order or DEFAULT_ORDER])


def for_annotator(user, order: str | None = None) -> QuerySet:
    """Open tasks this user has not annotated yet (a double-annotated task stays open for the second)."""
    qs = LabelTask.objects.filter(status=LabelTask.OPEN).exclude(annotations__annotator=user)
    return _ordered(qs, order)


def for_adjudication(order: str | None = None) -> QuerySet:
    return _ordered(LabelTask.objects.filter(status=LabelTask.ADJUDICATION), order)


def in_queue_of(task: LabelTask, user) -> bool:
    """Whether the user may see this task's text: it is in their queue, or they adjudicate."""
    if user.has_perm("annotations.adjudicate_labels"):
        return True
    return task.status == LabelTask.OPEN and not task.annotations.filter(annotator=user).exists()
