"""Write an audit event for every successful request to a route listed in ``events.ROUTES``, every image
read through the gateway, and every refused (401/403) request to the API or the gateway.

Runs after the view, so it sees the final status and the user DRF authenticated
(DRF copies its user onto the Django request). Another failed request (400, 404,
5xx) changed and showed nothing, so it is not an access; a failure to write the
event is logged loudly but does not turn a served answer into an error.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from . import events
from .models import AuditEvent
from .log import client_ip, record

log = logging.getLogger(__name__)


def _user(request):
    """The authenticated user, authenticating with DRF's classes when the gateway's fast path skipped them."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user
    from rest_framework.exceptions import APIException
    from rest_framework.request import Request
    from rest_framework.settings import api_settings

    try:
        return Request(request, authenticators=[c() for c in api_settings.DEFAULT_AUTHENTICATION_CLASSES]).user
    except APIException:
        return None


# Keys this process saw recently: most frames of a study are answered without a Redis round trip.
_seen: dict[str, float] = {}
_seen_lock = threading.Lock()
LOCAL_SECONDS = 60.0
LOCAL_MAX = 10_000


def _seen_here(key: str, now: float, seconds: int) -> bool:
    with _seen_lock:
        if _seen.get(key, 0.0) > now:
            return True
        if len(_seen) >= LOCAL_MAX:
            _seen.clear()
        _seen[key] = now + min(LOCAL_SECONDS, seconds)
        return False


def _window_key(request, scope: str) -> str:
    raw = (request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get(settings.SESSION_COOKIE_NAME)
           or f"ip:{client_ip(request)}")
    return "audit-window:" + hashlib.sha256(f"{raw}|{scope}".encode()).hexdigest()[:40]


def image_read_scope(resource, query) -> tuple[str, str, dict] | None:
    """(window scope, study UID, detail) of a gateway read, or None for one that is not audited."""
    seen = events.image_view(resource, query)
    if seen is None:
        return None
    study_uid, detail = seen
    return f"images|{study_uid}|{detail.get('series', '')}", study_uid, detail


def recorded_here(request, scope: str) -> bool:
    """Whether this process recorded (or saw recorded) ``scope`` for this caller within the window, so that
    ``_first_in_window`` would answer False without asking Redis: the request needs no audit row."""
    with _seen_lock:
        return _seen.get(_window_key(request, scope), 0.0) > time.monotonic()


def _first_in_window(request, scope: str, seconds: int) -> bool:
    """True once per credential (or, without one, client address) and ``scope`` per window of ``seconds``
    (shared cache, so across all web processes)."""
    key = _window_key(request, scope)
    if _seen_here(key, time.monotonic(), seconds):
        return False
    try:
        return cache.add(key, 1, timeout=seconds)
    except RedisError:
        log.warning("audit: cache unavailable, event recorded without de-duplication", exc_info=True)
        return True


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.resolver_match is None:
            return response
        try:
            if 200 <= response.status_code < 300:
                self._audit(request, response)
            elif response.status_code in (401, 403) and request.path.startswith(events.REFUSED_PREFIXES):
                self._audit_refused(request, response)
        except Exception:  # the answer is already made; losing an event must be visible in the logs
            log.exception("audit: could not record %s %s", request.method, request.path)
        return response

    def _audit(self, request, response) -> None:
        match = request.resolver_match
        if match.url_name in events.IMAGES_ROUTES and request.method == "GET":
            read = image_read_scope(getattr(request, "dicomweb_resource", None),
                                    getattr(request, "dicomweb_query", request.GET))
            if read is None:
                return
            scope, study_uid, detail = read
            if _first_in_window(request, scope, settings.SPINEAGENT_AUDIT_IMAGE_VIEW_SECONDS):
                record(AuditEvent.VIEW, events.IMAGES_TARGET, study_uid, user=_user(request),
                       request=request, detail={"path": getattr(request, "dicomweb_path", request.path), **detail})
            return
        route = events.ROUTES.get((match.url_name, request.method))
        if route is None:
            return
        detail = {"path": request.path, "status": response.status_code}
        detail.update(events.detail_from_response(match.url_name, getattr(response, "data", None)))
        record(route.action, route.target_type, match.kwargs.get(route.target_kwarg, ""), user=_user(request),
               request=request, detail=detail)

    def _audit_refused(self, request, response) -> None:
        """Who was refused what, and why (the answer's own reason), once per caller, route and status a minute."""
        match = request.resolver_match
        scope = f"refused|{request.method}|{match.route}|{response.status_code}"
        if not _first_in_window(request, scope, events.REFUSED_WINDOW_SECONDS):
            return
        data = getattr(response, "data", None)
        reason = str(data.get("detail", ""))[:300] if isinstance(data, dict) else ""
        record(AuditEvent.REFUSED, match.url_name or "url", request.path[:128], user=_user(request),
               request=request, detail={"method": request.method, "status": response.status_code,
                                        "reason": reason})
