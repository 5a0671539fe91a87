"""The annotator's HTML pages: the queue and one task. Server-rendered; the task page submits via the API.

Login is required (anonymous users are redirected to /login) and the permission is checked here on
the server, not only by hiding links: a logged-in user without ``verify_labels`` gets 403. What the
page shows of the extraction follows ``payloads.Seen`` (blind mode withholds it on the server). A task
the caller has annotated reopens read-only; one they may not open is a plain 404 page, never the
debug page.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from backend.accounts.roles import role_of
from backend.viewer.views import _file, _send
from spine_labels import STUDY_LEVEL
from spinefm.conditions import LABEL_NAMES, LabelValue

from . import highlight, queue
from .models import Annotation, LabelTask
from .payloads import Seen, task_detail, task_row
from .priority import preferred
from .serializers import QueueQuery

ASSET_DIR = Path(__file__).resolve().parent / "assets"
PAGE_SIZE = 50
RECENT = 20  # the caller's latest submissions, listed on the queue page to reopen read-only
ORDER_NAMES = {"priority": "priority (both signals)", "uncertainty": "model uncertainty",
               "disagreement": "labeler disagreement", "oldest": "oldest first"}

verifier_page = permission_required("annotations.verify_labels", raise_exception=True)


def _order(request) -> str:
    """The page's ?order=, read as the API reads it (QueueQuery); an unknown one falls back to the default."""
    query = QueueQuery(data=request.GET)
    return query.validated_data["order"] if query.is_valid() else queue.DEFAULT_ORDER


@require_GET
@login_required
@verifier_page
def queue_page(request):
    order = _order(request)
    page = Paginator(queue.for_annotator(request.user, order), PAGE_SIZE).get_page(request.GET.get("page"))
    adjudication = None
    if request.user.has_perm("annotations.adjudicate_labels"):
        adjudication = [task_row(t) for t in queue.for_adjudication("oldest")[:PAGE_SIZE]]
    mine = (Annotation.objects.filter(annotator=request.user).select_related("task")
            .order_by("-submitted_at", "-pk")[:RECENT])
    return render(request, "annotations/queue.html", {
        "role": role_of(request.user) or "none", "order": order, "orders": ORDER_NAMES,
        "page": page, "rows": [task_row(t) for t in page], "adjudication": adjudication,
        "submitted": mine, "finished": request.GET.get("finished") == "1"})


@require_GET
@login_required
@verifier_page
def next_task(request):
    """'Submit and next': the first task of the caller's queue (or of adjudication), else the queue page."""
    order = _order(request)
    if request.GET.get("queue") == "adjudication" and request.user.has_perm("annotations.adjudicate_labels"):
        task = queue.for_adjudication("oldest").first()
    else:
        task = queue.for_annotator(request.user, order).first()
    if task is None:
        return redirect(f"{reverse('annotate-queue')}?{urlencode({'order': order, 'finished': '1'})}")
    return redirect(f"{reverse('annotate-task', args=[task.pk])}?{urlencode({'order': order})}")


def _missing(request, pk: int):
    """A task the caller may not open (or none): a plain page with the way back, never Django's debug 404."""
    return render(request, "annotations/missing.html", {"role": role_of(request.user) or "none", "pk": pk},
                  status=404)


def _evidence(label: dict, level: str) -> list[dict]:
    """The mentions to show next to one level row: those naming the level; on the "study" row, all of them."""
    out = []
    for e in label.get("evidence") or []:
        named = e.get("level") or []
        if level == STUDY_LEVEL or level in named:
            out.append({"levels": " ".join(named) or STUDY_LEVEL, "value": LABEL_NAMES.get(e.get("value"), ""),
                        "text": (e.get("sentence") or e.get("text") or "").strip(), "cue": e.get("cue")})
    return out


def _level_evidence(detail: dict, best, seen: Seen) -> dict | None:
    """{condition: {level: evidence}} for the levels the extraction found (an annotator may add them)."""
    if seen.hidden or best is None:
        return None
    by_condition = best.labels.get("labels") or {}
    return {key: {lv: _evidence(by_condition.get(key) or {}, lv) for lv in at}
            for key, at in (detail["suggested_levels"] or {}).items()}


def _level_suggestion(suggested_levels: dict, suggested: dict, key: str, level: str):
    """What the labeler says at this level: its value there; on "study" the condition's value; else absent."""
    if key not in suggested:
        return None
    at = (suggested_levels.get(key) or {})
    if level in at:
        return at[level]
    return suggested[key] if level == STUDY_LEVEL else LabelValue.ABSENT


def _rows(detail: dict, best, seen: Seen) -> list[dict]:
    """One row per condition x level (the levels of ``preset_levels``: "study" when none), in registry order.

    The first row of a condition carries its name, flags, model call and radios named by the condition key;
    further levels' radios are named ``key@level`` (one radio group per row).
    """
    by_condition = {} if seen.hidden or best is None else (best.labels.get("labels") or {})
    split = set(detail.get("disagreements") or [])
    suggested, suggested_levels = detail["suggested"] or {}, detail["suggested_levels"] or {}
    start_levels = detail["preset_levels"] or {}
    first_pass = detail["first_pass_levels"] or {}
    rows = []
    for c in detail["conditions"]:
        key = c["key"]
        label = by_condition.get(key) or {}
        at = start_levels.get(key) or {STUDY_LEVEL: (detail["preset"] or {}).get(key)}
        for i, level in enumerate(at):
            value = at[level]
            hint = _level_suggestion(suggested_levels, suggested, key, level)
            mine = first_pass.get(key, {}).get(level, LabelValue.ABSENT) if first_pass else None
            rows.append({
                **c, "level": level, "first": i == 0, "input_name": key if i == 0 else f"{key}@{level}",
                "value": value, "suggested": hint, "suggested_name": LABEL_NAMES.get(hint, ""),
                "first_pass": mine, "first_pass_name": LABEL_NAMES.get(mine, ""),
                "flags": label.get("flags") or [] if i == 0 else [],
                "evidence": _evidence(label, level),
                "model": ((detail["model"] or {}).get("conditions", {}).get(key)
                          if detail["model"] and i == 0 else None),
                "disagree": key in split,
                "annotations": [{"annotator": a["annotator"], "value": v, "name": LABEL_NAMES.get(v, "?")}
                                for a in detail.get("annotations_detail", [])
                                for v in [a["level_labels"].get(key, {}).get(level, LabelValue.ABSENT)]]})
    return rows


@require_GET
@login_required
@verifier_page
def task_page(request, pk: int):
    """One task: to annotate (blind or assisted), to adjudicate, or read-only once the caller is done with it."""
    task = LabelTask.objects.filter(pk=pk).first()
    if task is None:
        return _missing(request, pk)
    seen = Seen(task, request.user)
    if not (queue.in_queue_of(task, request.user) or seen.mine is not None):
        return _missing(request, pk)
    detail = task_detail(task, request.user, seen)
    best = None if seen.hidden else preferred(list(task.extractions.all()))
    spans = highlight.spans_of(best.labels) if best else []
    if seen.adjudicating:
        state = "adjudicate"
    elif seen.annotating:
        state = "blind" if seen.hidden else ("revealed" if seen.first_pass else "assisted")
    else:
        state = "readonly"
    order = _order(request)
    submit_url = f"/api/annotations/tasks/{task.pk}/" + ("adjudicate" if state == "adjudicate" else "annotations")
    next_query = {"order": order, **({"queue": "adjudication"} if state == "adjudicate" else {})}
    verified = getattr(task, "verified", None)
    return render(request, "annotations/task.html", {
        "role": role_of(request.user) or "none", "task": detail, "segments": highlight.segments(task.text, spans),
        "rows": _rows(detail, best, seen), "extraction": best, "state": state, "mine": seen.mine,
        "adjudicating": state == "adjudicate", "editable": state != "readonly",
        "verified": verified if state == "readonly" else None,
        "n_disagree": len(detail.get("disagreements") or []),
        "config": {"state": state, "mode": detail["mode"], "submit_url": submit_url,
                   "reveal_url": f"/api/annotations/tasks/{task.pk}/reveal",
                   "queue_url": f"{reverse('annotate-queue')}?{urlencode({'order': order})}",
                   "next_url": f"{reverse('annotate-next')}?{urlencode(next_query)}",
                   "revision": detail.get("revision"), "known_levels": detail["known_levels"],
                   "level_free": [c["key"] for c in detail["conditions"] if not c["has_levels"]],
                   # for a level added on the page (all null while blind mode withholds the extraction)
                   "suggested": detail["suggested"], "suggested_levels": detail["suggested_levels"],
                   "level_evidence": _level_evidence(detail, best, seen),
                   "first_pass_levels": detail["first_pass_levels"],
                   "annotator_levels": [{"annotator": a["annotator"], "level_labels": a["level_labels"]}
                                        for a in detail.get("annotations_detail", [])] if state == "adjudicate"
                   else []}})


@require_GET
def page_asset(request, path: str):
    if file := _file(ASSET_DIR, path):
        return _send(file)
    raise Http404(path)
