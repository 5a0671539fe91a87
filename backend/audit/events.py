"""Which successful requests are audited, and as what: the one table to read or extend.

``ROUTES`` maps (url name, HTTP method) to (action, target type, URL kwarg that
names the target). The middleware (``middleware.py``) writes one AuditEvent per
2xx answer to a listed route, with the authenticated user and client address.

Image reads through the DICOMweb gateway are audited as ``view images`` of the
study they touch (from the parsed path, or a root search's StudyInstanceUID),
with the series and instance UIDs in the detail, at most once per credential,
study and series per ``SPINEAGENT_AUDIT_IMAGE_VIEW_SECONDS``: a viewer fetches
every frame, and one row per frame would bury the log. Study-less searches
(QIDO ``studies?...``) reveal only the index the worklist already shows and are
not logged.

Refused requests (401/403) to the API and the gateway are audited as
``refused`` (see ``REFUSED_PREFIXES``), at most once per caller, route and
status per ``REFUSED_WINDOW_SECONDS``.

Not here, because the code that does them records them itself with ``record()``
(richer detail than a URL carries): analytics CSV exports, training dataset
exports, promotions and rejections of training candidates (with the gate's
numbers and the reason: backend/training/promotion.py), users' roles and
permissions changed in the Django admin (backend/accounts/admin.py), and this
app's own audit-log export.
"""

from __future__ import annotations

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
    ("study-report-claim", "POST"): Route(AuditEvent.EDIT, "report", "study_instance_uid"),
    ("study-report-versions", "POST"): Route(AuditEvent.EDIT, "report", "study_instance_uid"),
    ("study-report-addenda", "POST"): Route(AuditEvent.EDIT, "report", "study_instance_uid"),
    ("study-report-sign", "POST"): Route(AuditEvent.SIGN, "report", "study_instance_uid"),
    ("study-upload", "POST"): Route(AuditEvent.EDIT, "study-upload", ""),
    ("dicomweb", "POST"): Route(AuditEvent.EDIT, "study-upload", ""),  # STOW-RS
    ("study-queue-job", "POST"): Route(AuditEvent.EDIT, "inference-job", "study_instance_uid"),
    ("model-version-promote", "POST"): Route(AuditEvent.ADMIN, "model-version", "pk"),
    ("study-result-sr-export", "POST"): Route(AuditEvent.ADMIN, "sr-export", "study_instance_uid"),
    # Label work and what feeds retraining (issue 17).
    ("annotation-submit", "POST"): Route(AuditEvent.EDIT, "annotation-task", "pk"),
    ("annotation-adjudicate", "POST"): Route(AuditEvent.EDIT, "annotation-task", "pk"),
    ("annotation-reveal", "POST"): Route(AuditEvent.EDIT, "annotation-task", "pk"),  # a blind first pass fixed
    ("annotation-import", "POST"): Route(AuditEvent.ADMIN, "label-import", ""),
    ("dataset-list", "POST"): Route(AuditEvent.ADMIN, "dataset", ""),
    ("training-run-list", "POST"): Route(AuditEvent.ADMIN, "training-run", ""),
    # RADPEER peer review (issue 23): opening a case shows a report; the review itself is recorded by
    # backend/qa/services.py with its decision and reason.
    ("qa-case", "GET"): Route(AuditEvent.VIEW, "qa-case", "pk"),
}

IMAGES_ROUTE = "dicomweb"
# Image reads are also decided for nginx, which then serves the bytes itself (dicomweb.views.fast_path_decision).
IMAGES_ROUTES = (IMAGES_ROUTE, "dicomweb-fast-path")
IMAGES_TARGET = "images"
# QIDO searches at the root name their study in the query, by keyword or by tag.
STUDY_QUERY_KEYS = ("StudyInstanceUID", "0020000D")


def image_view(resource, query) -> tuple[str, dict] | None:
    """(study UID, detail) that a gateway read touches, or None for a search that names no study.

    ``resource`` is the gateway's parsed path (``backend.dicomweb.paths.ImagePath``); every study, series
    and instance read is recorded with its UIDs. Study-less searches reveal only the index the worklist
    already shows and are not logged.
    """
    if resource is None:
        return None
    study = resource.study
    if study is None:
        study = next((str(query.get(k)) for k in STUDY_QUERY_KEYS if query.get(k)), None)
    if not study:
        return None
    detail = {"resource": resource.resource, "series": resource.series, "instance": resource.instance}
    return study[:128], {k: v for k, v in detail.items() if v}


# Data endpoints whose refusals are audited (pages redirect to the login instead of refusing).
REFUSED_PREFIXES = ("/api/", "/dicom-web/")
REFUSED_WINDOW_SECONDS = 60


def detail_from_response(url_name: str, data) -> dict:
    """A few facts from the JSON answer worth keeping (which version was written or signed)."""
    if not isinstance(data, dict):
        return {}
    if url_name == "study-report-versions" and isinstance(data.get("version"), dict):
        return {"version": data["version"].get("number")}
    if url_name == "study-report-claim":
        return {"claimed_by": data.get("reader"), "took_over_from": data.get("took_over_from")}
    if url_name == "study-report-sign":
        return {"signed_number": data.get("signed_number")}
    if url_name in ("annotation-submit", "annotation-adjudicate"):
        return {k: data.get(k) for k in ("id", "task_status", "method", "mode", "extraction_seen") if k in data}
    if url_name == "annotation-import":
        return {k: v for k, v in data.items() if isinstance(v, (int, str)) and not isinstance(v, bool)}
    if url_name in ("dataset-list", "training-run-list"):
        return {k: data.get(k) for k in ("id", "name", "version", "sha256", "status", "dataset") if k in data}
    if url_name == "study-upload":
        studies = data.get("studies")
        if isinstance(studies, list):
            return {"studies": [s.get("study_instance_uid") for s in studies if isinstance(s, dict)][:50]}
    return {}
