from django.apps import AppConfig


class ViewerConfig(AppConfig):
    name = "backend.viewer"
    label = "viewer"
    verbose_name = "Viewer, worklist and login pages"
