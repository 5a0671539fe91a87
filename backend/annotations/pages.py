"""The annotator's HTML pages: the queue and one task. Server-rendered; the task page submits via the API.

Login is required (anonymous users are redirected to /login) and the permission is checked here on
the server, not only by hiding links: a logged-in user without ``verify_labels`` gets 403.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from backend.accounts.roles import role_of
from backend.viewer.views import _file, _send

from . import highlight, queue
from .models import LabelTask
from .payloads import task_detail, task_row
from .priority import preferred

ASSET_DIR = Path(__file__).resolve().parent / "assets"
PAGE_SIZE = 50
ORDER_NAMES = {"priority": "priority (both signals)", "uncertainty": "model uncertainty",
               "disagreement": "labeler disagreement", "oldest": "oldest first"}

verifier_page = permission_required("annotations.verify_labels", raise_exception=True)


@require_GET
@login_required
@verifier_page
def queue_page(request):
    order = request.GET.get("order") or queue.DEFAULT_ORDER
    if order not in queue.ORDERS:
        order = queue.DEFAULT_ORDER
    page = Paginator(queue.for_annotator(request.user, order), PAGE_SIZE).get_page(request.GET.get("page"))
    adjudication = None
    if request.user.has_perm("annotations.adjudicate_labels"):
        adjudication = [task_row(t) for t in queue.for_adjudication("oldest")[:PAGE_SIZE]]
    return render(request, "annotations/queue.html", {
        "role": role_of(request.user) or "none", "order": order, "orders": ORDER_NAMES,
        "page": page, "rows": [task_row(t) for t in page], "adjudication": adjudication})


@require_GET
@login_required
@verifier_page
def task_page(request, pk: int):
    task = get_object_or_404(LabelTask, pk=pk)
    if not queue.in_queue_of(task, request.user):
        raise Http404("no such task in your queue")
    detail = task_detail(task, request.user)
    best = preferred(list(task.extractions.all()))
    spans = highlight.spans_of(best.labels) if best else []
    adjudicating = task.status == LabelTask.ADJUDICATION and request.user.has_perm("annotations.adjudicate_labels")
    by_condition = (best.labels.get("labels") or {}) if best else {}
    rows = []
    for c in detail["conditions"]:
        label = by_condition.get(c["key"]) or {}
        rows.append({**c, "value": detail["preset"][c["key"]], "flags": label.get("flags") or [],
                     "evidence": [e.get("text", "") + (f' ("{e["cue"]}")' if e.get("cue") else "")
                                  for e in label.get("evidence") or []],
                     "model": (detail["model"] or {}).get("conditions", {}).get(c["key"]) if detail["model"] else None,
                     "annotations": [{"annotator": a["annotator"], "value": a["labels"].get(c["key"])}
                                     for a in detail.get("annotations_detail", [])]})
    submit_url = f"/api/annotations/tasks/{task.pk}/" + ("adjudicate" if adjudicating else "annotations")
    return render(request, "annotations/task.html", {
        "role": role_of(request.user) or "none", "task": detail, "segments": highlight.segments(task.text, spans),
        "rows": rows, "extraction": best, "adjudicating": adjudicating,
        "open_for_me": task.status == LabelTask.OPEN,
        "config": {"submit_url": submit_url, "queue_url": "/annotate/", "adjudicating": adjudicating}})


@require_GET
def page_asset(request, path: str):
    if file := _file(ASSET_DIR, path):
        return _send(file)
    raise Http404(path)
