"""One report per study and its immutable versions.

Version 0 is the AI draft. Every save by a radiologist adds a row; nothing is
overwritten, so the draft and the signed text stay side by side for audit and
edit measurement. The row lock on ``Report`` serialises writers (see versions.py).
"""

from django.conf import settings
from django.db import models

from backend.inference.models import InferenceResult, ModelVersion
from backend.studies.models import Study

from .radpeer import SCORE_CHOICES


class Report(models.Model):
    NO_DRAFT, DRAFT_READY, IN_REVIEW, SIGNED = "no_draft", "draft_ready", "in_review", "signed"
    STATUSES = [(s, s) for s in (NO_DRAFT, DRAFT_READY, IN_REVIEW, SIGNED)]

    # PROTECT: a re-sync must never delete a radiologist's report with its study row.
    study = models.OneToOneField(Study, related_name="report", on_delete=models.PROTECT)
    status = models.CharField(max_length=16, choices=STATUSES, default=NO_DRAFT, db_index=True)
    # Number of the version that is the report body now (addenda do not move it); None before any version.
    current_number = models.IntegerField(null=True, blank=True)
    # The radiologist who opened it first (the worklist's "reader" until someone signs).
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                               on_delete=models.PROTECT)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                  on_delete=models.PROTECT)
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_number = models.IntegerField(null=True, blank=True)
    radpeer_score = models.CharField(max_length=2, choices=SCORE_CHOICES, blank=True)
    radpeer_comment = models.TextField(blank=True)
    # From the latest AI draft's result (priority.py); null before any draft. The worklist sorts by it.
    ai_priority = models.SmallIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [
            ("sign_report", "Can sign reports (RADPEER score the AI draft) and add addenda"),
            ("view_worklist", "Can see the reading worklist"),
        ]

    def __str__(self):
        return f"report {self.study_id} ({self.status})"

    @property
    def locked(self) -> bool:
        return self.status == self.SIGNED


class ImmutableVersion(Exception):
    """Raised on any attempt to change or delete a stored report version."""


def ai_draft_of(versions) -> "ReportVersion | None":
    """The AI draft among a report's versions: the newest AI version. AI versions only ever come before the
    first human one (versions.add_ai_draft stops once a radiologist saved), so this is also the draft the
    reader saw and scores with RADPEER at sign-off; None for a report written without one."""
    return max((v for v in versions if v.source == ReportVersion.AI), key=lambda v: v.number, default=None)


class VersionQuerySet(models.QuerySet):
    def ai_draft(self) -> "ReportVersion | None":
        """``ai_draft_of`` these versions (``report.versions.ai_draft()``)."""
        return ai_draft_of(self.filter(source=ReportVersion.AI))


class ReportVersion(models.Model):
    AI, RADIOLOGIST, ADDENDUM = "ai", "radiologist", "addendum"
    SOURCES = [(s, s) for s in (AI, RADIOLOGIST, ADDENDUM)]

    objects = VersionQuerySet.as_manager()

    report = models.ForeignKey(Report, related_name="versions", on_delete=models.CASCADE)
    number = models.IntegerField()
    text = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                               on_delete=models.PROTECT)
    source = models.CharField(max_length=16, choices=SOURCES)
    base_number = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, related_name="+",
                                      on_delete=models.PROTECT)
    draft_backend = models.CharField(max_length=64, blank=True)
    inference_result = models.ForeignKey(InferenceResult, null=True, blank=True, related_name="+",
                                         on_delete=models.SET_NULL)

    class Meta:
        ordering = ["report", "number"]
        constraints = [models.UniqueConstraint(fields=["report", "number"], name="unique_report_version_number")]

    def __str__(self):
        return f"v{self.number} of {self.report_id} ({self.source})"

    def save(self, *args, **kwargs):
        """Insert only: a stored version is evidence and never changes (a DB trigger backs this up)."""
        if not self._state.adding:
            raise ImmutableVersion(f"report version {self.pk} is immutable; add a new version instead")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableVersion("report versions are never deleted one by one")
