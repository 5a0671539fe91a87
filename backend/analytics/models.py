"""Analytics facts: one EditMetrics row per signed report (AI draft vs signed text), and the export audit.

EditMetrics is denormalised on purpose (reader, model version, backend, score, date, region copied from the
report at sign time) so the admin figures are one query over one table. It is derived data: the
``compute_edit_metrics`` command rebuilds it from the immutable report versions at any time.
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
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["signed_at", "pk"]
        verbose_name_plural = "edit metrics"
        permissions = [("view_analytics", "Can see RADPEER / edit analytics and export them")]

    def __str__(self):
        return f"edit metrics of report {self.report_id}"


class ExportAudit(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, related_name="+", on_delete=models.SET_NULL)
    table = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"export {self.table} by {self.user_id} at {self.created_at}"
