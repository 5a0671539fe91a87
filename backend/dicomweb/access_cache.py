"""A short-lived, per-process memory of credentials already allowed to read images.

A viewer fetches one frame per request, hundreds per study; re-checking the
token or session and the user's permissions in PostgreSQL for each costs more
than the frame. A credential that passed the full DRF check is trusted for
``TTL_SECONDS``; revoking access (logout, role change, token deletion) takes
effect within that time. Only successful checks are remembered.
"""

from __future__ import annotations

import hashlib
import threading
import time

from django.conf import settings

TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000

_allowed: dict[str, float] = {}
_lock = threading.Lock()


def credential_key(request) -> str | None:
    """A digest of what authenticates this request (Authorization header or session cookie)."""
    raw = request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    return hashlib.sha256(raw.encode()).hexdigest() if raw else None


def is_allowed(key: str | None, now: float | None = None) -> bool:
    if key is None:
        return False
    expires = _allowed.get(key)
    return expires is not None and expires > (now or time.monotonic())


def remember(key: str | None, now: float | None = None) -> None:
    if key is None:
        return
    now = now or time.monotonic()
    with _lock:
        if len(_allowed) >= MAX_ENTRIES:
            for stale in [k for k, t in _allowed.items() if t <= now] or list(_allowed)[: MAX_ENTRIES // 2]:
                _allowed.pop(stale, None)
        _allowed[key] = now + TTL_SECONDS


def forget_all() -> None:
    with _lock:
        _allowed.clear()
