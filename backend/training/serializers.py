"""The training API's request bodies and query parameters, validated at the boundary.

A serializer checks the shape (a JSON object, known keys, query values of the right kind); the rules of the
domain (a dataset name's grammar, split ratios, filters, run options, the ids a run names, a decision's
reason) stay with the services, which raise ``backend.errors.Invalid`` naming the offending ``field``, so the
pages and tests that call them directly get the same answers. Values the services check are passed through
untouched (``JSONField``): a DRF ``CharField`` would turn a number into text before the service saw it.
"""

from __future__ import annotations

from rest_framework import serializers

from .datasets import NAME_MESSAGE, NAME_RE
from .models import TrainingRun


def _raw(help_text: str, required: bool = False) -> serializers.JSONField:
    return serializers.JSONField(required=required, allow_null=True, help_text=help_text)


class DatasetFilter(serializers.Serializer):
    name = serializers.RegexField(NAME_RE, required=False, trim_whitespace=False, help_text="only versions of this "
                                  "dataset name", error_messages={"invalid": NAME_MESSAGE})


class DatasetSnapshotRequest(serializers.Serializer):
    name = _raw("letters, digits, '.', '_', '-'; the version number is automatic", required=True)
    description = _raw("at most 10000 characters")
    seed = _raw("split seed, an integer in [-2^31, 2^31) (default 0)")
    ratios = _raw('{"train": 0.7, "val": 0.15, "test": 0.15} (default); train and test greater than 0')
    filters = _raw("source (imported|signed), method, decided_from, decided_to")


class RunFilter(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[s for s, _ in TrainingRun.STATUSES], required=False,
        error_messages={"invalid_choice": f"status must be one of {', '.join(dict(TrainingRun.STATUSES))}"})


class RunStartRequest(serializers.Serializer):
    dataset = _raw("dataset version id", required=True)
    base_model = _raw("model version id (default: the active one)")
    options = _raw("chain (probes | heads | align+heads; default probes), steps, lr, weight_decay, seed, n_boot, "
                   "seg_steps, align_steps, align_lr")


class DecisionRequest(serializers.Serializer):
    reason = _raw("why (audited); to promote, required only to override a failed gate")


# ---- answers (the OpenAPI schema's; datasets.summary, runs.payload, comparison.compare and promotion.gate write
# them). Metrics and counts are keyed by split, condition or level: free objects here, see docs/training.md. ----

class DatasetVersionHeadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    description = serializers.CharField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    split_seed = serializers.IntegerField()
    ratios = serializers.DictField(child=serializers.FloatField())
    filters = serializers.DictField()
    sha256 = serializers.CharField()
    synthetic = serializers.BooleanField()
    label = serializers.CharField(help_text="the synthetic-data note, empty otherwise")


class DatasetVersionSerializer(DatasetVersionHeadSerializer):
    counts = serializers.DictField(help_text="per split and per condition")


class DatasetExportSerializer(serializers.Serializer):
    dataset = DatasetVersionHeadSerializer()
    items = serializers.ListField(child=serializers.DictField())


class VersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.CharField()
    state = serializers.CharField()
    label = serializers.CharField()


class RunModelSerializer(VersionRefSerializer):
    synthetic_training = serializers.BooleanField()


class DatasetRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()


class RunDatasetSerializer(DatasetRefSerializer):
    synthetic = serializers.BooleanField()


class RunDecisionSerializer(serializers.Serializer):
    decision = serializers.CharField()
    reason = serializers.CharField()
    gate = serializers.DictField()
    by = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True)


class TrainingRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    stage = serializers.CharField()
    progress = serializers.IntegerField()
    error = serializers.CharField()
    dataset = RunDatasetSerializer()
    chain = serializers.CharField()
    base_model = RunModelSerializer()
    candidate = RunModelSerializer(allow_null=True)
    options = serializers.DictField()
    metrics = serializers.DictField(help_text="candidate and base on the test split")
    started_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    log = serializers.CharField()
    decision = RunDecisionSerializer(allow_null=True)


class RunComparisonRowSerializer(serializers.Serializer):
    condition = serializers.CharField()
    candidate = serializers.DictField(help_text="the candidate's metrics on this condition")
    active = serializers.DictField(allow_null=True)
    delta_auroc = serializers.FloatField(allow_null=True)
    validated = serializers.DictField(child=serializers.BooleanField(allow_null=True),
                                      help_text="{candidate, active}: may the version call it")


class RunComparisonSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    label = serializers.CharField()
    split = serializers.CharField()
    n_test = serializers.IntegerField(allow_null=True)
    dataset = DatasetRefSerializer()
    candidate = VersionRefSerializer(allow_null=True)
    active = VersionRefSerializer(allow_null=True)
    base = VersionRefSerializer(allow_null=True)
    active_metrics_source = serializers.CharField()
    mean_auroc = serializers.DictField(child=serializers.FloatField(allow_null=True), help_text="{candidate, active}")
    conditions = RunComparisonRowSerializer(many=True)
    validated_conditions = serializers.DictField(child=serializers.ListField(child=serializers.CharField(),
                                                                             allow_null=True))
    candidate_calls_test = serializers.DictField(allow_null=True)
    levels = serializers.DictField(allow_null=True, help_text="per-level agreement (comparison.level_rows)")


class PromotionGateSerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())
    note = serializers.CharField(required=False)
    mean_auroc_lower = serializers.DictField(allow_null=True, help_text="{candidate, active, conditions}")
    validated = serializers.ListField(child=serializers.CharField())


class RunGateSerializer(serializers.Serializer):
    comparison = RunComparisonSerializer()
    gate = PromotionGateSerializer()
