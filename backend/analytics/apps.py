from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "backend.analytics"
    label = "analytics"
    verbose_name = "Analytics: RADPEER profiles, edit metrics, exports"

    def ready(self):
        from backend.reports.signals import report_signed

        from . import receivers

        report_signed.connect(receivers.metrics_on_sign, dispatch_uid="analytics.metrics_on_sign")
