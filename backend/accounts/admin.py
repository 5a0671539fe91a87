"""Users in the Django admin for the admin role: grant roles (groups) and the few permissions a site grants
per person (the identified analytics export), nothing more.

The admin role holds ``auth.view_user/add_user/change_user`` (roles.py), which Django's stock UserAdmin
would turn into a way to make oneself superuser or hand out any permission. Here a non-superuser

* cannot set ``is_superuser`` and cannot open a superuser's account (only a superuser manages those);
* picks groups among the role groups only, and per-user permissions among ``GRANTABLE`` only.

Every change is audited (``admin`` event with what changed), like every other change of data.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, Permission, User

from backend.audit.log import record
from backend.audit.models import AuditEvent

from .roles import ROLES

# Per-user permissions an admin may grant from the admin site (app_label, codename).
GRANTABLE = (("analytics", "export_identified"),)


def _grantable():
    from django.db.models import Q

    q = Q(pk__in=[])
    for app_label, codename in GRANTABLE:
        q |= Q(content_type__app_label=app_label, codename=codename)
    return Permission.objects.filter(q)


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class RoleUserAdmin(UserAdmin):
    list_display = ("username", "email", "is_active", "is_staff", "roles", "last_login")
    list_filter = ("is_active", "is_staff", "groups")

    @admin.display(description="roles")
    def roles(self, obj):
        return ", ".join(g.name for g in obj.groups.all()) or "–"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def get_readonly_fields(self, request, obj=None):
        ro = list(super().get_readonly_fields(request, obj))
        return ro if request.user.is_superuser else ro + ["is_superuser", "last_login", "date_joined"]

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            if db_field.name == "groups":
                kwargs["queryset"] = Group.objects.filter(name__in=ROLES)
            elif db_field.name == "user_permissions":
                kwargs["queryset"] = _grantable().select_related("content_type")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        before = ({"groups": sorted(form.instance.groups.values_list("name", flat=True)),
                   "permissions": sorted(form.instance.user_permissions.values_list("codename", flat=True))}
                  if change else {"groups": [], "permissions": []})
        # Groups and permissions outside what this admin may pick are not in the form: keep them as they were.
        kept_groups = kept_perms = []
        if change and not request.user.is_superuser:
            kept_groups = list(form.instance.groups.exclude(name__in=ROLES))
            kept_perms = list(form.instance.user_permissions.exclude(pk__in=_grantable()))
        super().save_related(request, form, formsets, change)
        form.instance.groups.add(*kept_groups)
        form.instance.user_permissions.add(*kept_perms)
        after = {"groups": sorted(form.instance.groups.values_list("name", flat=True)),
                 "permissions": sorted(form.instance.user_permissions.values_list("codename", flat=True))}
        record(AuditEvent.ADMIN, "user", form.instance.pk, request=request, detail={
            "change": "changed" if change else "added", "username": form.instance.username,
            "fields": sorted(form.changed_data), "before": before, "after": after})


@admin.register(Group)
class RoleGroupAdmin(GroupAdmin):
    """Role groups are read-only here: their permissions come from roles.py (synced after every migrate)."""

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)
