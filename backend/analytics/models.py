"""Analytics facts: one EditMetrics row per signed report (AI draft vs signed text, times) and its
ConditionOutcome rows (AI prediction, draft label and signed label per condition).

Both are denormalised on purpose (reader, model version, backend, score, date, region copied from the
report at sign time) so the admin figures are one query over one table. They are derived data: the
``compute_edit_metrics`` command rebuilds them from the immutable report versions at any time.

Exports are written to the audit log (``backend.audit.log.record``), not to a table of this app.
"""

from django.conf import settings
from django.db import models

from backend.inference.models import ModelVersion
from backend.reports.models import Report
from backend.reports.radpeer import SCORE_CHOICES


class EditMetrics(models.Model):
    report = models.OneToOneField(Report, related_name="edit_metrics", on_delete=models.CASCADE)
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                               on_delete=models.SET_NULL)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, related_name="+",
                                      on_delete=models.SET_NULL)
    draft_backend = models.CharField(max_length=64, blank=True)
    radpeer_score = models.CharField(max_length=2, choices=SCORE_CHOICES, blank=True, db_index=True)
    signed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    region = models.CharField(max_length=64, blank=True)
    draft_number = models.IntegerField()  # the AI version compared (the last AI version before any edit)
    signed_number = models.IntegerField()
    draft_chars = models.PositiveIntegerField(default=0)
    final_chars = models.PositiveIntegerField(default=0)
    # Normalised Levenshtein distances in [0, 1]: 0 = unchanged, 1 = rewritten. Sections: null when missing.
    char_distance = models.FloatField()
    word_distance = models.FloatField()
    findings_char_distance = models.FloatField(null=True, blank=True)
    findings_word_distance = models.FloatField(null=True, blank=True)
    impression_char_distance = models.FloatField(null=True, blank=True)
    impression_word_distance = models.FloatField(null=True, blank=True)
    # Turnaround: study arrival (Study.received_at), first AI version stored, first open by a reader.
    study_received_at = models.DateTimeField(null=True, blank=True)
    draft_ready_at = models.DateTimeField(null=True, blank=True)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    # Edit burden (edit_burden.py): WER of the draft (hypothesis) against the signed text (reference), its
    # counts; sentences kept / edited / added / deleted; condition-level significant edits (list of dicts).
    wer = models.FloatField(null=True, blank=True)  # null when the signed text has no word
    wer_reference_words = models.PositiveIntegerField(default=0)
    wer_hits = models.PositiveIntegerField(default=0)
    wer_substitutions = models.PositiveIntegerField(default=0)
    wer_deletions = models.PositiveIntegerField(default=0)
    wer_insertions = models.PositiveIntegerField(default=0)
    sentences_kept = models.PositiveIntegerField(default=0)
    sentences_edited = models.PositiveIntegerField(default=0)
    sentences_added = models.PositiveIntegerField(default=0)
    sentences_deleted = models.PositiveIntegerField(default=0)
    significant_edits = models.JSONField(default=list, blank=True)
    # Which labeler read the draft and the signed text for ConditionOutcome (provenance of those rows).
    labeler_version = models.CharField(max_length=32, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["signed_at", "pk"]
        verbose_name_plural = "edit metrics"
        permissions = [
            ("view_analytics", "Can see RADPEER / edit analytics and export them"),
            # Granted to no role: a superuser gives it to named users (Django admin, user permissions).
            ("export_identified", "Can export analytics with patient names and ids (identified=1)"),
        ]

    def __str__(self):
        return f"edit metrics of report {self.report_id}"


class ConditionOutcome(models.Model):
    """One condition of one signed report: what the AI predicted, what the draft said, what was signed.

    Labels are ternary (1 present, 0 absent, -1 uncertain, as spinefm.conditions); ``ai_present`` is the
    model's present flag, null when the inference result had no prediction for the condition.
    """

    metrics = models.ForeignKey(EditMetrics, related_name="conditions", on_delete=models.CASCADE)
    condition = models.CharField(max_length=64)
    ai_present = models.BooleanField(null=True, blank=True)
    draft_label = models.SmallIntegerField()
    signed_label = models.SmallIntegerField()
    # Per level ({level: value}, spine_labels ``Label.level_values``; "study" for a condition no level names):
    # null on rows computed before per-level labels existed (``compute_edit_metrics`` fills them).
    draft_levels = models.JSONField(null=True, blank=True)
    signed_levels = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["metrics", "condition"]
        constraints = [models.UniqueConstraint(fields=["metrics", "condition"], name="unique_outcome_condition")]

    def __str__(self):
        return f"{self.condition} of report metrics {self.metrics_id}"
