"""The append-only audit log: who viewed, edited, signed or exported what, and when.

Rows are only ever inserted (``record``); a database trigger refuses UPDATE and
DELETE so not even a bug or a Django shell can rewrite history.
"""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    VIEW, EDIT, SIGN, EXPORT, LOGIN, LOGIN_FAILED, ADMIN, REFUSED = (
        "view", "edit", "sign", "export", "login", "login_failed", "admin", "refused")
    ACTIONS = [(a, a) for a in (VIEW, EDIT, SIGN, EXPORT, LOGIN, LOGIN_FAILED, ADMIN, REFUSED)]

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No FK constraint and no cascade: rows are never updated, so a removed user keeps their events by id+name.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                             on_delete=models.DO_NOTHING, db_constraint=False)
    username = models.CharField(max_length=150, blank=True)  # kept if the user row is ever removed
    action = models.CharField(max_length=16, choices=ACTIONS, db_index=True)
    # What was touched: a kind ("report", "study", "images", "analytics-export", ...) and its key.
    target_type = models.CharField(max_length=32, db_index=True)
    target_id = models.CharField(max_length=128, blank=True, db_index=True)
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["target_type", "target_id", "-at"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.target_type} {self.target_id}"
