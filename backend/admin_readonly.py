"""A Django admin class for records that are only ever written through services (or never changed)."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browse and search, never add or change: decisions go through the API, where they are validated."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
