"""Login throttling: after repeated password failures, refuse further tries for a while.

Failures are counted in the shared cache (Redis) per username and per client
address, in a fixed window (``SPINEAGENT_LOGIN_FAILURE_WINDOW`` seconds from the
first failure). Once either count reaches its limit:

* the password login views (``LOGIN_VIEWS``: our /login, DRF's browsable-API
  login, Django admin's login) answer HTTP 429 with Retry-After before any
  password is checked, and
* ``ThrottledModelBackend`` refuses every password check, so no other code path
  that calls ``authenticate()`` can be used as a password oracle either.

A successful login clears the username's count (not the address's). If the cache
is down the throttle fails open (logged): locking every user out of a hospital
system because Redis restarted would be the worse failure.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.shortcuts import render
from redis.exceptions import RedisError

from backend.audit.log import client_ip

log = logging.getLogger(__name__)

# url names (namespace:name) of views that take a username and password by POST.
LOGIN_VIEWS = frozenset({"login", "rest_framework:login", "admin:login"})


def _key(kind: str, value: str) -> str:
    return f"login-failures:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def _keys(username: str | None, ip: str | None) -> list[tuple[str, int]]:
    keys = []
    if username:
        keys.append((_key("user", username.strip().lower()), settings.SPINEAGENT_LOGIN_FAILURES_PER_USER))
    if ip:
        keys.append((_key("ip", ip), settings.SPINEAGENT_LOGIN_FAILURES_PER_IP))
    return keys


def is_locked(username: str | None, ip: str | None) -> bool:
    """True when the username or the address has used up its failures in the current window."""
    keys = _keys(username, ip)
    if not keys:
        return False
    try:
        counts = cache.get_many([k for k, _ in keys])
    except RedisError:
        log.warning("login throttle: cache unavailable, not throttling", exc_info=True)
        return False
    return any(counts.get(k, 0) >= limit for k, limit in keys)


def register_failure(username: str | None, ip: str | None) -> None:
    for key, _ in _keys(username, ip):
        try:
            cache.add(key, 0, timeout=settings.SPINEAGENT_LOGIN_FAILURE_WINDOW)
            cache.incr(key)
        except ValueError:  # expired between add and incr: start a new window
            cache.set(key, 1, timeout=settings.SPINEAGENT_LOGIN_FAILURE_WINDOW)
        except RedisError:
            log.warning("login throttle: cache unavailable, failure not counted", exc_info=True)
            return


def clear(username: str | None = None, ip: str | None = None) -> None:
    """Forget the failures of a username and/or address (after a success; by an admin; in tests)."""
    try:
        cache.delete_many([k for k, _ in _keys(username, ip)])
    except RedisError:
        log.warning("login throttle: cache unavailable, counts not cleared", exc_info=True)


@receiver(user_login_failed, dispatch_uid="accounts.login_throttle.failed")
def _count_failure(sender, credentials, request=None, **kwargs):
    register_failure(credentials.get("username"), client_ip(request))


@receiver(user_logged_in, dispatch_uid="accounts.login_throttle.succeeded")
def _clear_on_success(sender, request, user, **kwargs):
    clear(username=user.get_username())


class ThrottledModelBackend(ModelBackend):
    """Django's password backend, refusing (without checking the password) while throttled."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and is_locked(username, client_ip(request)):
            raise PermissionDenied("too many failed logins")  # authenticate() stops and signals a failure
        return super().authenticate(request, username=username, password=password, **kwargs)


class LoginThrottleMiddleware:
    """Answer 429 to a POST on a password login view while its username or address is throttled."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if request.method != "POST" or match is None or match.view_name not in LOGIN_VIEWS:
            return None
        if not is_locked(request.POST.get("username"), client_ip(request)):
            return None
        response = render(request, "viewer/login_throttled.html",
                          {"minutes": max(1, settings.SPINEAGENT_LOGIN_FAILURE_WINDOW // 60)}, status=429)
        response["Retry-After"] = str(settings.SPINEAGENT_LOGIN_FAILURE_WINDOW)
        return response
