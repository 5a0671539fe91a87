"""The annotation API's request bodies and query, validated at the boundary: the shapes and types here; what
the labels say (the registry's conditions and levels, values 1/0/-1) is checked by services.py, which names
the offending condition or level for every caller."""

from __future__ import annotations

from rest_framework import serializers

from backend.serializer_fields import StrictCharField

from . import modes, queue
from .services import MAX_REQUIRED_ANNOTATIONS

MAX_IMPORT_BYTES = 50 * 1024 * 1024


def _labels_field() -> serializers.DictField:
    # error messages are format strings: braces doubled
    return serializers.DictField(
        required=False, allow_null=True,
        error_messages={"not_a_dict": "labels must be an object {{condition: 1 | 0 | -1}}"},
        help_text="{condition: 1 present | 0 absent | -1 uncertain}: every condition level_labels leaves out "
                  "(derived from them where given)")


def _level_labels_field() -> serializers.DictField:
    return serializers.DictField(
        required=False, allow_null=True,
        error_messages={"not_a_dict": "level_labels must be an object {{condition: {{level: 1 | 0 | -1}}}}"},
        help_text='{condition: {level ("L4-L5", "L3", "multilevel" or "study"): 1 | 0 | -1}}; '
                  "see docs/annotation.md")


class QueueQuery(serializers.Serializer):
    order = serializers.ChoiceField(
        choices=list(queue.ORDERS), default=queue.DEFAULT_ORDER,
        error_messages={"invalid_choice": f"order must be one of {', '.join(queue.ORDERS)}"},
        help_text="priority (default), uncertainty, disagreement or oldest")


class RevealRequest(serializers.Serializer):
    labels = _labels_field()
    level_labels = _level_labels_field()


class SubmitRequest(RevealRequest):
    mode = serializers.ChoiceField(
        choices=list(modes.MODES), required=False, allow_null=True,
        error_messages={"invalid_choice": f"mode must be one of {', '.join(modes.MODES)}"},
        help_text="the mode the task was opened in; 409 mode_changed if it changed since")
    comment = StrictCharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)


class AdjudicateRequest(RevealRequest):
    revision = StrictCharField(required=False, allow_null=True,
                               help_text="the task's revision as shown; 409 stale if it changed")


class ImportRequest(serializers.Serializer):
    """A file (multipart) or JSON ``{"reports": [...]}``; each report's own problems are listed by row in the
    answer, not refused here."""

    file = serializers.FileField(required=False, help_text="CSV, JSON or JSON Lines")
    reports = serializers.ListField(required=False, help_text="report records (as the JSON file's rows)")
    required_annotations = serializers.IntegerField(required=False, min_value=1, max_value=MAX_REQUIRED_ANNOTATIONS)

    def validate_file(self, upload):
        if upload.size > MAX_IMPORT_BYTES:
            raise serializers.ValidationError(f"file larger than {MAX_IMPORT_BYTES // 2**20} MiB")
        return upload

    def validate(self, data: dict) -> dict:
        if "file" not in data and "reports" not in data:
            raise serializers.ValidationError(
                {"file": "send a file (multipart field 'file') or JSON {\"reports\": [...]}"})
        return data
