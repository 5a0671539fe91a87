"""Errors of the training app, each with the JSON body and HTTP status the views answer with."""

from __future__ import annotations

from typing import Any


class TrainingError(Exception):
    code, status = "error", 400

    def __init__(self, detail: str, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def as_dict(self) -> dict:
        return {"error": self.code, "detail": self.detail, **self.extra}


class Invalid(TrainingError):
    """The request is wrong (HTTP 400); ``field`` names the offending input."""

    code, status = "invalid", 400


class Conflict(TrainingError):
    """Valid, but the current state does not allow it (HTTP 409)."""

    code, status = "conflict", 409
