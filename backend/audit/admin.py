"""The audit log in Django admin: read-only (the database refuses changes anyway)."""

from django.contrib import admin

from backend.admin_readonly import ReadOnlyAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "action", "target_type", "target_id", "ip")
    list_filter = ("action", "target_type")
    search_fields = ("username", "target_id")
    date_hierarchy = "at"

    def has_delete_permission(self, request, obj=None):
        return False
