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
