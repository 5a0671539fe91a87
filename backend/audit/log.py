"""``record()``: the one way to write an audit event."""

from __future__ import annotations

from typing import Any

from .models import AuditEvent


def client_ip(request) -> str | None:
    """The caller's address (the proxy's X-Forwarded-For first hop when behind nginx)."""
    if request is None:
        return None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    ip = forwarded.split(",")[0].strip() if forwarded else request.META.get("REMOTE_ADDR")
    return ip or None


def record(action: str, target_type: str, target_id: Any = "", *, user=None, request=None,
           detail: dict | None = None) -> AuditEvent:
    """Append one event. ``user`` defaults to ``request.user``; anonymous callers are stored as no user."""
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    return AuditEvent.objects.create(
        user=user, username=getattr(user, "username", "") if user else "", action=action,
        target_type=target_type, target_id=str(target_id or ""), detail=detail or {}, ip=client_ip(request))
