"""DRF request-rate throttles whose rates are read from settings on every request.

DRF's own classes bind ``DEFAULT_THROTTLE_RATES`` at import time; these read
``settings.SPINEAGENT_THROTTLE_RATES`` when asked, so a rate of ``None`` (the
development and test default) switches a scope off and a test can turn one on.
Counters live in the shared cache (Redis), so every web process sees them.
"""

from django.conf import settings
from rest_framework import throttling


class _SettingsRate:
    def get_rate(self):
        return settings.SPINEAGENT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.rate = self.get_rate()  # re-read: the base class parsed it once in __init__
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class AnonRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    """Unauthenticated callers, per client address."""


class UserRateThrottle(_SettingsRate, throttling.UserRateThrottle):
    """Authenticated callers, per user."""
