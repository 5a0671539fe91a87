from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "backend.reports"
    label = "reports"
    verbose_name = "Reports: AI drafts, versions, sign-off"

    def ready(self):
        from backend.inference.signals import inference_succeeded

        from . import receivers

        inference_succeeded.connect(receivers.draft_from_result, dispatch_uid="reports.draft_from_result")
