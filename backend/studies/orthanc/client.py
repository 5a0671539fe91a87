"""Talking to Orthanc: STOW-RS to store, WADO-RS/QIDO-RS to read, REST for housekeeping.

Every network failure becomes :class:`backend.errors.ServiceUnavailable` so the
API can answer 503 with a clear message instead of a stack trace.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings

from backend.errors import ServiceUnavailable

SERVICE = "Orthanc"
AS_STORED = (("application/dicom", "*"),)  # WADO-RS: instances in their stored transfer syntax, no transcoding


class OrthancRefused(Exception):
    """Orthanc answered, but not with the resource (a 4xx, or a 5xx about this resource while Orthanc is up):
    not an outage, so nothing to retry."""


@dataclass
class StoredFile:
    """Orthanc's answer to one instance: its id and whether this call added it, or why it was refused."""

    orthanc_id: str = ""
    added: bool = False
    refused: str = ""  # Orthanc's reason for a 4xx


@dataclass
class StowOutcome:
    stored: list[str] = field(default_factory=list)  # SOPInstanceUIDs Orthanc accepted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SOPInstanceUID, failure reason code)


class OrthancClient:
    def __init__(self, url: str | None = None, username: str | None = None, password: str | None = None,
                 timeout: float | None = None, dicomweb_root: str | None = None):
        self.url = (url or settings.ORTHANC_URL).rstrip("/")
        self.timeout = timeout or settings.ORTHANC_TIMEOUT
        self.dicomweb_url = self.url + (dicomweb_root or settings.ORTHANC_DICOMWEB_ROOT).rstrip("/")
        self.session = requests.Session()
        self.session.auth = (username or settings.ORTHANC_USERNAME, password or settings.ORTHANC_PASSWORD)

    @cached_property
    def dicomweb(self) -> DICOMwebClient:
        client = DICOMwebClient(self.dicomweb_url, session=self.session, timeout=self.timeout)
        # Fail fast: jobs and the API retry at their own level (Celery retry, 503 + Retry-After).
        client.set_http_retry_params(retry=False)
        return client

    # -- plumbing -------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """One REST call; connection problems and 5xx are ServiceUnavailable."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, self.url + path, **kwargs)
        except requests.RequestException as exc:
            raise ServiceUnavailable(SERVICE, f"{method} {path}: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 401:
            raise ServiceUnavailable(SERVICE, f"{method} {path} answered HTTP {response.status_code}")
        return response

    def _dicomweb_call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            if status == 404:
                raise LookupError("Orthanc has no such DICOMweb resource") from exc
            raise ServiceUnavailable(SERVICE, f"DICOMweb answered HTTP {status}") from exc
        except requests.RequestException as exc:
            raise ServiceUnavailable(SERVICE, f"DICOMweb: {exc.__class__.__name__}") from exc

    def ping(self) -> dict:
        return self.request("GET", "/system").json()

    # -- store ------------------------------------------------------------------------------
    def stow(self, files: list[bytes]) -> StowOutcome:
        """STOW-RS the Part-10 files unchanged, in one multipart request."""
        boundary = f"spineagent-{uuid.uuid4().hex}"
        parts = []
        for data in files:
            parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            parts.append(data)
            parts.append(b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        response = self.request(
            "POST",
            settings.ORTHANC_DICOMWEB_ROOT.rstrip("/") + "/studies",
            data=b"".join(parts),
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json",
            },
            timeout=max(self.timeout, 120),
        )
        if response.status_code not in (200, 202, 409):
            raise ServiceUnavailable(SERVICE, f"STOW-RS answered HTTP {response.status_code}")
        return _parse_stow_response(response.json() if response.content else {})

    def store_file(self, path) -> StoredFile:
        """POST one Part-10 file to /instances, streamed from disk. A 4xx is the instance's refusal (with
        Orthanc's reason), not an outage; connection problems and 5xx are ServiceUnavailable."""
        with open(path, "rb") as data:
            response = self.request("POST", "/instances", data=data, timeout=max(self.timeout, 120),
                                    headers={"Content-Type": "application/dicom"})
        body = _json_or_empty(response)
        if 400 <= response.status_code < 500:
            reason = body.get("Details") or body.get("Message") or f"HTTP {response.status_code}"
            return StoredFile(refused=str(reason)[:300])
        if response.status_code != 200 or not body.get("ID"):
            raise ServiceUnavailable(SERVICE, f"POST /instances answered HTTP {response.status_code}")
        return StoredFile(orthanc_id=body["ID"], added=body.get("Status") == "Success")

    def delete_orthanc_instances(self, orthanc_ids: list[str]) -> None:
        for orthanc_id in orthanc_ids:
            self.request("DELETE", f"/instances/{orthanc_id}")

    def dicom_intake(self) -> dict:
        """Who may send us studies by DICOM, as Orthanc enforces it now (our plugin registered the list)."""
        system = self.request("GET", "/system").json()
        modalities = self.request("GET", "/modalities?expand").json()
        return {
            "ae_title": system.get("DicomAet"), "port": system.get("DicomPort"),
            "modalities": [{"name": name, "ae_title": m.get("AET"), "host": m.get("Host"), "port": m.get("Port"),
                            "may_store": bool(m.get("AllowStore"))}
                           for name, m in sorted(modalities.items())],
        }

    def lookup(self, uid: str) -> list[dict]:
        return self.request("POST", "/tools/lookup", data=uid).json()

    def orthanc_study_id(self, study_instance_uid: str) -> str:
        for match in self.lookup(study_instance_uid):
            if match.get("Type") == "Study":
                return match["ID"]
        return ""

    # -- read -------------------------------------------------------------------------------
    def study_metadata(self, study_instance_uid: str) -> list[pydicom.Dataset]:
        """All instance headers of a study (no pixel data), WADO-RS metadata."""
        items = self._dicomweb_call(self.dicomweb.retrieve_study_metadata, study_instance_uid)
        return [pydicom.Dataset.from_json(_without_bulk_data(item)) for item in items]

    def retrieve_series(self, study_instance_uid: str, series_instance_uid: str) -> list[pydicom.Dataset]:
        """Full instances (with pixel data) of one series, WADO-RS, in the transfer syntax they were stored in:
        the worker decodes them itself (pydicom + pylibjpeg), so a JPEG 2000 series Orthanc cannot transcode
        is still read. An error answer about this series is OrthancRefused; only an outage is
        ServiceUnavailable."""
        try:
            return self.dicomweb.retrieve_series(study_instance_uid, series_instance_uid, media_types=AS_STORED)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500 or status in (0, 401):
                self.ping()  # raises ServiceUnavailable when Orthanc itself is down
            raise OrthancRefused(f"Orthanc answered HTTP {status} for this series") from exc
        except requests.RequestException as exc:
            raise ServiceUnavailable(SERVICE, f"DICOMweb: {exc.__class__.__name__}") from exc

    def study_instance_uids(self, page: int = 500) -> list[str]:
        """Every StudyInstanceUID Orthanc holds (QIDO-RS, paged)."""
        uids: list[str] = []
        offset = 0
        while True:
            batch = self._dicomweb_call(self.dicomweb.search_for_studies, limit=page, offset=offset,
                                        fields=["StudyInstanceUID"])
            uids.extend(item["0020000D"]["Value"][0] for item in batch if "0020000D" in item)
            if len(batch) < page:
                return uids
            offset += page


def _json_or_empty(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _without_bulk_data(item: dict) -> dict:
    """Headers only: drop elements Orthanc left as BulkDataURI references (pixels, padding)."""
    return {tag: value for tag, value in item.items() if "BulkDataURI" not in value}


def _parse_stow_response(body: dict) -> StowOutcome:
    outcome = StowOutcome()
    for item in body.get("00081199", {}).get("Value", []):  # ReferencedSOPSequence
        uid = item.get("00081155", {}).get("Value", [None])[0]
        if uid:
            outcome.stored.append(uid)
    for item in body.get("00081198", {}).get("Value", []):  # FailedSOPSequence
        uid = item.get("00081155", {}).get("Value", [None])[0]
        reason = item.get("00081197", {}).get("Value", ["?"])[0]
        outcome.failed.append((uid or "?", str(reason)))
    return outcome


def get_client() -> OrthancClient:
    return OrthancClient()
