"""The admin's training screens: dataset versions, retraining runs, candidate vs active and the decision.

Server-rendered like the analytics and annotation pages. Login is required (anonymous users are redirected
to /login) and the permissions are checked here on the server (403 otherwise). The pages change nothing
themselves: their forms post JSON to the training API with the CSRF token (assets/training.js), where input
is validated and every change audited; the run page polls the run's status endpoint for progress and log.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from backend.annotations.models import LabelTask, VerifiedLabels
from backend.errors import Conflict
from backend.inference.jobs import active_model_version
from backend.inference.models import ModelVersion
from backend.viewer.views import _file, _send

from . import comparison, datasets, promotion, runs
from .models import DatasetVersion, TrainingRun

ASSET_DIR = Path(__file__).resolve().parent / "assets"
RECENT = 25
training_page = permission_required(("training.manage_datasets", "training.run_training"), raise_exception=True)


def _runs():
    return TrainingRun.objects.select_related("dataset", "base_model", "candidate", "started_by",
                                              "decided_by").defer("dataset__items")


def _dataset_row(ds: DatasetVersion) -> dict:
    s = datasets.summary(ds)
    counts = ds.counts.get("splits") or {}  # JSONB keeps no key order: the splits in their own order
    return {**s, "splits": [{"split": k, **counts.get(k, {"items": 0, "patients": 0})} for k in datasets.SPLITS]}


@require_GET
@login_required
@training_page
def home(request):
    recent = DatasetVersion.objects.select_related("created_by").defer("items")[:RECENT]
    return render(request, "training/home.html", {
        "verified": VerifiedLabels.objects.count(),
        "sources": LabelTask.SOURCES, "methods": VerifiedLabels.METHODS, "ratios": datasets.DEFAULT_RATIOS,
        "datasets": [_dataset_row(ds) for ds in recent],
        "runs": [runs.payload(r) for r in _runs()[:RECENT]],
        "active": active_model_version(),
        "bases": ModelVersion.objects.exclude(path__startswith="builtin:").order_by("-created_at")[:RECENT],
        "options": runs.parse_options({}), "chains": runs.CHAINS,
    })


@require_GET
@login_required
@training_page
def dataset_page(request, pk: int):
    ds = get_object_or_404(DatasetVersion.objects.select_related("created_by").defer("items"), pk=pk)
    splits = list(datasets.SPLITS)
    conditions = [{"condition": c, "cells": [counts[s] for s in splits]}
                  for c, counts in sorted((ds.counts.get("conditions") or {}).items())]
    return render(request, "training/dataset.html", {
        "ds": _dataset_row(ds), "split_names": splits, "conditions": conditions,
        "runs": [runs.payload(r) for r in _runs().filter(dataset=ds)[:RECENT]],
        "options": runs.parse_options({}), "chains": runs.CHAINS, "active": active_model_version()})


@require_GET
@login_required
@training_page
def run_page(request, pk: int):
    run = get_object_or_404(_runs(), pk=pk)
    context = {"run": runs.payload(run), "cmp": None, "gate": None, "cmp_error": None,
               "can_decide": request.user.has_perm("inference.manage_model_versions"),
               "config": {"status_url": f"/api/training/runs/{run.pk}/",
                          "promote_url": f"/api/training/runs/{run.pk}/promote",
                          "reject_url": f"/api/training/runs/{run.pk}/reject"}}
    if run.decision and run.gate.get("comparison"):  # as it stood when the admin decided
        context.update(cmp=run.gate["comparison"], gate=run.gate, gate_at_decision=True)
    elif run.status == TrainingRun.SUCCEEDED:
        try:
            cmp = comparison.compare(run)
            context.update(cmp=cmp, gate=promotion.gate(cmp))
        except Conflict as exc:
            context["cmp_error"] = exc.detail
    context["undecided"] = (run.status == TrainingRun.SUCCEEDED and not run.decision and run.candidate is not None
                            and run.candidate.state == ModelVersion.CANDIDATE)
    return render(request, "training/run.html", context)


@require_GET
def page_asset(request, path: str):
    if file := _file(ASSET_DIR, path):
        return _send(file)
    raise Http404(path)
