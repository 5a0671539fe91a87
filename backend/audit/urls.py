"""API routes of the audit app (admin only), under /api/audit/."""

from django.urls import path

from . import views

urlpatterns = [
    path("events/", views.AuditEventList.as_view(), name="audit-event-list"),
    path("export.csv", views.AuditExport.as_view(), name="audit-export"),
]
