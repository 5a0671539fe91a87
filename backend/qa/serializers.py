"""The review request and the queue's query, validated at the boundary (types and choices); the rules live
in services.py."""

from rest_framework import serializers

from backend.reports.radpeer import SCORES

from .models import QACase


class ReviewRequest(serializers.Serializer):
    decision = serializers.ChoiceField(choices=[QACase.AGREE, QACase.CHANGE],
                                       help_text="agree: the original score stands; change: give another score")
    score = serializers.ChoiceField(choices=list(SCORES), required=False, allow_blank=True,
                                    help_text="the reviewed RADPEER score (required to change)")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, trim_whitespace=True,
                                   help_text="why (required to change; 2b/3a/3b need one as at sign-off)")
    report_version = serializers.IntegerField(
        help_text="the newest report version number shown with the case (an addendum since then: 409 stale)")


class QueueQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=[QACase.OPEN, QACase.REVIEWED], default=QACase.OPEN,
                                     error_messages={"invalid_choice": "status must be open or reviewed"})


# ---- answers (the OpenAPI schema's; services.queue_row and services.case_payload write them) ---------------------

class QACaseRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    study_instance_uid = serializers.CharField()
    status = serializers.CharField()
    study_date = serializers.DateField(allow_null=True)
    study_description = serializers.CharField()
    selection = serializers.CharField()
    original_score = serializers.CharField()
    created_at = serializers.DateTimeField()
    signed_at = serializers.DateTimeField(allow_null=True)
    decision = serializers.CharField(allow_null=True)
    reviewed_score = serializers.CharField(allow_null=True)
    reviewer = serializers.CharField(allow_null=True)
    reviewed_at = serializers.DateTimeField(allow_null=True)


class QAQueueSerializer(serializers.Serializer):
    """The queue is not paged: at most 500 cases."""

    status = serializers.CharField()
    results = QACaseRowSerializer(many=True)


class QACaseDraftSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    text = serializers.CharField()
    draft_backend = serializers.CharField()
    model_version = serializers.CharField(allow_null=True, help_text="name:version")


class QACaseTextSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    text = serializers.CharField()


class QACaseAddendumSerializer(QACaseTextSerializer):
    created_at = serializers.DateTimeField()


class QAReviewSerializer(serializers.Serializer):
    reviewer = serializers.CharField(allow_null=True)
    decision = serializers.CharField()
    reviewed_score = serializers.CharField()
    reason = serializers.CharField()
    report_version = serializers.IntegerField(allow_null=True)
    reviewed_at = serializers.DateTimeField()


class QACaseSerializer(serializers.Serializer):
    """A case as the reviewer judges it: no reader identity (blind peer review)."""

    id = serializers.IntegerField()
    status = serializers.CharField()
    selection = serializers.CharField()
    study_instance_uid = serializers.CharField()
    study_date = serializers.DateField(allow_null=True)
    study_description = serializers.CharField()
    viewer_url = serializers.CharField(allow_null=True)
    ai_draft = QACaseDraftSerializer(allow_null=True)
    final = QACaseTextSerializer()
    addenda = QACaseAddendumSerializer(many=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    original_score = serializers.CharField()
    original_comment = serializers.CharField()
    report_version = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    review = QAReviewSerializer(allow_null=True)
