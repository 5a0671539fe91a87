"""API tokens that expire, and ending every credential of a user at once.

DRF's tokens never expire on their own; a token copied into a script or a log
stays valid for ever. Here a token older than ``SPINEAGENT_TOKEN_TTL_DAYS`` is
refused (a new one: ``manage.py drf_create_token -r USER``), and logging out
everywhere or deactivating a user deletes their tokens and sessions.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token.created < timezone.now() - timedelta(days=settings.SPINEAGENT_TOKEN_TTL_DAYS):
            raise AuthenticationFailed(f"token expired (older than {settings.SPINEAGENT_TOKEN_TTL_DAYS} days); "
                                       "ask an administrator for a new one")
        return user, token


def end_sessions(user) -> int:
    """Delete every live session of ``user`` (database sessions: decoded one by one). Returns how many."""
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
            ended += 1
    return ended


def revoke_credentials(user) -> dict[str, int]:
    """Every token and session of ``user`` ends now (the gateway forgets them through the delete signals)."""
    tokens, _ = Token.objects.filter(user=user).delete()
    return {"tokens": tokens, "sessions": end_sessions(user)}
