"""Streaming forwarder to Orthanc's DICOMweb: pooled connections, no buffering.

Orthanc's credentials are added here and never reach the browser. They are the
gateway's own Orthanc account (``ORTHANC_GATEWAY_USERNAME``), which Orthanc's
request filter (``studies/orthanc/orthanc_plugin.py``) confines to GET under
/dicom-web/: even a path that slipped past ``paths.parse`` could not reach
Orthanc's REST API with it. Orthanc
builds absolute URLs (RetrieveURL, BulkDataURI) from the ``Forwarded`` header,
so we pass the client's host and scheme and its URLs point back at us.
"""

from __future__ import annotations

import threading

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from backend.errors import ServiceUnavailable

FORWARDED_REQUEST_HEADERS = ("Accept", "If-None-Match", "If-Modified-Since", "Range")
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Content-Range")

_local = threading.local()


def session() -> requests.Session:
    """One pooled session per thread (requests sessions are not thread-safe)."""
    if not hasattr(_local, "session"):
        s = requests.Session()
        # Reads are idempotent: retry once when Orthanc closed a pooled keep-alive connection.
        retry = Retry(total=2, connect=2, read=1, status=0, allowed_methods={"GET"}, raise_on_status=False)
        s.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=retry))
        s.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=retry))
        _local.session = s
    return _local.session


def upstream_url(path: str) -> str:
    return f"{settings.ORTHANC_URL}{settings.ORTHANC_DICOMWEB_ROOT.rstrip('/')}/{path}"


def open_upstream(path: str, query: str, headers: dict, client_host: str, client_proto: str) -> requests.Response:
    forwarded = {k: headers[k] for k in FORWARDED_REQUEST_HEADERS if k in headers}
    forwarded["Forwarded"] = f"host={client_host};proto={client_proto}"
    url = upstream_url(path) + (f"?{query}" if query else "")
    try:
        return session().get(url, headers=forwarded, stream=True, timeout=(5, 300),
                             auth=(settings.ORTHANC_GATEWAY_USERNAME, settings.ORTHANC_GATEWAY_PASSWORD))
    except requests.RequestException as exc:
        raise ServiceUnavailable("Orthanc", f"DICOMweb request failed ({exc.__class__.__name__})") from exc


def stream_body(response: requests.Response):
    """Yield the upstream body in large chunks and always release the connection."""
    try:
        yield from response.raw.stream(settings.SPINEAGENT_GATEWAY_CHUNK, decode_content=False)
    finally:
        response.close()
