"""Errors that the API turns into clear HTTP answers instead of 500s."""

import re
from typing import Any

# Internal addresses that messages shown to users must not carry: a URL, urllib3's host='...'/port=..., a
# host:port, a bare IPv4 address (not a piece of a DICOM UID: no dot or digit on either side).
_ADDRESS = re.compile("|".join((
    r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>)]+",
    r"\b(?:host|port)=('[^']*'|\"[^\"]*\"|\d+)",
    r"\b[a-zA-Z0-9][a-zA-Z0-9.-]*:\d{2,5}\b",
    r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])",
)))


def redact_addresses(text: str) -> str:
    """``text`` with every URL and host:port replaced: Orthanc's or Redis's address belongs in the server log,
    not in an answer or a job's reason that users read."""
    return _ADDRESS.sub("[internal address]", text)


class DomainError(Exception):
    """A request a service refused, with its JSON body and HTTP status.

    Services raise one of the four kinds below (or a subclass naming a more precise ``code``, e.g. a stale
    edit is a ``Conflict`` with code "stale"); the API's exception handler (``backend.api_errors``) answers
    every one of them the same way, so views hold no try/except of their own. The body is always
    ``{"error": code, "detail": message, ...extra}``; ``field`` names the offending input where there is one.
    """

    code, status = "error", 400

    def __init__(self, detail: str, **extra: Any):
        Exception.__init__(self, detail)  # not super(): a mixed-in base must not re-initialise (and reset) ``code``
        self.detail = detail
        self.extra = extra

    def __str__(self) -> str:
        return self.detail

    def as_dict(self) -> dict:
        return {"error": self.code, "detail": self.detail, **self.extra}


class Invalid(DomainError):
    """The request itself is wrong (HTTP 400)."""

    code, status = "invalid", 400


class Forbidden(DomainError):
    """Allowed to the role, refused for this object (HTTP 403), e.g. a reviewer's own case."""

    code, status = "forbidden", 403


class NotFound(DomainError):
    """What the request names does not exist, or is not visible to this user (HTTP 404)."""

    code, status = "not_found", 404


class Conflict(DomainError):
    """A valid request the current state refuses (HTTP 409): a stale edit, a locked report, a duplicate."""

    code, status = "conflict", 409


class Stale(Conflict):
    """What the caller edited or decided on changed since it was read (a newer report version, an addendum,
    another decision on an annotation task): reload and try again. One class for reports, QA and annotations."""

    code = "stale"


class ServiceUnavailable(Exception):
    """A backing service (Orthanc, Redis, PostgreSQL) cannot be reached: HTTP 503."""

    status_code = 503

    def __init__(self, service: str, detail: str):
        detail = redact_addresses(detail)
        super().__init__(f"{service} is unavailable: {detail}")
        self.service = service
        self.detail = detail

    def as_dict(self) -> dict:
        return {"error": "service_unavailable", "service": self.service, "detail": str(self)}


def invalid_data_payload(exc: Exception) -> dict:
    """The 400 body for input PostgreSQL refuses (django.db.DataError): NUL bytes, numbers out of range."""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "value out of range or not storable"
    return {"error": "invalid", "detail": f"the database refused a value in the request: {first_line}"}
