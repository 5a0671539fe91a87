"""Shared tools of the attack suite: a byte-exact HTTP client and the gateway traversal variants."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

# What Orthanc's REST API answers carry (/system, /statistics, /patients, Explorer, archives, raw files).
ORTHANC_MARKERS = (b"DicomAet", b"DatabaseVersion", b"CountInstances", b"TotalDiskSize", b"MainDicomTags",
                   b"Orthanc Explorer", b"explorer.js", b"PluginsEnabled", b"PK\x03\x04", b"DICM")


def _traversal_variants(study: str, series: str, orthanc_instance: str, orthanc_study: str) -> list[str]:
    base = f"/dicom-web/studies/{study}"
    return [
        "/dicom-web/../system",
        "/dicom-web/studies/../../system",
        "/dicom-web/studies/%2e%2e/%2e%2e/system",
        "/dicom-web/studies/%2E%2e/%2e%2E/statistics",
        "/dicom-web/studies/..%2f..%2fsystem",
        "/dicom-web/studies/..%2F..%2Fpatients",
        "/dicom-web/studies/%252e%252e/%252e%252e/system",
        "/dicom-web/studies/%252e%252e%252f%252e%252e%252fsystem",
        "/dicom-web/studies/..\\..\\system",
        "/dicom-web/studies/..%5c..%5csystem",
        "/dicom-web/studies/./../../changes",
        "/dicom-web/STUDIES/../../plugins",
        "/dicom-web/Studies/%2e%2e/%2e%2e/plugins",
        "/dicom-web//studies/../../system",
        "/dicom-web/studies;/../../system",
        "/dicom-web/studies/..;/..;/system",
        f"/dicom-web/series/../../instances/{orthanc_instance}/file",
        f"/dicom-web/instances/..%2f..%2finstances/{orthanc_instance}/file",
        f"{base}/../../../studies/{orthanc_study}/archive",
        f"{base}/series/{series}/../../../../studies/{orthanc_study}/archive",
        f"{base}/%2e%2e/%2e%2e/%2e%2e/studies/{orthanc_study}/media",
        "/dicom-web/../app/explorer.html",
        "/dicom-web/%2e%2e/app/explorer.html",
        "/dicom-web/servers",
        "/dicom-web/servers/evil/stow",
        f"{base}/series/{series}/instances/1.2.3/frames/1/../../../../../../../system",
        f"{base}/series/{series}/instances/1.2%2F3",
        "/dicom-web/studies/%00/../../system",
        "/dicom-web/studies/1.2.3/bulk/../../../../system",
    ]


def _raw_get(base_url: str, target: str, token: str) -> tuple[int, bytes]:
    """GET with the request target sent byte for byte."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Token {token}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()




@pytest.fixture
def raw_get():
    return _raw_get


@pytest.fixture
def traversal_variants():
    return _traversal_variants


@pytest.fixture
def orthanc_markers():
    return ORTHANC_MARKERS
