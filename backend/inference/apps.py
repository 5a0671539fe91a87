from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "backend.inference"
    label = "inference"
    verbose_name = "Inference jobs and model versions"

    def ready(self):
        from backend.studies.signals import study_indexed

        from . import receivers
        from .signals import inference_succeeded

        study_indexed.connect(receivers.queue_job_for_new_study, dispatch_uid="inference.queue_new_study")
        inference_succeeded.connect(receivers.export_sr_of_result, dispatch_uid="inference.export_sr")
