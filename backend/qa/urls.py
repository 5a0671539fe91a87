"""API routes of the QA app, mounted at /api/qa/ by backend/urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("cases", views.QAQueue.as_view(), name="qa-queue"),
    path("cases/<int:pk>", views.QACaseDetail.as_view(), name="qa-case"),
    path("cases/<int:pk>/review", views.QAReview.as_view(), name="qa-review"),
]
