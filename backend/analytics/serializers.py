"""The analytics API's answers, for the OpenAPI schema (services, conditions, turnaround, burden_summary and
draft_agreement write them; docs/exports.md names their columns). Every answer echoes its validated filters
as ``params``. Counts keyed by data (RADPEER scores, interval names, word and sentence kinds) are maps."""

from rest_framework import serializers

from .filters import AnalyticsFilters


def _n() -> serializers.IntegerField:
    return serializers.IntegerField()


def _maybe() -> serializers.FloatField:
    return serializers.FloatField(allow_null=True)


class RateSerializer(serializers.Serializer):
    """``stats.rate``: k of n with its Wilson interval (rate null when n is 0)."""

    k = _n()
    rate = _maybe()
    ci_low = _maybe()
    ci_high = _maybe()


class _Summary(serializers.Serializer):
    params = AnalyticsFilters(help_text="the filters as applied")


class RadpeerGroupSerializer(serializers.Serializer):
    group = serializers.CharField()
    label = serializers.CharField()
    n = _n()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="RADPEER score -> reports")
    discrepancy = RateSerializer()
    significant = RateSerializer()
    low_count = serializers.BooleanField()
    reviewed = serializers.IntegerField(help_text="peer-reviewed among the n")
    changed = serializers.IntegerField(help_text="peer review gave another score")


class RadpeerSummarySerializer(_Summary):
    min_count = _n()
    confidence = serializers.FloatField()
    groups = RadpeerGroupSerializer(many=True)


class EditScoreSerializer(serializers.Serializer):
    radpeer_score = serializers.CharField()
    n = _n()
    char_mean = _maybe()
    char_median = _maybe()
    word_mean = _maybe()
    word_median = _maybe()


class EditSummarySerializer(_Summary):
    scores = EditScoreSerializer(many=True)


class ConditionOutcomeSerializer(serializers.Serializer):
    condition = serializers.CharField()
    display_name = serializers.CharField()
    n = _n()
    signed_present = _n()
    signed_absent = _n()
    signed_uncertain = _n()
    ai = serializers.DictField(help_text="the AI prediction against the signed report: tp, fp, fn, tn, "
                               "sensitivity, specificity, missing")
    draft = serializers.DictField(help_text="the draft's finding against the signed report: tp, fp, fn, tn, "
                                  "sensitivity, specificity, uncertain, false_positive_findings, omitted_findings")


class ConditionSummarySerializer(_Summary):
    confidence = serializers.FloatField()
    reports = _n()
    labeler = serializers.CharField()
    conditions = ConditionOutcomeSerializer(many=True)
    all = ConditionOutcomeSerializer()


class SpreadSerializer(serializers.Serializer):
    label = serializers.CharField()
    n = _n()
    median_s = _maybe()
    p90_s = _maybe()
    mean_s = _maybe()


class TurnaroundGroupSerializer(serializers.Serializer):
    group = serializers.CharField()
    label = serializers.CharField()
    reports = _n()
    intervals = serializers.DictField(child=SpreadSerializer(), help_text="interval name -> seconds")


class TurnaroundSummarySerializer(_Summary):
    unit = serializers.CharField()
    groups = TurnaroundGroupSerializer(many=True)


class BurdenReportSerializer(serializers.Serializer):
    report_id = _n()
    study_id = _n()
    reader_id = serializers.IntegerField(allow_null=True)
    model_version = serializers.CharField(allow_null=True, help_text="name:version")
    model_version_id = serializers.IntegerField(allow_null=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    draft_number = serializers.IntegerField(allow_null=True)
    signed_number = serializers.IntegerField(allow_null=True)
    wer = _maybe()
    words = serializers.DictField(child=serializers.IntegerField(allow_null=True))
    sentences = serializers.DictField(child=serializers.IntegerField(allow_null=True))
    significant_edits = serializers.ListField(child=serializers.DictField())


class EditBurdenSummarySerializer(_Summary):
    reference = serializers.CharField()
    hypothesis = serializers.CharField()
    sentence_match = serializers.FloatField(help_text="similarity at which a sentence counts as kept")
    labeler = serializers.CharField()
    edit_kinds = serializers.ListField(child=serializers.CharField())
    confidence = serializers.FloatField()
    groups = serializers.ListField(child=serializers.DictField(), help_text="per group: WER with S/I/D, "
                                   "sentences kept/edited/added/deleted, significant edits (burden_summary.py)")
    reports = BurdenReportSerializer(many=True)


class DraftAgreementRowSerializer(serializers.Serializer):
    condition = serializers.CharField()
    display_name = serializers.CharField()
    n = _n()
    agree = _n()
    percent_agreement = _maybe()
    agreement_ci_low = _maybe()
    agreement_ci_high = _maybe()
    kappa = _maybe()
    kappa_ci_low = _maybe()
    kappa_ci_high = _maybe()
    draft_present = _n()
    signed_present = _n()


class DraftAgreementLevelRowSerializer(DraftAgreementRowSerializer):
    level = serializers.CharField()


class DraftAgreementSummarySerializer(_Summary):
    labeler = serializers.CharField()
    confidence = serializers.FloatField()
    kappa_ci = serializers.CharField()
    agreement_ci = serializers.CharField()
    reports = _n()
    reports_without_levels = _n()
    conditions = DraftAgreementRowSerializer(many=True)
    levels = DraftAgreementLevelRowSerializer(many=True)
