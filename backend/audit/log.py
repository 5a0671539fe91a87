"""``record()``: the one way to write an audit event."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings

from .models import AuditEvent


def client_ip(request) -> str | None:
    """The caller's address, as seen by the outermost proxy we trust.

    With ``SPINEAGENT_TRUSTED_PROXIES`` = N > 0 (nginx in front: 1), the N-th address from the right of
    X-Forwarded-For, the one our own proxy appended; the left part is whatever the client chose to send
    and would let anyone forge the address in the audit log and dodge the per-address login throttle.
    With 0 (nothing in front), the socket's address.
    """
    if request is None:
        return None
    proxies = settings.SPINEAGENT_TRUSTED_PROXIES
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    ip = hops[-proxies] if proxies and len(hops) >= proxies else request.META.get("REMOTE_ADDR")
    try:
        return str(ipaddress.ip_address((ip or "").strip()))
    except ValueError:  # absent or not an address (a misconfigured proxy): stored as unknown
        return None


def record(action: str, target_type: str, target_id: Any = "", *, user=None, request=None,
           detail: dict | None = None) -> AuditEvent:
    """Append one event. ``user`` defaults to ``request.user``; anonymous callers are stored as no user."""
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    return AuditEvent.objects.create(
        user=user, username=getattr(user, "username", "") if user else "", action=action,
        target_type=target_type, target_id=_text(target_id)[:128], detail=_clean(detail or {}),
        ip=client_ip(request))


def _text(value: Any) -> str:
    """PostgreSQL text and jsonb refuse NUL; anyone's input (a failed login's name) may carry one."""
    return str(value or "").replace("\x00", "\ufffd")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
