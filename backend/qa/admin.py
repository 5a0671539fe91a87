"""QA cases in Django admin, for inspection. Reviews go through the API or the /qa/ pages, never admin edits."""

from django.contrib import admin

from backend.admin_readonly import ReadOnlyAdmin

from .models import QACase


@admin.register(QACase)
class QACaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "report", "selection", "status", "original_score", "decision", "reviewed_score",
                    "reviewer", "reviewed_at")
    list_filter = ("status", "selection", "decision")
