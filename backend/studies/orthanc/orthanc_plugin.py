"""Orthanc Python plugin: SpineAgent's three rules inside Orthanc.

Runs inside Orthanc with Debian's python3, so it uses the standard library only.
Configured by environment variables of the Orthanc process:

1. Gateway confinement (``SPINEAGENT_GATEWAY_USER``): requests authenticated as
   the DICOMweb gateway's own Orthanc user may only GET QIDO-RS/WADO-RS
   resources under /dicom-web/ (studies, series, instances). Orthanc normalises
   ``..`` and decodes the URI before this filter sees it, so no spelling of a
   path escapes it. The backend's own user (ingest, housekeeping) is not limited.
2. DICOM C-STORE allowlist (``SPINEAGENT_DICOM_MODALITIES``, e.g.
   ``MR_3T@10.1.2.3:104,CT1=CTSCAN@10.1.2.4:11112``): at start-up the listed
   modalities are registered (store and echo only) and every other one removed;
   Orthanc's configuration refuses C-STORE from anyone else
   (``DicomAlwaysAllowStore`` false, ``DicomCheckCalledAet`` and
   ``DicomCheckModalityHost`` true). A malformed entry is logged and skipped,
   so a typo closes the door instead of opening it.
3. Announcing stable studies (``SPINEAGENT_WEBHOOK_URL``, only when set): studies
   that reach Orthanc by C-STORE or Orthanc's own upload become stable after
   ``StableAge`` seconds; we POST their StudyInstanceUID to the backend, signed
   with HMAC-SHA256 (see backend/studies/webhook.py). Posting happens on a worker
   thread with retries so Orthanc's callback never blocks; anything still missed
   is caught up by ``manage.py sync_orthanc``.
"""

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request

import orthanc

WEBHOOK_URL = os.environ.get("SPINEAGENT_WEBHOOK_URL", "")
SECRET = os.environ.get("SPINEAGENT_WEBHOOK_SECRET", "spineagent-dev-webhook-secret")
RETRIES = int(os.environ.get("SPINEAGENT_WEBHOOK_RETRIES", "5"))
GATEWAY_USER = os.environ.get("SPINEAGENT_GATEWAY_USER", "")
MODALITIES = os.environ.get("SPINEAGENT_DICOM_MODALITIES", "")

# -- 1. gateway confinement -----------------------------------------------------------------------
GATEWAY_PATH = re.compile(r"^/dicom-web/(studies|series|instances)(/[0-9A-Za-z.,/]*)?$")


def basic_username(headers) -> str:
    """The user name of an HTTP Basic Authorization header ('' when absent or not Basic).

    Orthanc has already checked the password when the filter runs (a wrong one is a 401 before)."""
    value = (headers or {}).get("authorization", "")
    if not value.lower().startswith("basic "):
        return ""
    try:
        return base64.b64decode(value[6:].strip(), validate=True).decode("utf-8", "replace").split(":", 1)[0]
    except (binascii.Error, ValueError):
        return ""


def gateway_may(method, uri: str) -> bool:
    return method == orthanc.HttpMethod.GET and bool(GATEWAY_PATH.match(uri)) and "/.." not in uri


def filter_request(uri, **request):
    if not GATEWAY_USER or basic_username(request.get("headers")) != GATEWAY_USER:
        return True
    allowed = gateway_may(request.get("method"), uri)
    if not allowed:
        orthanc.LogWarning(f"SpineAgent: refused gateway request {uri!r}")
    return allowed


# -- 2. C-STORE allowlist -------------------------------------------------------------------------
AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: printable, no backslash
ENTRY = re.compile(r"^(?:(?P<name>[A-Za-z0-9_-]{1,64})=)?(?P<aet>[^@]+)@(?P<host>[^:@\s]+):(?P<port>[0-9]{1,5})$")
ONLY_STORE = {"AllowStore": True, "AllowEcho": True, "AllowFind": False, "AllowFindWorklist": False,
              "AllowGet": False, "AllowMove": False, "AllowNAction": False, "AllowEventReport": False}


def parse_modalities(text: str) -> tuple[dict, list]:
    """``{name: {AET, Host, Port}}`` from the allowlist, and the entries refused (with why)."""
    found, refused = {}, []
    for raw in re.split(r"[,\s]+", text.strip()):
        if not raw:
            continue
        m = ENTRY.match(raw)
        if not m or not AE_TITLE.match(m["aet"]) or m["aet"] != m["aet"].strip() or not 0 < int(m["port"]) < 65536:
            refused.append(f"{raw!r}: expected [NAME=]AET@host:port with an AE title of 1-16 characters")
            continue
        name = m["name"] or re.sub(r"[^A-Za-z0-9_-]", "_", m["aet"])
        found[name] = {"AET": m["aet"], "Host": m["host"], "Port": int(m["port"])}
    return found, refused


def register_modalities() -> None:
    wanted, refused = parse_modalities(MODALITIES)
    for problem in refused:
        orthanc.LogError(f"SpineAgent: DICOM modality entry skipped, {problem}")
    for name in json.loads(orthanc.RestApiGet("/modalities")):
        if name not in wanted:
            orthanc.RestApiDelete(f"/modalities/{name}")
    for name, modality in wanted.items():
        orthanc.RestApiPut(f"/modalities/{name}", json.dumps({**modality, **ONLY_STORE}))
    orthanc.LogWarning(f"SpineAgent: C-STORE allowed from {len(wanted)} modalities: "
                       + (", ".join(f"{m['AET']}@{m['Host']}" for m in wanted.values()) or "none"))


# -- 3. announcing stable studies -----------------------------------------------------------------

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
    if change_type == orthanc.ChangeType.ORTHANC_STARTED:
        register_modalities()
        return
    if change_type != orthanc.ChangeType.STABLE_STUDY or not WEBHOOK_URL:
        return
    study = json.loads(orthanc.RestApiGet(f"/studies/{resource_id}"))
    uid = study.get("MainDicomTags", {}).get("StudyInstanceUID")
    if uid:
        _enqueue({"study_instance_uid": uid, "orthanc_id": resource_id})


if WEBHOOK_URL:
    threading.Thread(target=_worker, name="spineagent-announce", daemon=True).start()
orthanc.RegisterOnChangeCallback(on_change)
orthanc.RegisterIncomingHttpRequestFilter(filter_request)
