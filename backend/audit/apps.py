from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "backend.audit"
    label = "audit"
    verbose_name = "Audit log: who viewed, edited, signed or exported what"

    def ready(self):
        from . import receivers  # noqa: F401  (login / login_failed events)
