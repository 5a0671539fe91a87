"""nginx's ``auth_request`` for image reads, answered without Django's request cycle when nothing would differ.

A viewer reads a study frame by frame; in the compose deployment each frame costs nginx one decision
(``views.fast_path_decision``), and the request cycle around that small answer (middleware: sessions, CSRF,
CORS, messages, the audit's bookkeeping; URL resolving) is more than half of its cost (0.57 ms against
0.25 ms in-process). This WSGI wrapper answers a decision itself only where the full cycle would answer
the same 200 and write nothing:

- the same rule (``views.read_decision``: a GET of a clean path of the grammar, by a credential that passed
  the full check moments ago and was not revoked since; the revocation read in Redis included),
- the same host check (``ALLOWED_HOSTS``); with ``SECURE_SSL_REDIRECT`` or ``DISALLOWED_USER_AGENTS`` set,
  Django always answers (its middleware would redirect or refuse),
- no audit row due: this process recorded the read's study and series for this credential within the
  window (``audit.middleware.recorded_here``), so the full cycle would record nothing either,
- the headers of this process's last full 200 decision (the middlewares' own: CSP, nosniff, frame options,
  referrer and opener policies, Cache-Control), which nginx copies onto the bytes.

Anything else (a first read of a series, a refusal, a malformed request, another path) goes to Django
unchanged, which decides, audits and refuses as it always does.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import QueryDict

from backend.audit.middleware import image_read_scope, recorded_here

from .views import UPSTREAM_HEADER, read_decision

DECISION_PATH = "/internal/dicomweb-decision"
# Headers of a full answer that do not describe this answer (its body, its cookies, its upstream path).
_NOT_REPLAYED = {"content-length", "set-cookie", UPSTREAM_HEADER.lower()}


def quick_upstream(environ) -> str | None:
    """The upstream path to allow, when the full cycle would allow it and record nothing; else None."""
    request = WSGIRequest(environ)
    try:
        request.get_host()
    except DisallowedHost:
        return None
    if (settings.SECURE_SSL_REDIRECT and not request.is_secure()) or settings.DISALLOWED_USER_AGENTS:
        return None  # Django's middleware would redirect or check the agent: let it
    decided = read_decision(request)
    if decided is None:
        return None
    resource, _, query = decided
    read = image_read_scope(resource, QueryDict(query))
    if read is not None and not recorded_here(request, read[0]):
        return None
    return resource.upstream


class QuickDecision:
    """WSGI wrapper around Django's application (``backend.wsgi``)."""

    def __init__(self, app):
        self.app = app
        self.headers: list[tuple[str, str]] | None = None  # of this process's last full 200 decision

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != DECISION_PATH:
            return self.app(environ, start_response)
        upstream = quick_upstream(environ) if self.headers is not None else None
        if upstream is None:
            return self.app(environ, self._remembering(start_response))
        start_response("200 OK", [*self.headers, (UPSTREAM_HEADER, upstream), ("Content-Length", "0")])
        return [b""]

    def _remembering(self, start_response):
        def remember(status, headers, exc_info=None):
            if status.startswith("200 "):
                self.headers = [(k, v) for k, v in headers if k.lower() not in _NOT_REPLAYED]
            return start_response(status, headers, exc_info)
        return remember
