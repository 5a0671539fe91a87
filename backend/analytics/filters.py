"""The analytics query parameters, validated at the boundary: one serializer per parameter set.

``AnalyticsFilters`` is the common set (the API's summaries, charts and exports, and the dashboard's form);
its validated data is the cleaned filter dict the services take (dates as ISO text, as they are recorded in
an export's audit event). Any value that cannot be a valid filter is a 400 here, never an error further down.
"""

from __future__ import annotations

from datetime import date

from rest_framework import serializers

from . import charts, exports
from .services import GROUP_BY

ID_MAX = 10**18 - 1  # within a bigint
_TEXT = r"^[^\x00-\x1f\x7f]{1,64}\Z"  # no control characters (PostgreSQL refuses NUL)


def _one_of(name: str, choices, **kwargs) -> serializers.ChoiceField:
    message = f"{name} must be one of " + ", ".join(choices)
    return serializers.ChoiceField(choices=list(choices), error_messages={"invalid_choice": message,
                                                                          "required": message}, **kwargs)


def _date(name: str, help_text: str) -> serializers.DateField:
    return serializers.DateField(required=False, help_text=help_text,
                                 error_messages={"invalid": f"{name} must be a date YYYY-MM-DD"})


def _id(name: str, help_text: str) -> serializers.IntegerField:
    message = f"{name} must be an integer id"
    return serializers.IntegerField(required=False, min_value=0, max_value=ID_MAX, help_text=help_text,
                                    error_messages={k: message for k in ("invalid", "min_value", "max_value",
                                                                         "max_string_length")})


def _text(name: str, help_text: str) -> serializers.RegexField:
    return serializers.RegexField(_TEXT, required=False, trim_whitespace=False, help_text=help_text,
                                  error_messages={"invalid": f"{name} must be at most 64 printable characters"})


class AnalyticsFilters(serializers.Serializer):
    date_from = _date("date_from", "first sign-off day, inclusive (UTC)")
    date_to = _date("date_to", "last sign-off day, inclusive (UTC)")
    reader = _id("reader", "signing user's id")
    model_version = _id("model_version", "ModelVersion id of the AI draft")
    draft_backend = _text("draft_backend", "drafting backend, e.g. template, llm")
    region = _text("region", "cervical, thoracic, lumbar, whole spine, ...")
    group_by = _one_of("group_by", GROUP_BY, required=False, help_text="one group 'all' if absent")

    def validate(self, data: dict) -> dict:
        if "date_from" in data and "date_to" in data and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": "date_to is before date_from"})
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in data.items()}


class ChartQuery(AnalyticsFilters):
    chart = _one_of("chart", charts.CHARTS)


class _ExportQuery(AnalyticsFilters):
    identified = serializers.BooleanField(required=False, default=False, help_text=(
        "add patient name/id, accession number and study UID to the per-report table; needs the permission "
        "analytics.export_identified (403 without it)"),
        error_messages={"invalid": "identified must be 1/true or 0/false"})


class CsvExportQuery(_ExportQuery):
    table = _one_of("table", exports.TABLES)


class XlsxExportQuery(_ExportQuery):
    table = _one_of("table", [*exports.TABLES, "all"], required=False, default="all",
                    help_text="one sheet; absent or 'all': every table")
