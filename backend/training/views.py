"""Training API: dataset versions (manage_datasets) and training runs (run_training). Thin views:
bodies and query parameters are checked by serializers.py, the rules live in datasets.py, runs.py,
comparison.py and promotion.py, whose refusals (backend.errors) the API's exception handler answers."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_responses
from backend.audit.log import record
from backend.pagination import Pagination, paginated
from backend.serializer_fields import validated

from . import comparison, datasets, promotion, runs
from .models import DatasetVersion, TrainingRun
from .serializers import (DatasetExportSerializer, DatasetFilter, DatasetSnapshotRequest, DatasetVersionSerializer,
                          DecisionRequest, RunComparisonSerializer, RunFilter, RunGateSerializer, RunStartRequest,
                          TrainingRunSerializer)

CanManageDatasets = require_perms("training.manage_datasets")
CanRunTraining = require_perms("training.run_training")
CanDecide = require_perms("training.run_training", "inference.manage_model_versions")

REFUSED = error_responses(401, 403)


class DatasetList(APIView):
    """GET dataset versions (newest first per name); POST a new snapshot of the verified labels."""

    permission_classes = [CanManageDatasets]
    pagination_class = Pagination

    @extend_schema(operation_id="training_datasets_list", parameters=[DatasetFilter],
                   responses={200: DatasetVersionSerializer(many=True), **error_responses(400), **REFUSED})
    def get(self, request):
        query = validated(DatasetFilter, request.query_params)
        qs = DatasetVersion.objects.select_related("created_by").defer("items")
        if "name" in query:
            qs = qs.filter(name=query["name"])
        return paginated(self, request, qs, datasets.summary)

    @extend_schema(operation_id="training_datasets_create", request=DatasetSnapshotRequest,
                   responses={201: DatasetVersionSerializer, **error_responses(400, 409), **REFUSED})
    def post(self, request):
        body = validated(DatasetSnapshotRequest, request.data)
        ds = datasets.snapshot(body["name"], user=request.user, description=body.get("description", ""),
                               seed=body.get("seed"), ratios=body.get("ratios"), filters=body.get("filters"))
        return Response(datasets.summary(ds), status=status.HTTP_201_CREATED)


class DatasetDetail(APIView):
    """GET one dataset version (counts per split and condition; items via the exports). It never changes."""

    permission_classes = [CanManageDatasets]

    @extend_schema(operation_id="training_dataset", responses={200: DatasetVersionSerializer, **error_responses(404),
                                                               **REFUSED})
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

    @extend_schema(operation_id="training_dataset_export_json",
                   responses={(200, "application/json"): DatasetExportSerializer, **error_responses(404), **REFUSED})
    def get(self, request, pk):
        return _export(request, pk, "json", datasets.json_chunks, "application/json")


class DatasetExportCSV(APIView):
    """GET the dataset version as CSV, one row per item, one column per condition (streamed; audited)."""

    permission_classes = [CanManageDatasets]

    @extend_schema(operation_id="training_dataset_export_csv",
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV"),
                              **error_responses(404), **REFUSED})
    def get(self, request, pk):
        return _export(request, pk, "csv", datasets.csv_chunks, "text/csv; charset=utf-8")


class RunList(APIView):
    """GET training runs with status and progress; POST {dataset, base_model?, options?} to start one."""

    permission_classes = [CanRunTraining]
    pagination_class = Pagination

    @extend_schema(operation_id="training_runs_list", parameters=[RunFilter],
                   responses={200: TrainingRunSerializer(many=True), **error_responses(400), **REFUSED})
    def get(self, request):
        query = validated(RunFilter, request.query_params)
        qs = TrainingRun.objects.select_related("dataset", "base_model", "candidate", "started_by", "decided_by").defer(
            "dataset__items")
        if "status" in query:
            qs = qs.filter(status=query["status"])
        return paginated(self, request, qs, runs.payload)

    @extend_schema(operation_id="training_runs_create", request=RunStartRequest,
                   responses={201: TrainingRunSerializer, **error_responses(400, 409, 503), **REFUSED})
    def post(self, request):
        body = validated(RunStartRequest, request.data)
        run = runs.start(body["dataset"], request.user, body.get("base_model"), body.get("options"))
        return Response(runs.payload(run), status=status.HTTP_201_CREATED)


class RunDetail(APIView):
    """GET one run: status, stage, progress, error, metrics (candidate and base on the test split)."""

    permission_classes = [CanRunTraining]

    @extend_schema(operation_id="training_run", responses={200: TrainingRunSerializer, **error_responses(404),
                                                           **REFUSED})
    def get(self, request, pk):
        run = get_object_or_404(TrainingRun.objects.select_related(
            "dataset", "base_model", "candidate", "started_by", "decided_by").defer("dataset__items"), pk=pk)
        return Response(runs.payload(run))


class RunComparison(APIView):
    """GET candidate vs active version, per condition, on the run's test split (409 until it succeeded)."""

    permission_classes = [CanRunTraining]

    @extend_schema(operation_id="training_run_comparison",
                   responses={200: RunComparisonSerializer, **error_responses(404, 409), **REFUSED})
    def get(self, request, pk):
        run = get_object_or_404(TrainingRun.objects.select_related("dataset", "base_model", "candidate"), pk=pk)
        return Response(comparison.compare(run))


class RunGate(APIView):
    """GET the comparison plus the promotion gate's verdict (promotion.py), 409 until the run succeeded."""

    permission_classes = [CanRunTraining]

    @extend_schema(operation_id="training_run_gate",
                   responses={200: RunGateSerializer, **error_responses(404, 409), **REFUSED})
    def get(self, request, pk):
        run = get_object_or_404(TrainingRun.objects.select_related("dataset", "base_model", "candidate"), pk=pk)
        cmp = comparison.compare(run)
        return Response({"comparison": cmp, "gate": promotion.gate(cmp)})


class RunPromote(APIView):
    """POST {reason?}: promote the candidate if the gate passes; a failed gate needs a written reason (409
    without one). Audited by the service, with the gate's numbers."""

    permission_classes = [CanDecide]

    @extend_schema(operation_id="training_run_promote", request=DecisionRequest,
                   responses={200: TrainingRunSerializer, **error_responses(400, 404, 409), **REFUSED})
    def post(self, request, pk):
        get_object_or_404(TrainingRun, pk=pk)
        body = validated(DecisionRequest, request.data)
        return Response(runs.payload(promotion.promote(pk, request.user, body.get("reason"), request=request)))


class RunReject(APIView):
    """POST {reason}: reject the candidate (retired; audited with the reason)."""

    permission_classes = [CanDecide]

    @extend_schema(operation_id="training_run_reject", request=DecisionRequest,
                   responses={200: TrainingRunSerializer, **error_responses(400, 404, 409), **REFUSED})
    def post(self, request, pk):
        get_object_or_404(TrainingRun, pk=pk)
        body = validated(DecisionRequest, request.data)
        return Response(runs.payload(promotion.reject(pk, request.user, body.get("reason"), request=request)))
