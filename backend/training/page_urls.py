"""The admin's training screens, mounted at /training/ by backend/urls.py."""

from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.home, name="training-page"),
    path("datasets/<int:pk>", pages.dataset_page, name="training-dataset-page"),
    path("runs/<int:pk>", pages.run_page, name="training-run-page"),
    path("assets/<path:path>", pages.page_asset, name="training-asset"),
]
