"""Errors of the training app, each with the JSON body and HTTP status the views answer with."""

from __future__ import annotations

from backend.errors import DomainError


class TrainingError(DomainError):
    pass


class Invalid(TrainingError):
    """The request is wrong (HTTP 400); ``field`` names the offending input."""

    code, status = "invalid", 400


class Conflict(TrainingError):
    """Valid, but the current state does not allow it (HTTP 409)."""

    code, status = "conflict", 409
