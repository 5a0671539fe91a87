"""Label tasks in Django admin, for inspection. Decisions go through the API (services), never admin edits."""

from django.contrib import admin

from backend.admin_readonly import ReadOnlyAdmin as ReadOnly

from .models import Annotation, Extraction, LabelTask, Reveal, VerifiedLabels


@admin.register(LabelTask)
class LabelTaskAdmin(ReadOnly):
    list_display = ("id", "study_instance_uid", "source", "status", "required_annotations", "priority", "created_at")
    list_filter = ("status", "source")
    search_fields = ("study_instance_uid", "patient_id", "external_id")


@admin.register(Extraction)
class ExtractionAdmin(ReadOnly):
    list_display = ("id", "task", "labeler", "labeler_version", "created_at")
    list_filter = ("labeler", "labeler_version")


@admin.register(Annotation)
class AnnotationAdmin(ReadOnly):
    list_display = ("id", "task", "annotator", "mode", "extraction_seen", "submitted_at")
    list_filter = ("mode", "extraction_seen")


@admin.register(Reveal)
class RevealAdmin(ReadOnly):
    list_display = ("id", "task", "annotator", "created_at")


@admin.register(VerifiedLabels)
class VerifiedLabelsAdmin(ReadOnly):
    list_display = ("id", "task", "method", "decided_by", "decided_at")
    list_filter = ("method",)
