"""API routes of the annotations app (mounted at /api/annotations/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("tasks/", views.TaskQueue.as_view(), name="annotation-queue"),
    path("tasks/<int:pk>/", views.TaskDetail.as_view(), name="annotation-task"),
    path("tasks/<int:pk>/annotations", views.SubmitAnnotation.as_view(), name="annotation-submit"),
    path("tasks/<int:pk>/reveal", views.RevealExtraction.as_view(), name="annotation-reveal"),
    path("adjudication/", views.AdjudicationQueue.as_view(), name="annotation-adjudication-queue"),
    path("tasks/<int:pk>/adjudicate", views.Adjudicate.as_view(), name="annotation-adjudicate"),
    path("import", views.ImportReports.as_view(), name="annotation-import"),
    path("metrics", views.LabelMetrics.as_view(), name="annotation-metrics"),
]
