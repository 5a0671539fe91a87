"""Querying the audit log: the events matching the filters (validated by filters.py) and their CSV rows."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .models import AuditEvent

CSV_HEADER = ["at", "user_id", "username", "action", "target_type", "target_id", "ip", "detail"]


def events(params: dict) -> QuerySet:
    qs = AuditEvent.objects.all()
    if "user" in params:
        qs = qs.filter(username=params["user"])
    for field in ("action", "target_type", "target_id"):
        if field in params:
            qs = qs.filter(**{field: params[field]})
    # Half-open ranges on the indexed timestamp (a __date lookup would not use the index).
    if "date_from" in params:
        qs = qs.filter(at__gte=timezone.make_aware(datetime.combine(date.fromisoformat(params["date_from"]), time())))
    if "date_to" in params and params["date_to"] < date.max.isoformat():  # 9999-12-31: no upper bound
        end = date.fromisoformat(params["date_to"]) + timedelta(days=1)
        qs = qs.filter(at__lt=timezone.make_aware(datetime.combine(end, time())))
    return qs


def csv_rows(qs: QuerySet):
    """One list per event, oldest first, streamed from the database in chunks."""
    for e in qs.order_by("at", "pk").iterator(chunk_size=2000):
        yield [e.at.isoformat(), e.user_id or "", e.username, e.action, e.target_type, e.target_id, e.ip or "",
               json.dumps(e.detail, sort_keys=True)]
