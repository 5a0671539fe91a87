"""HMAC signatures for Orthanc -> backend announcements.

The Orthanc plugin signs ``"<timestamp>.<body>"`` with the shared secret
(HMAC-SHA256, hex) in ``X-SpineAgent-Signature`` and sends the timestamp, whole
seconds since the epoch, in ``X-SpineAgent-Timestamp``. The timestamp must be an
integer within ``MAX_SKEW_SECONDS`` of now (``nan``, ``1e9`` or ``-0`` are not
timestamps), and each signature is accepted once: a captured announcement
replayed inside the window is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from django.core.cache import cache
from redis.exceptions import RedisError

from backend.errors import ServiceUnavailable

MAX_SKEW_SECONDS = 300
TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
SIGNATURE = re.compile(r"^[0-9a-f]{64}$")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None) -> str | None:
    """None when valid, else the reason it is not. Pure: the replay check is ``first_use``."""
    if not timestamp or not signature:
        return "missing signature headers"
    if not TIMESTAMP.match(timestamp):
        return "bad timestamp (whole seconds since the epoch)"
    age = (now or time.time()) - int(timestamp)
    if age > MAX_SKEW_SECONDS:
        return "timestamp too old"
    if age < -MAX_SKEW_SECONDS:
        return "timestamp in the future"
    if not SIGNATURE.match(signature) or not hmac.compare_digest(sign(secret, timestamp, body), signature):
        return "bad signature"
    return None


def first_use(signature: str) -> bool:
    """True the first time a (valid) signature is seen within the window, in every web process (Redis)."""
    try:
        return cache.add(f"webhook-signature:{signature}", 1, timeout=2 * MAX_SKEW_SECONDS + 60)
    except RedisError as exc:  # cannot tell a replay from a first use: refuse, the plugin retries later
        raise ServiceUnavailable("Redis", "replay check unavailable") from exc
