"""The API's one exception handler: every refusal gets the same body, ``{"error": code, "detail": message}``.

- ``DomainError`` (raised by services: invalid 400, forbidden 403, not found 404, conflict 409) with its own
  code and extra keys;
- DRF's validation errors (serializers at the boundary): ``error`` "invalid", ``detail`` the first message
  prefixed with its field, ``field`` that field and ``fields`` every message;
- DRF's other exceptions (authentication, permission, parse, throttling, method) keep their status and
  ``detail``, and gain their code as ``error``;
- 503 for unavailable services and 400 for data the database refuses (found by fuzzing: a NUL byte or an
  out-of-range number in a query parameter).
"""

from django.db import DataError, OperationalError
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError, ServiceUnavailable, invalid_data_payload


def error_response(exc: DomainError) -> Response:
    """The answer to a refused request: its own JSON body and status."""
    return Response(exc.as_dict(), status=exc.status)


def _first_message(detail) -> tuple[str | None, str]:
    """(field path, message) of the first error in a DRF ``ValidationError.detail`` tree."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field, message = _first_message(value)
            name = None if key == "non_field_errors" else str(key)
            return (f"{name}.{field}" if name and field else name or field), message
    if isinstance(detail, list):
        for value in detail:
            return _first_message(value)
    return None, str(detail)


def validation_payload(exc: exceptions.ValidationError) -> dict:
    field, message = _first_message(exc.detail)
    named = not field or message.startswith(field)  # "comment must be a string" names its field already
    body = {"error": "invalid", "detail": message if named else f"{field}: {message}"}
    if field:
        body["field"] = field
    if isinstance(exc.detail, dict):
        body["fields"] = exc.detail
    return body


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return error_response(exc)
    if isinstance(exc, OperationalError):
        exc = ServiceUnavailable("PostgreSQL", str(exc).strip().splitlines()[0] if str(exc) else "connection failed")
    if isinstance(exc, ServiceUnavailable):
        return Response(exc.as_dict(), status=503, headers={"Retry-After": "10"})
    if isinstance(exc, DataError):
        return Response(invalid_data_payload(exc), status=400)
    if isinstance(exc, exceptions.ValidationError):
        response = drf_exception_handler(exc, context)  # DRF's headers and rollback
        response.data = validation_payload(exc)
        return response
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "error" not in response.data:
        code = getattr(exc, "default_code", None) or "error"
        response.data = {"error": code, **response.data}
    return response


class ErrorBody(serializers.Serializer):
    """The one error body, for the OpenAPI schema (``@extend_schema(responses={..., **error_responses(400)})``)."""

    error = serializers.CharField(help_text="invalid, forbidden, not_found, conflict or a more precise code "
                                            "(stale, locked, already_annotated, ...); DRF's own codes for "
                                            "authentication, permission, parse and throttling errors")
    detail = serializers.CharField()
    field = serializers.CharField(required=False, help_text="the offending input, where there is one")


_DESCRIPTIONS = {400: "invalid request", 401: "not authenticated", 403: "not allowed", 404: "not found",
                 409: "the current state refuses it", 413: "too large", 415: "unsupported media type", 429: "too many requests",
                 503: "a backing service is unavailable"}


def error_responses(*statuses: int) -> dict:
    """OpenAPI responses for the refusals an operation can answer, each with the one error body."""
    return {s: OpenApiResponse(ErrorBody, description=_DESCRIPTIONS.get(s, "refused")) for s in statuses}


_ERROR_SCHEMA = {"type": "object", "required": ["error", "detail"],
                 "properties": {"error": {"type": "string"}, "detail": {"type": "string"},
                                "field": {"type": "string"}, "fields": {"type": "object"}},
                 "additionalProperties": True}


def add_common_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the refusals every API operation can answer, documented once.

    Every operation sits behind authentication, permission classes, throttling and PostgreSQL (401, 403,
    429, 503); one with a request body or query parameters can be malformed (400); one with path parameters
    can name something that does not exist (404). Views document their own further answers (409, 413, ...)
    with ``error_responses``.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorBody", _ERROR_SCHEMA)
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = operation.get("parameters", [])
            statuses = [401, 403, 429, 503]
            if operation.get("requestBody") or any(p.get("in") == "query" for p in params):
                statuses.append(400)
            if any(p.get("in") == "path" for p in params):
                statuses.append(404)
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.setdefault(str(status), {"description": _DESCRIPTIONS[status], "content": body})
    return result
