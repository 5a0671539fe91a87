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

import urllib3
from django.conf import settings
from urllib3.exceptions import HTTPError
from urllib3.util import Retry, Timeout, make_headers

from backend.errors import ServiceUnavailable

FORWARDED_REQUEST_HEADERS = ("Accept", "If-None-Match", "If-Modified-Since", "Range")
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Content-Range")

# One thread-safe pool for the process. urllib3 itself, not requests: a viewer reads a study frame by frame,
# and requests' per-call work (environment proxy lookups, settings merges, cookie jars) cost about half a
# millisecond of CPU a frame on the gateway. Reads are idempotent: retry once when Orthanc closed a kept-alive
# connection; Orthanc's own answers (4xx, 5xx) are passed on, never retried.
_pool = urllib3.PoolManager(num_pools=4, maxsize=16, block=False,
                            retries=Retry(total=2, connect=2, read=1, status=0, allowed_methods={"GET"},
                                          raise_on_status=False),
                            timeout=Timeout(connect=5, read=300))


def upstream_url(path: str) -> str:
    return f"{settings.ORTHANC_URL}{settings.ORTHANC_DICOMWEB_ROOT.rstrip('/')}/{path}"


def open_upstream(path: str, query: str, headers, client_host: str, client_proto: str) -> urllib3.BaseHTTPResponse:
    """Orthanc's answer to the rebuilt read, headers received and body not yet read (``stream_body``)."""
    forwarded = {k: headers[k] for k in FORWARDED_REQUEST_HEADERS if k in headers}
    forwarded["Forwarded"] = f"host={client_host};proto={client_proto}"
    forwarded.update(make_headers(basic_auth=f"{settings.ORTHANC_GATEWAY_USERNAME}:{settings.ORTHANC_GATEWAY_PASSWORD}"))
    url = upstream_url(path) + (f"?{query}" if query else "")
    try:
        return _pool.request("GET", url, headers=forwarded, preload_content=False, decode_content=False,
                             redirect=False)  # Orthanc's DICOMweb never redirects; a redirect is not followed
    except HTTPError as exc:
        raise ServiceUnavailable("Orthanc", f"DICOMweb request failed ({exc.__class__.__name__})") from exc


def stream_body(response: urllib3.BaseHTTPResponse):
    """Yield the upstream body in large chunks; a finished body gives its connection back to the pool, one
    abandoned half way (the viewer went away) closes it."""
    finished = False
    try:
        yield from response.stream(settings.SPINEAGENT_GATEWAY_CHUNK, decode_content=False)
        finished = True
    finally:
        if not finished:
            response.close()
        response.release_conn()
