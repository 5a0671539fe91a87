from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "backend.annotations"
    label = "annotations"
    verbose_name = "Annotations: label extraction, verification, adjudication"

    def ready(self):
        from backend.inference.signals import inference_succeeded
        from backend.reports.signals import report_signed
        from backend.studies.signals import study_indexed

        from . import receivers

        report_signed.connect(receivers.on_report_signed, dispatch_uid="annotations.task_from_signed_report")
        study_indexed.connect(receivers.on_study_indexed, dispatch_uid="annotations.link_study")
        inference_succeeded.connect(receivers.on_inference_succeeded, dispatch_uid="annotations.refresh_priority")
