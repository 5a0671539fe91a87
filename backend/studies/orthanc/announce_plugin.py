"""Orthanc Python plugin: announce every stable study to the SpineAgent backend.

Runs inside Orthanc with Debian's python3, so it uses the standard library only.
Studies that reach Orthanc by C-STORE or Orthanc's own upload become stable after
``StableAge`` seconds; we POST their StudyInstanceUID to the backend, signed with
HMAC-SHA256 (see backend/studies/webhook.py). Posting happens on a worker thread
with retries so Orthanc's callback never blocks; anything still missed is caught
up by ``manage.py sync_orthanc``.
"""

import hashlib
import heapq
import hmac
import json
import os
import threading
import time
import urllib.error
import urllib.request

import orthanc

WEBHOOK_URL = os.environ.get("SPINEAGENT_WEBHOOK_URL", "http://127.0.0.1:8000/api/orthanc/stable-study")
SECRET = os.environ.get("SPINEAGENT_WEBHOOK_SECRET", "spineagent-dev-webhook-secret")
RETRIES = int(os.environ.get("SPINEAGENT_WEBHOOK_RETRIES", "5"))

# (due time, sequence, attempt, payload): failed posts wait for their retry without holding up others.
_pending: list = []
_ready = threading.Condition()
_sequence = 0


def _enqueue(payload: dict, attempt: int = 0, delay: float = 0.0) -> None:
    global _sequence
    with _ready:
        _sequence += 1
        heapq.heappush(_pending, (time.monotonic() + delay, _sequence, attempt, payload))
        _ready.notify()


def _post(payload: dict) -> int:
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(WEBHOOK_URL, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-SpineAgent-Timestamp": timestamp,
        "X-SpineAgent-Signature": signature,
    })
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def _next_due():
    with _ready:
        while True:
            if _pending and _pending[0][0] <= time.monotonic():
                return heapq.heappop(_pending)
            _ready.wait(timeout=(_pending[0][0] - time.monotonic()) if _pending else None)


def _worker() -> None:
    while True:
        _, _, attempt, payload = _next_due()
        try:
            _post(payload)
        except (urllib.error.URLError, OSError) as exc:
            orthanc.LogWarning(f"SpineAgent: announcing {payload['study_instance_uid']} failed ({exc}), "
                               f"attempt {attempt + 1}/{RETRIES}")
            if attempt + 1 < RETRIES:
                _enqueue(payload, attempt + 1, delay=min(2 ** attempt, 30))


def on_change(change_type, level, resource_id):
    if change_type != orthanc.ChangeType.STABLE_STUDY:
        return
    study = json.loads(orthanc.RestApiGet(f"/studies/{resource_id}"))
    uid = study.get("MainDicomTags", {}).get("StudyInstanceUID")
    if uid:
        _enqueue({"study_instance_uid": uid, "orthanc_id": resource_id})


threading.Thread(target=_worker, name="spineagent-announce", daemon=True).start()
orthanc.RegisterOnChangeCallback(on_change)
