"""Annotations API. Thin: permissions and HTTP here; request shapes in serializers.py, rules in services.py,
queues in queue.py; refusals are raised and answered by the API's exception handler."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_responses
from backend.errors import NotFound
from backend.pagination import Pagination, paginated
from backend.serializer_fields import validated

from . import importing, metrics, queue, services
from .models import LabelTask
from .payloads import task_detail, task_row
from .serializers import (AdjudicateRequest, ImportRequest, ImportSummarySerializer, LabelMetricsSerializer,
                          QueueQuery, RevealRequest, SubmitRequest, TaskDetailSerializer, TaskRowSerializer)

CanVerify = require_perms("annotations.verify_labels")
CanAdjudicate = require_perms("annotations.adjudicate_labels")
CanImport = require_perms("annotations.import_reports")
CanViewMetrics = require_perms("annotations.view_label_metrics")

PAGE = TaskRowSerializer(many=True)  # a page of them (the views' pagination_class; see backend/pagination.py)
WRITES = error_responses(400, 403, 404, 409)


def _in_queue(request, pk) -> LabelTask:
    """The task, if the caller may see its text (see queue.in_queue_of); 404 otherwise."""
    task = get_object_or_404(LabelTask, pk=pk)
    if not queue.in_queue_of(task, request.user):
        raise NotFound("no such task in your queue")
    return task


class TaskQueue(APIView):
    """GET the caller's verification queue: open tasks they have not annotated, ordered by ?order=."""

    permission_classes = [CanVerify]
    pagination_class = Pagination

    @extend_schema(operation_id="annotations_queue", parameters=[QueueQuery],
                   responses={200: PAGE, **error_responses(400, 403)})
    def get(self, request):
        order = validated(QueueQuery, request.query_params)["order"]
        return paginated(self, request, queue.for_annotator(request.user, order), task_row)


class TaskDetail(APIView):
    """GET one task: text, extractions with evidence, toggle presets, viewer link (only tasks in your queue)."""

    permission_classes = [CanVerify]

    @extend_schema(operation_id="annotations_task", responses={200: TaskDetailSerializer, **error_responses(403, 404)})
    def get(self, request, pk):
        return Response(task_detail(_in_queue(request, pk), request.user))


class SubmitAnnotation(APIView):
    """POST {level_labels and/or labels, comment, mode}: your verification of a task; 409 if you already did or it
    is closed; 400 naming the field for an unknown level or condition, a value outside 1/0/-1."""

    permission_classes = [CanVerify]

    @extend_schema(request=SubmitRequest, responses={201: inline_serializer("AnnotationSubmitted", {
        "id": serializers.IntegerField(), "task": serializers.IntegerField(), "task_status": serializers.CharField(),
        "mode": serializers.CharField(), "extraction_seen": serializers.BooleanField()}), **WRITES})
    def post(self, request, pk):
        task = get_object_or_404(LabelTask, pk=pk)
        body = validated(SubmitRequest, request.data)
        annotation = services.submit_annotation(task, request.user, body.get("labels"), body.get("comment"),
                                                mode=body.get("mode"), level_labels=body.get("level_labels"))
        return Response({"id": annotation.pk, "task": annotation.task.pk, "task_status": annotation.task.status,
                         "mode": annotation.mode, "extraction_seen": annotation.extraction_seen},
                        status=status.HTTP_201_CREATED)


class RevealExtraction(APIView):
    """POST {labels}: blind mode: fix your complete first pass; answers the task with its extraction shown.

    409 ``not_blind`` in assisted mode, ``already_revealed`` if a different first pass is on record,
    ``already_annotated`` / ``wrong_status`` as for a submission.
    """

    permission_classes = [CanVerify]

    @extend_schema(request=RevealRequest, responses={200: TaskDetailSerializer, **WRITES})
    def post(self, request, pk):
        task = _in_queue(request, pk)
        body = validated(RevealRequest, request.data)
        services.reveal(task, request.user, body.get("labels"), body.get("level_labels"))
        return Response(task_detail(task, request.user))


class AdjudicationQueue(APIView):
    """GET tasks whose annotators disagreed."""

    permission_classes = [CanAdjudicate]
    pagination_class = Pagination

    @extend_schema(operation_id="annotations_adjudication_queue", parameters=[QueueQuery],
                   responses={200: PAGE, **error_responses(400, 403)})
    def get(self, request):
        order = validated(QueueQuery, request.query_params)["order"]
        return paginated(self, request, queue.for_adjudication(order), task_row)


class Adjudicate(APIView):
    """POST {labels, revision}: the final labels of a task in adjudication; 409 ``stale`` if it changed since."""

    permission_classes = [CanAdjudicate]

    @extend_schema(request=AdjudicateRequest, responses={201: inline_serializer("Adjudicated", {
        "task": serializers.IntegerField(), "task_status": serializers.CharField(), "method": serializers.CharField(),
        "labels": serializers.DictField(), "level_labels": serializers.DictField()}), **WRITES})
    def post(self, request, pk):
        task = get_object_or_404(LabelTask, pk=pk)
        body = validated(AdjudicateRequest, request.data)
        verified = services.adjudicate(task, request.user, body.get("labels"), revision_seen=body.get("revision"),
                                       level_labels=body.get("level_labels"))
        return Response({"task": task.pk, "task_status": LabelTask.DONE, "method": verified.method,
                         "labels": verified.labels, "level_labels": verified.level_labels},
                        status=status.HTTP_201_CREATED)


class ImportReports(APIView):
    """POST a CSV/JSON/JSONL file (multipart ``file``) or JSON {"reports": [...]}: one task per report.

    Answers the import summary: created / existing task counts and every row error by row number.
    The LLM labeler, when configured, runs on Celery afterwards; the rules run at once.
    """

    permission_classes = [CanImport]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request={"multipart/form-data": ImportRequest, "application/json": ImportRequest},
                   responses={200: ImportSummarySerializer, **error_responses(400, 403, 415)})
    def post(self, request):
        body = validated(ImportRequest, request.data)
        if (upload := body.get("file")) is not None:
            rows, parsed = importing.parse_upload(upload.read(), upload.name or "")
        else:
            rows, parsed = importing.rows_from_records(body["reports"])
        summary = services.import_reports(rows, errors=parsed.errors,
                                          required_annotations=body.get("required_annotations"), defer_llm=True)
        return Response(summary.to_dict())


class LabelMetrics(APIView):
    """GET per-condition Cohen's kappa between annotators (also split by whether they saw the extraction) and
    Fleiss' kappa over tasks with three or more annotations, each with a jackknife 95% interval; what revealing
    changed in blind first passes; each labeler's accuracy against verified labels."""

    permission_classes = [CanViewMetrics]

    @extend_schema(responses={200: LabelMetricsSerializer, **error_responses(403)})
    def get(self, request):
        return Response({"annotator_agreement": metrics.annotator_agreement(),
                         "reveal_effect": metrics.reveal_effect(),
                         "labeler_accuracy": metrics.labeler_accuracy()})
