"""DRF exception handler: DRF's own answers, plus 503 for unavailable services and 400 for data the
database refuses (found by fuzzing: a NUL byte or an out-of-range number in a query parameter)."""

from django.db import DataError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError, ServiceUnavailable, invalid_data_payload


def error_response(exc: DomainError) -> Response:
    """The answer to a refused request: its own JSON body and status."""
    return Response(exc.as_dict(), status=exc.status)


def exception_handler(exc, context):
    if isinstance(exc, OperationalError):
        exc = ServiceUnavailable("PostgreSQL", str(exc).strip().splitlines()[0] if str(exc) else "connection failed")
    if isinstance(exc, ServiceUnavailable):
        return Response(exc.as_dict(), status=503, headers={"Retry-After": "10"})
    if isinstance(exc, DataError):
        return Response(invalid_data_payload(exc), status=400)
    return drf_exception_handler(exc, context)
