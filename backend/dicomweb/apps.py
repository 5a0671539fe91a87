from django.apps import AppConfig


class DicomWebConfig(AppConfig):
    name = "backend.dicomweb"
    label = "dicomweb"
    verbose_name = "DICOMweb gateway"
