from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "backend.inference"
    label = "inference"
    verbose_name = "Inference jobs and model versions"

    def ready(self):
        from backend.studies.signals import study_indexed

        from . import receivers

        study_indexed.connect(receivers.queue_job_for_new_study, dispatch_uid="inference.queue_new_study")
