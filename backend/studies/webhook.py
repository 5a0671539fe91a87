"""HMAC signatures for Orthanc -> backend announcements.

The Orthanc plugin signs ``"<timestamp>.<body>"`` with the shared secret
(HMAC-SHA256, hex) in ``X-SpineAgent-Signature`` and sends the timestamp in
``X-SpineAgent-Timestamp``. Old timestamps are refused to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time

MAX_SKEW_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None) -> str | None:
    """None when valid, else the reason it is not."""
    if not timestamp or not signature:
        return "missing signature headers"
    try:
        age = abs((now or time.time()) - float(timestamp))
    except ValueError:
        return "bad timestamp"
    if age > MAX_SKEW_SECONDS:
        return "timestamp too old"
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        return "bad signature"
    return None
