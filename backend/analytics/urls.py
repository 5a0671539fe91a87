"""API routes of the analytics app (admin only), mounted at /api/analytics/ by backend/urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("radpeer", views.RadpeerAnalytics.as_view(), name="analytics-radpeer"),
    path("edits", views.EditAnalytics.as_view(), name="analytics-edits"),
    path("conditions", views.ConditionAnalytics.as_view(), name="analytics-conditions"),
    path("turnaround", views.TurnaroundAnalytics.as_view(), name="analytics-turnaround"),
    path("edit-burden", views.EditBurdenAnalytics.as_view(), name="analytics-edit-burden"),
    path("draft-agreement", views.DraftAgreementAnalytics.as_view(), name="analytics-draft-agreement"),
    path("export.csv", views.AnalyticsExport.as_view(), name="analytics-export"),
    path("export.xlsx", views.AnalyticsExportXlsx.as_view(), name="analytics-export-xlsx"),
    path("chart.png", views.AnalyticsChart.as_view(), name="analytics-chart"),
]
