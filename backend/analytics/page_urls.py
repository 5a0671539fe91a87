"""The admin's analytics dashboard page, mounted at /analytics/ by backend/urls.py."""

from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.dashboard, name="analytics-dashboard"),
]
