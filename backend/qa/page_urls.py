"""HTML pages of the QA reviewer, mounted at /qa/ by backend/urls.py."""

from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.queue_page, name="qa-queue-page"),
    path("cases/<int:pk>", pages.case_page, name="qa-case-page"),
]
