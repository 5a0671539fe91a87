"""One peer-review case per selected signed report, and its single review.

A case is opened when a report is signed with a RADPEER score of 2b, 3a or 3b, or falls in the random
sample of the rest (selection.py). It is reviewed once, by someone who did not read it (services.py);
the review never changes the report: the reviewed score lives here and analytics prefers it.
"""

from django.conf import settings
from django.db import models

from backend.reports.models import Report
from backend.reports.radpeer import SCORE_CHOICES


class QACase(models.Model):
    DISCREPANT, SAMPLED = "discrepant", "sampled"
    SELECTIONS = [(DISCREPANT, "score 2b, 3a or 3b"), (SAMPLED, "random sample")]
    OPEN, REVIEWED = "open", "reviewed"
    STATUSES = [(OPEN, OPEN), (REVIEWED, REVIEWED)]
    AGREE, CHANGE = "agree", "change"
    DECISIONS = [(AGREE, AGREE), (CHANGE, CHANGE)]

    report = models.OneToOneField(Report, related_name="qa_case", on_delete=models.PROTECT)
    selection = models.CharField(max_length=16, choices=SELECTIONS)
    status = models.CharField(max_length=16, choices=STATUSES, default=OPEN, db_index=True)
    # Copied from the report at selection: what the reviewer judges (the report itself is locked).
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, related_name="+", on_delete=models.PROTECT)
    original_score = models.CharField(max_length=2, choices=SCORE_CHOICES)
    original_comment = models.TextField(blank=True)
    signed_number = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The review (all empty while open).
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                 on_delete=models.PROTECT)
    decision = models.CharField(max_length=8, choices=DECISIONS, blank=True)
    reviewed_score = models.CharField(max_length=2, choices=SCORE_CHOICES, blank=True)
    review_reason = models.TextField(blank=True)
    # The newest report version number (addenda included) the reviewer saw: a later addendum makes it stale.
    reviewed_report_version = models.IntegerField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        permissions = [("review_case", "Can peer-review (RADPEER) other readers' signed reports")]
        constraints = [
            models.CheckConstraint(
                name="qa_review_complete_when_reviewed",
                condition=models.Q(status="open", reviewer__isnull=True, reviewed_score="")
                | models.Q(status="reviewed", reviewer__isnull=False, reviewed_at__isnull=False)
                & ~models.Q(reviewed_score="") & ~models.Q(decision="")),
        ]

    def __str__(self):
        return f"QA case {self.pk} of report {self.report_id} ({self.status})"
