"""Serve the prebuilt OHIF viewer (scripts/build_viewer.sh), its generated config, our extension, and the pages.

Everything is same-origin with /dicom-web/ and /api/: the viewer reads images only through our
authenticated gateway with the session cookie, and the panel calls the report API the same way.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils._os import safe_join
from django.views.decorators.http import require_GET

from backend.accounts.models import NoticeAcknowledgement, has_acknowledged
from backend.accounts.roles import role_of

from backend.reports.labels import WORKLIST_STATUS
from backend.studies.models import Study
from backend.reports.worklist import STATUSES

from .config import app_config_js

OHIF_DIR = Path(settings.SPINEAGENT_OHIF_DIR)
VIEWER_DIR = OHIF_DIR / "viewer"  # OHIF's dist, re-based to /viewer/
EXTENSION_DIRS = (settings.BASE_DIR / "ohif-extension" / "src", OHIF_DIR / "ext")  # our modules, then vendor.js
ASSET_DIR = Path(__file__).resolve().parent / "assets"
HASHED = re.compile(r"\.[0-9a-f]{16}\.(js|wasm)$|^[0-9a-f]{16}\.wasm$")  # webpack content-hashed names

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


def can_review(user) -> bool:
    """Who may open the report panel. The report API checks the same permission on every call."""
    return user.has_perm("reports.view_report")


def _file(root: Path, path: str) -> Path | None:
    try:
        candidate = Path(safe_join(root, path))
    except (SuspiciousFileOperation, ValueError):
        return None
    return candidate if candidate.is_file() else None


def _send(file: Path, immutable: bool = False) -> FileResponse:
    response = FileResponse(open(file, "rb"), content_type=mimetypes.guess_type(file.name)[0]
                            or "application/octet-stream")
    response["Cache-Control"] = "public, max-age=31536000, immutable" if immutable else "no-cache"
    return response


@require_GET
def viewer(request, path: str | None = None):
    """OHIF's files; any other path is a client-side route (deep link) and gets index.html."""
    if not VIEWER_DIR.is_dir():
        return HttpResponse("The viewer is not built: run scripts/build_viewer.sh", status=503,
                            content_type="text/plain")
    if path and path != "index.html" and (file := _file(VIEWER_DIR, path)):
        return _send(file, immutable=bool(HASHED.search(file.name)))
    if not path or path == "index.html":
        return redirect("worklist-page")  # OHIF's study list is off (config.py): ours is the list
    return _index(request)


@login_required
def _index(request):
    """OHIF's index.html; a link to studies our index does not hold gets our own page instead of OHIF's bare
    "not available" screen, with the way back to the worklist."""
    wanted = [u for u in (request.GET.get("StudyInstanceUIDs") or "").split(",") if u]
    if wanted:
        known = set(Study.objects.filter(study_instance_uid__in=wanted).values_list("study_instance_uid", flat=True))
        if missing := [u for u in wanted if u not in known]:
            return render(request, "viewer/study_not_found.html", {"missing": missing}, status=404)
    return _send(VIEWER_DIR / "index.html")


@require_GET
def app_config(request):
    """window.config for OHIF: our gateway as the only data source, our extension and mode, the site's
    viewer settings; per user (the notice), so never cached."""
    policy = settings.SPINEAGENT_VIEWER_NOTICE
    acknowledged = policy == "once-per-user" and has_acknowledged(request.user, NoticeAcknowledgement.INVESTIGATIONAL_USE)
    body = app_config_js(dicomweb_root=request.build_absolute_uri("/dicom-web").rstrip("/"),
                         notice_acknowledged=acknowledged, notice=policy, layout=settings.SPINEAGENT_VIEWER_LAYOUT)
    return HttpResponse(body, content_type="text/javascript", headers={"Cache-Control": "private, no-store"})


@require_GET
def extension_file(request, path: str):
    for root in EXTENSION_DIRS:
        if file := _file(root, path):
            return _send(file)
    raise Http404(path)


@require_GET
def page_asset(request, path: str):
    if file := _file(ASSET_DIR, path):
        return _send(file)
    raise Http404(path)


@login_required
def worklist(request):
    context = {
        "role": role_of(request.user) or "none",
        "can_review": can_review(request.user),
        "statuses": [(s, WORKLIST_STATUS[s]) for s in STATUSES],
        "me": {"username": request.user.get_username(), "role": role_of(request.user),
               "can_review": can_review(request.user), "can_worklist": request.user.has_perm("reports.view_worklist"),
               "can_retry": request.user.has_perm("inference.queue_job")},
    }
    return render(request, "viewer/worklist.html", context)
