from django.apps import AppConfig


class QAConfig(AppConfig):
    name = "backend.qa"
    label = "qa"
    verbose_name = "QA: RADPEER peer review of signed reports"

    def ready(self):
        from backend.reports.signals import report_signed

        from . import receivers

        report_signed.connect(receivers.select_on_sign, dispatch_uid="qa.select_on_sign")
