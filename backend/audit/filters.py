"""The audit log's query parameters, validated at the boundary (the list and the CSV export share them)."""

from __future__ import annotations

from datetime import date

from rest_framework import serializers

from backend.serializer_fields import StrictCharField

from .models import AuditEvent

TEXT_MAX = 150


def _text(help_text: str = "") -> StrictCharField:
    """Free text matched exactly (stripped, cut to TEXT_MAX)."""
    return StrictCharField(required=False, allow_blank=True, help_text=help_text)


def _day(name: str, help_text: str) -> serializers.DateField:
    return serializers.DateField(required=False, help_text=help_text,
                                 error_messages={"invalid": f"{name} must be a date YYYY-MM-DD"})


class AuditFilters(serializers.Serializer):
    """Validated data: the cleaned filters ``services.events`` takes (dates as ISO text, inclusive days in UTC),
    also recorded with an export."""

    user = _text("username")
    action = serializers.ChoiceField(
        choices=[a for a, _ in AuditEvent.ACTIONS], required=False,
        error_messages={"invalid_choice": "action must be one of " + ", ".join(dict(AuditEvent.ACTIONS))})
    target_type = _text()
    target_id = _text()
    date_from = _day("date_from", "first day, inclusive (UTC)")
    date_to = _day("date_to", "last day, inclusive (UTC)")

    def validate(self, data: dict) -> dict:
        if "date_from" in data and "date_to" in data and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": "date_to is before date_from"})
        return {k: v.isoformat() if isinstance(v, date) else v[:TEXT_MAX] if isinstance(v, str) else v
                for k, v in data.items() if v != ""}
