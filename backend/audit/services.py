"""Querying the audit log: validated filters and CSV rows (the views stay thin)."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .models import AuditEvent

CSV_HEADER = ["at", "user_id", "username", "action", "target_type", "target_id", "ip", "detail"]
FILTERS = ("user", "action", "target_type", "target_id", "date_from", "date_to")


class BadParams(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def _day(field: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadParams(field, f"{field} must be a date YYYY-MM-DD") from None


def parse_params(query) -> dict:
    """Clean the query string. ``user`` is a username; dates are inclusive days in UTC."""
    out: dict = {}
    for field in ("user", "target_type", "target_id"):
        if value := (query.get(field) or "").strip():
            if "\x00" in value:  # PostgreSQL text cannot hold NUL: a clear 400, not a database error
                raise BadParams(field, f"{field} must not contain NUL characters")
            out[field] = value[:150]
    if action := query.get("action"):
        if action not in dict(AuditEvent.ACTIONS):
            raise BadParams("action", "action must be one of " + ", ".join(dict(AuditEvent.ACTIONS)))
        out["action"] = action
    for field in ("date_from", "date_to"):
        if value := query.get(field):
            out[field] = _day(field, value).isoformat()
    if "date_from" in out and "date_to" in out and out["date_from"] > out["date_to"]:
        raise BadParams("date_to", "date_to is before date_from")
    return out


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
