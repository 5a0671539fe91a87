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
