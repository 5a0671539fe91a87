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


# ---- answers (the OpenAPI schema's; payloads.py writes them) -----------------------------------------------------
# Label maps are keyed by condition (and level): their keys are data, so they are free objects here.

class TaskRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    study_instance_uid = serializers.CharField()
    patient_id = serializers.CharField()
    source = serializers.CharField()
    external_id = serializers.CharField()
    status = serializers.CharField()
    required_annotations = serializers.IntegerField()
    annotations = serializers.IntegerField(help_text="annotations submitted so far")
    model_uncertainty = serializers.FloatField(allow_null=True)
    labeler_disagreement = serializers.FloatField(allow_null=True)
    priority = serializers.FloatField()
    created_at = serializers.DateTimeField()


class ExtractionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    labeler = serializers.CharField()
    labeler_version = serializers.CharField()
    created_at = serializers.DateTimeField()
    meta = serializers.DictField()
    labels = serializers.DictField(child=serializers.DictField(), help_text="{condition: {value, source, "
                                   "labeler_version, flags, evidence}}")


class ConditionRowSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    group = serializers.CharField()
    has_levels = serializers.BooleanField()


class AnnotationSerializer(serializers.Serializer):
    annotator = serializers.CharField()
    labels = serializers.DictField()
    level_labels = serializers.DictField()
    comment = serializers.CharField()
    mode = serializers.CharField()
    extraction_seen = serializers.BooleanField()
    blind_labels = serializers.DictField(allow_null=True)
    revealed_at = serializers.DateTimeField(allow_null=True)
    submitted_at = serializers.DateTimeField()


class TaskModelSerializer(serializers.Serializer):
    result_id = serializers.IntegerField()
    model_name = serializers.CharField(allow_null=True)
    model_version = serializers.CharField(allow_null=True)
    synthetic_training = serializers.BooleanField()
    conditions = serializers.DictField(child=serializers.DictField(), help_text="{condition: {probability, present, "
                                       "level, status}}")


class VerifiedSerializer(serializers.Serializer):
    labels = serializers.DictField()
    level_labels = serializers.DictField()
    method = serializers.CharField()
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField()


def _label_map(help_text: str) -> serializers.DictField:
    return serializers.DictField(allow_null=True, help_text=help_text)


class TaskDetailSerializer(TaskRowSerializer):
    """``payloads.task_detail``; the last four keys only for adjudicators once the task is not theirs to annotate."""

    text = serializers.CharField()
    values = serializers.DictField(child=serializers.CharField(), help_text="label value -> its name")
    conditions = ConditionRowSerializer(many=True)
    mode = serializers.CharField()
    extraction_hidden = serializers.BooleanField()
    extractions = ExtractionSerializer(many=True)
    suggested = _label_map("{condition: value} of the preferred extraction")
    preset = _label_map("what the toggles start at (null: nothing preset)")
    suggested_levels = _label_map("{condition: {level: value}} the extraction found")
    preset_levels = _label_map("{condition: {level: value or null}}: the rows and their start values")
    known_levels = serializers.ListField(child=serializers.CharField())
    first_pass = _label_map("the blind first pass, once fixed")
    first_pass_levels = _label_map("the blind first pass's levels")
    mine = AnnotationSerializer(allow_null=True)
    viewer_url = serializers.CharField(allow_null=True)
    model = TaskModelSerializer(allow_null=True)
    verified = VerifiedSerializer(allow_null=True)
    annotations_detail = AnnotationSerializer(many=True, required=False)
    disagreements = serializers.ListField(child=serializers.CharField(), required=False)
    revision = serializers.CharField(required=False)


class ImportErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ImportSummarySerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="rows with an error")
    task_ids = serializers.ListField(child=serializers.IntegerField())
    errors = ImportErrorSerializer(many=True)


class RevealEffectSerializer(serializers.Serializer):
    n_annotations = serializers.IntegerField()
    rows = serializers.IntegerField()
    rows_changed = serializers.IntegerField()
    changed_to_suggestion = serializers.IntegerField()


class LabelerAccuracySerializer(serializers.Serializer):
    labeler = serializers.CharField()
    labeler_version = serializers.CharField()
    n_tasks = serializers.IntegerField()
    macro_accuracy = serializers.FloatField(allow_null=True)
    conditions = serializers.DictField(child=serializers.DictField(), help_text="{condition: its metrics}")


class LabelMetricsSerializer(serializers.Serializer):
    annotator_agreement = serializers.DictField(help_text="per-condition Cohen's kappa with intervals, per level, "
                                                "Fleiss' kappa, and the same by extraction exposure (metrics.py)")
    reveal_effect = RevealEffectSerializer()
    labeler_accuracy = LabelerAccuracySerializer(many=True)
