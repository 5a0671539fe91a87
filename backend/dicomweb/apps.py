from django.apps import AppConfig


class DicomWebConfig(AppConfig):
    name = "backend.dicomweb"
    label = "dicomweb"
    verbose_name = "DICOMweb gateway"

    def ready(self):
        from . import receivers  # noqa: F401  (revoke remembered credentials when access changes)
