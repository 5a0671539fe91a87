"""Logins and failed logins, from Django's auth signals (every login path: page, admin, API, SSO)."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from .log import record
from .models import AuditEvent


@receiver(user_logged_in, dispatch_uid="audit.login")
def _login(sender, request, user, **kwargs):
    backend = getattr(user, "backend", "") or ""
    record(AuditEvent.LOGIN, "user", user.get_username(), user=user, request=request,
           detail={"method": "sso" if "oidc" in backend.lower() else "password"})


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked the password in ``credentials``; keep only the name that was tried.
    username = str(credentials.get("username") or "")[:128]
    record(AuditEvent.LOGIN_FAILED, "user", username, request=request, detail={"username": username})
