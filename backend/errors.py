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

    The services of the reports, annotations and training apps raise subclasses
    (400 for a wrong request, 409 for a valid one the current state refuses);
    views answer them with ``backend.api_errors.error_response``.
    """

    code, status = "error", 400

    def __init__(self, detail: str, **extra: Any):
        # Exception's own __init__, not super(): a subclass that also derives from Django's ValidationError
        # (annotations.Invalid) initialises that itself, and a second call would reset its ``code``.
        Exception.__init__(self, detail)
        self.detail = detail
        self.extra = extra

    def as_dict(self) -> dict:
        return {"error": self.code, "detail": self.detail, **self.extra}


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
