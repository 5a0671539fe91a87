"""Which successful requests are audited, and as what: the one table to read or extend.

``ROUTES`` maps (url name, HTTP method) to (action, target type, URL kwarg that
names the target). The middleware (``middleware.py``) writes one AuditEvent per
2xx answer to a listed route, with the authenticated user and client address.

Image reads through the DICOMweb gateway are audited as ``view images`` of the
study in the path (``studies/<uid>/...``), at most once per credential and study
per ``SPINEAGENT_AUDIT_IMAGE_VIEW_SECONDS``: a viewer fetches every frame, and
one row per frame would bury the log. Study-less searches (QIDO ``studies?...``)
reveal only the index the worklist already shows and are not logged.

Not here, because the code that does them records them itself with ``record()``
(richer detail than a URL carries): analytics CSV exports, training dataset
exports, and this app's own audit-log export.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .models import AuditEvent


class Route(NamedTuple):
    action: str
    target_type: str
    target_kwarg: str


ROUTES: dict[tuple[str, str], Route] = {
    ("study-detail", "GET"): Route(AuditEvent.VIEW, "study", "study_instance_uid"),
    ("study-result", "GET"): Route(AuditEvent.VIEW, "result", "study_instance_uid"),
    ("study-report", "GET"): Route(AuditEvent.VIEW, "report", "study_instance_uid"),
    ("study-report-diff", "GET"): Route(AuditEvent.VIEW, "report", "study_instance_uid"),
    ("study-report-versions", "POST"): Route(AuditEvent.EDIT, "report", "study_instance_uid"),
    ("study-report-addenda", "POST"): Route(AuditEvent.EDIT, "report", "study_instance_uid"),
    ("study-report-sign", "POST"): Route(AuditEvent.SIGN, "report", "study_instance_uid"),
    ("study-upload", "POST"): Route(AuditEvent.EDIT, "study-upload", ""),
    ("study-queue-job", "POST"): Route(AuditEvent.EDIT, "inference-job", "study_instance_uid"),
    ("model-version-promote", "POST"): Route(AuditEvent.ADMIN, "model-version", "pk"),
}

IMAGES_ROUTE = "dicomweb"
IMAGES_TARGET = "images"
# studies/<StudyInstanceUID> and anything below it (series, metadata, frames, rendered).
STUDY_IN_PATH = re.compile(r"^studies/(?P<uid>[0-9.]{1,64})(?:/|$)")


def study_of_image_path(path: str) -> str | None:
    match = STUDY_IN_PATH.match(path or "")
    return match.group("uid") if match else None


def detail_from_response(url_name: str, data) -> dict:
    """A few facts from the JSON answer worth keeping (which version was written or signed)."""
    if not isinstance(data, dict):
        return {}
    if url_name == "study-report-versions" and isinstance(data.get("version"), dict):
        return {"version": data["version"].get("number")}
    if url_name == "study-report-sign":
        return {"signed_number": data.get("signed_number")}
    if url_name == "study-upload":
        studies = data.get("studies")
        if isinstance(studies, list):
            return {"studies": [s.get("study_instance_uid") for s in studies if isinstance(s, dict)][:50]}
    return {}
