"""HTML pages of the annotator (verification queue), mounted at /annotate/."""

from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.queue_page, name="annotate-queue"),
    path("tasks/<int:pk>", pages.task_page, name="annotate-task"),
    path("next", pages.next_task, name="annotate-next"),
    path("assets/<path:path>", pages.page_asset, name="annotate-asset"),
]
