"""A short-lived, per-process memory of credentials already allowed to read images, revocable at once.

A viewer fetches one frame per request, hundreds per study; re-checking the
token or session and the user's permissions in PostgreSQL for each costs more
than the frame. A credential that passed the full DRF check is trusted for
``TTL_SECONDS``, unless its user's access was revoked since: logout, logout
everywhere, a role or permission change, deactivation or a deleted token write
a revocation time to the shared cache (Redis, every web process sees it), and
a remembered credential granted before that time is forgotten on its next use.
The revocation check is one Redis read per fast-path request; when Redis cannot
answer, the request takes the full check instead (fail closed).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000
REVOKED_ALL = "gateway-revoked:all"

# credential digest -> (user id, expires on the monotonic clock, granted at on the wall clock)
_allowed: dict[str, tuple[int, float, float]] = {}
_lock = threading.Lock()


def credential_key(request) -> str | None:
    """A digest of what authenticates this request (Authorization header or session cookie)."""
    raw = request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    return hashlib.sha256(raw.encode()).hexdigest() if raw else None


def _revoked_key(user_id: int) -> str:
    return f"gateway-revoked:{user_id}"


def _revoked_since(user_id: int, granted_at: float) -> bool:
    try:
        times = cache.get_many([_revoked_key(user_id), REVOKED_ALL])
    except RedisError:
        log.warning("gateway: cache unavailable, taking the full access check", exc_info=True)
        return True
    return any(t >= granted_at for t in times.values())


def is_allowed(key: str | None, now: float | None = None) -> bool:
    if key is None:
        return False
    entry = _allowed.get(key)
    if entry is None or entry[1] <= (now or time.monotonic()):
        return False
    if _revoked_since(entry[0], entry[2]):
        with _lock:
            _allowed.pop(key, None)
        return False
    return True


def remember(key: str | None, user_id: int, now: float | None = None) -> None:
    if key is None:
        return
    now = now or time.monotonic()
    with _lock:
        if len(_allowed) >= MAX_ENTRIES:
            for stale in [k for k, e in _allowed.items() if e[1] <= now] or list(_allowed)[: MAX_ENTRIES // 2]:
                _allowed.pop(stale, None)
        _allowed[key] = (user_id, now + TTL_SECONDS, time.time())


def _write_revocation(key: str) -> None:
    try:
        cache.set(key, time.time(), timeout=int(TTL_SECONDS) + 60)
    except RedisError:  # the entries still expire within TTL_SECONDS; say so loudly
        log.error("gateway: could not record a revocation in the cache; remembered credentials expire "
                  "within %.0f s", TTL_SECONDS, exc_info=True)


def revoke_user(user_id: int) -> None:
    """Forget every credential of this user in every web process (on its next use)."""
    with _lock:
        for k in [k for k, e in _allowed.items() if e[0] == user_id]:
            _allowed.pop(k, None)
    _write_revocation(_revoked_key(user_id))


def revoke_all() -> None:
    """Forget every remembered credential everywhere (a role's permissions changed)."""
    forget_all()
    _write_revocation(REVOKED_ALL)


def forget_all() -> None:
    with _lock:
        _allowed.clear()
