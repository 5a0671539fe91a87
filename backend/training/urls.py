"""API routes of the training app (included at /api/training/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("datasets/", views.DatasetList.as_view(), name="dataset-list"),
    path("datasets/<int:pk>/", views.DatasetDetail.as_view(), name="dataset-detail"),
    path("datasets/<int:pk>/export.json", views.DatasetExportJSON.as_view(), name="dataset-export-json"),
    path("datasets/<int:pk>/export.csv", views.DatasetExportCSV.as_view(), name="dataset-export-csv"),
    path("runs/", views.RunList.as_view(), name="training-run-list"),
    path("runs/<int:pk>/", views.RunDetail.as_view(), name="training-run-detail"),
    path("runs/<int:pk>/comparison", views.RunComparison.as_view(), name="training-run-comparison"),
    path("runs/<int:pk>/gate", views.RunGate.as_view(), name="training-run-gate"),
    path("runs/<int:pk>/promote", views.RunPromote.as_view(), name="training-run-promote"),
    path("runs/<int:pk>/reject", views.RunReject.as_view(), name="training-run-reject"),
]
