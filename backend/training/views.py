"""Training API: dataset versions (manage_datasets) and training runs (run_training). Thin views:
rules live in datasets.py, runs.py and comparison.py; errors are JSON 400/404/409."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_response
from backend.audit.log import record

from . import comparison, datasets, promotion, runs
from .errors import Invalid, TrainingError
from .models import DatasetVersion, TrainingRun

CanManageDatasets = require_perms("training.manage_datasets")
CanRunTraining = require_perms("training.run_training")
CanDecide = require_perms("training.run_training", "inference.manage_model_versions")

SNAPSHOT_BODY = inline_serializer("DatasetSnapshot", {
    "name": serializers.CharField(help_text="letters, digits, '.', '_', '-'; the version number is automatic"),
    "description": serializers.CharField(required=False),
    "seed": serializers.IntegerField(required=False, help_text="split seed (default 0)"),
    "ratios": serializers.DictField(child=serializers.FloatField(min_value=0), required=False,
                                    help_text='{"train": 0.7, "val": 0.15, "test": 0.15} (default)'),
    "filters": serializers.DictField(required=False,
                                     help_text="source (imported|signed), method, decided_from, decided_to"),
})
RUN_BODY = inline_serializer("TrainingRunStart", {
    "dataset": serializers.IntegerField(help_text="dataset version id"),
    "base_model": serializers.IntegerField(required=False, help_text="model version id (default: the active one)"),
    "options": serializers.DictField(required=False, help_text=(
        "chain (probes | heads | align+heads; default probes), steps, lr, weight_decay, seed, n_boot, "
        "seg_steps, align_steps, align_lr")),
})
PROMOTE_BODY = inline_serializer("TrainingRunPromote", {
    "reason": serializers.CharField(required=False, help_text="required only to override a failed gate (audited)"),
})
REJECT_BODY = inline_serializer("TrainingRunReject", {"reason": serializers.CharField(help_text="why (audited)")})
PAGE_PARAMS = [OpenApiParameter("limit", int, required=False, description="page size (default 50, at most 500)"),
               OpenApiParameter("offset", int, required=False)]
NAME_PARAM = OpenApiParameter("name", str, required=False, description="only versions of this dataset name")
STATUS_PARAM = OpenApiParameter("status", str, required=False, enum=[s for s, _ in TrainingRun.STATUSES])


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise Invalid("the request body must be a JSON object")
    return request.data


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def _page(view, request, qs, row) -> Response:
    paginator = Pagination()
    page = paginator.paginate_queryset(qs, request, view=view)
    return paginator.get_paginated_response([row(x) for x in page])


class DatasetList(APIView):
    """GET dataset versions (newest first per name); POST a new snapshot of the verified labels."""

    permission_classes = [CanManageDatasets]

    @extend_schema(operation_id="training_datasets_list", parameters=[NAME_PARAM, *PAGE_PARAMS],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        qs = DatasetVersion.objects.select_related("created_by").defer("items")
        if name := request.query_params.get("name"):
            try:
                qs = qs.filter(name=datasets.parse_name(name))
            except TrainingError as exc:
                return error_response(exc)
        return _page(self, request, qs, datasets.summary)

    @extend_schema(operation_id="training_datasets_create", request=SNAPSHOT_BODY,
                   responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        try:
            body = _body(request)
            ds = datasets.snapshot(body.get("name"), user=request.user, description=body.get("description", ""),
                                   seed=body.get("seed"), ratios=body.get("ratios"), filters=body.get("filters"))
        except TrainingError as exc:
            return error_response(exc)
        return Response(datasets.summary(ds), status=status.HTTP_201_CREATED)


class DatasetDetail(APIView):
    """GET one dataset version (counts per split and condition; items via the exports). It never changes."""

    permission_classes = [CanManageDatasets]

    @extend_schema(operation_id="training_dataset", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk):
        return Response(datasets.summary(get_object_or_404(DatasetVersion.objects.defer("items"), pk=pk)))


def _export(request, pk, fmt: str, chunks, content_type: str) -> StreamingHttpResponse:
    ds = get_object_or_404(DatasetVersion, pk=pk)
    record("export", "dataset", ds.pk, request=request,
           detail={"format": fmt, "name": ds.name, "version": ds.version, "sha256": ds.sha256,
                   "items": len(ds.items)})
    response = StreamingHttpResponse(chunks(ds), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="dataset-{ds.name}-v{ds.version}.{fmt}"'
    response["X-Dataset-SHA256"] = ds.sha256
    return response


class DatasetExportJSON(APIView):
    """GET the dataset version as JSON {dataset, items} (streamed; audited)."""

    permission_classes = [CanManageDatasets]

    @extend_schema(operation_id="training_dataset_export_json", responses={(200, "application/json"): OpenApiTypes.OBJECT})
    def get(self, request, pk):
        return _export(request, pk, "json", datasets.json_chunks, "application/json")


class DatasetExportCSV(APIView):
    """GET the dataset version as CSV, one row per item, one column per condition (streamed; audited)."""

    permission_classes = [CanManageDatasets]

    @extend_schema(operation_id="training_dataset_export_csv",
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")})
    def get(self, request, pk):
        return _export(request, pk, "csv", datasets.csv_chunks, "text/csv; charset=utf-8")


class RunList(APIView):
    """GET training runs with status and progress; POST {dataset, base_model?, options?} to start one."""

    permission_classes = [CanRunTraining]

    @extend_schema(operation_id="training_runs_list", parameters=[STATUS_PARAM, *PAGE_PARAMS],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        qs = TrainingRun.objects.select_related("dataset", "base_model", "candidate", "started_by", "decided_by").defer(
            "dataset__items")
        if state := request.query_params.get("status"):
            if state not in dict(TrainingRun.STATUSES):
                return error_response(Invalid(f"status must be one of {', '.join(dict(TrainingRun.STATUSES))}",
                                      field="status"))
            qs = qs.filter(status=state)
        return _page(self, request, qs, runs.payload)

    @extend_schema(operation_id="training_runs_create", request=RUN_BODY, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        try:
            body = _body(request)
            run = runs.start(body.get("dataset"), request.user, body.get("base_model"), body.get("options"))
        except TrainingError as exc:
            return error_response(exc)
        return Response(runs.payload(run), status=status.HTTP_201_CREATED)


class RunDetail(APIView):
    """GET one run: status, stage, progress, error, metrics (candidate and base on the test split)."""

    permission_classes = [CanRunTraining]

    @extend_schema(operation_id="training_run", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk):
        run = get_object_or_404(TrainingRun.objects.select_related(
            "dataset", "base_model", "candidate", "started_by", "decided_by").defer("dataset__items"), pk=pk)
        return Response(runs.payload(run))


class RunComparison(APIView):
    """GET candidate vs active version, per condition, on the run's test split (409 until it succeeded)."""

    permission_classes = [CanRunTraining]

    @extend_schema(operation_id="training_run_comparison", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk):
        run = get_object_or_404(TrainingRun.objects.select_related("dataset", "base_model", "candidate"), pk=pk)
        try:
            return Response(comparison.compare(run))
        except TrainingError as exc:
            return error_response(exc)


class RunGate(APIView):
    """GET the comparison plus the promotion gate's verdict (promotion.py), 409 until the run succeeded."""

    permission_classes = [CanRunTraining]

    @extend_schema(operation_id="training_run_gate", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk):
        run = get_object_or_404(TrainingRun.objects.select_related("dataset", "base_model", "candidate"), pk=pk)
        try:
            cmp = comparison.compare(run)
        except TrainingError as exc:
            return error_response(exc)
        return Response({"comparison": cmp, "gate": promotion.gate(cmp)})


class RunPromote(APIView):
    """POST {reason?}: promote the candidate if the gate passes; a failed gate needs a written reason (409
    without one). Audited by the service, with the gate's numbers."""

    permission_classes = [CanDecide]

    @extend_schema(operation_id="training_run_promote", request=PROMOTE_BODY, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk):
        get_object_or_404(TrainingRun, pk=pk)
        try:
            run = promotion.promote(pk, request.user, _body(request).get("reason"), request=request)
        except TrainingError as exc:
            return error_response(exc)
        return Response(runs.payload(run))


class RunReject(APIView):
    """POST {reason}: reject the candidate (retired; audited with the reason)."""

    permission_classes = [CanDecide]

    @extend_schema(operation_id="training_run_reject", request=REJECT_BODY, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk):
        get_object_or_404(TrainingRun, pk=pk)
        try:
            run = promotion.reject(pk, request.user, _body(request).get("reason"), request=request)
        except TrainingError as exc:
            return error_response(exc)
        return Response(runs.payload(run))
