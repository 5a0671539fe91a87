"""Annotations API. Thin: permissions and HTTP here; rules in services.py, queues in queue.py."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_response

from . import importing, metrics, queue, services
from .models import LabelTask
from .payloads import task_detail, task_row

CanVerify = require_perms("annotations.verify_labels")
CanAdjudicate = require_perms("annotations.adjudicate_labels")
CanImport = require_perms("annotations.import_reports")
CanViewMetrics = require_perms("annotations.view_label_metrics")

MAX_IMPORT_BYTES = 50 * 1024 * 1024

ORDER_PARAM = OpenApiParameter("order", str, enum=list(queue.ORDERS), required=False,
                               description="priority (default), uncertainty, disagreement or oldest")
LABELS_FIELD = serializers.DictField(child=serializers.IntegerField(min_value=-1, max_value=1), required=False,
                                     help_text="{condition: 1 present | 0 absent | -1 uncertain}: every condition "
                                               "level_labels leaves out (derived from them where given)")
LEVEL_LABELS_FIELD = serializers.DictField(
    child=serializers.DictField(child=serializers.IntegerField(min_value=-1, max_value=1)), required=False,
    help_text='{condition: {level ("L4-L5", "L3", "multilevel" or "study"): 1 | 0 | -1}}; see docs/annotation.md')
MODE_FIELD = serializers.ChoiceField(choices=["blind", "assisted"], required=False,
                                     help_text="the mode the task was opened in; 409 mode_changed if it changed since")
SUBMIT_BODY = inline_serializer("AnnotationSubmit", {"labels": LABELS_FIELD, "level_labels": LEVEL_LABELS_FIELD,
                                                     "mode": MODE_FIELD,
                                                     "comment": serializers.CharField(required=False)})
REVEAL_BODY = inline_serializer("AnnotationReveal", {"labels": LABELS_FIELD, "level_labels": LEVEL_LABELS_FIELD})
ADJUDICATE_BODY = inline_serializer("Adjudication", {
    "labels": LABELS_FIELD, "level_labels": LEVEL_LABELS_FIELD,
    "revision": serializers.CharField(required=False, help_text="the task's revision as shown; 409 stale if it changed")})
IMPORT_BODY = inline_serializer("ReportImport", {
    "file": serializers.FileField(required=False, help_text="CSV, JSON or JSON Lines"),
    "required_annotations": serializers.IntegerField(required=False, min_value=1,
                                                     max_value=services.MAX_REQUIRED_ANNOTATIONS)})


def _body(request) -> dict:
    if not isinstance(request.data, dict) and not hasattr(request.data, "getlist"):
        raise services.Invalid("the request body must be a JSON object")
    return request.data


class QueuePagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def _page(view, request, qs) -> Response:
    paginator = QueuePagination()
    page = paginator.paginate_queryset(qs, request, view=view)
    return paginator.get_paginated_response([task_row(t) for t in page])


class TaskQueue(APIView):
    """GET the caller's verification queue: open tasks they have not annotated, ordered by ?order=."""

    permission_classes = [CanVerify]

    @extend_schema(operation_id="annotations_queue", parameters=[ORDER_PARAM], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        try:
            qs = queue.for_annotator(request.user, request.query_params.get("order"))
        except queue.BadOrder as exc:
            return Response({"error": "invalid", "detail": str(exc), "field": "order"}, status=400)
        return _page(self, request, qs)


class TaskDetail(APIView):
    """GET one task: text, extractions with evidence, toggle presets, viewer link (only tasks in your queue)."""

    permission_classes = [CanVerify]

    @extend_schema(operation_id="annotations_task", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk):
        task = get_object_or_404(LabelTask, pk=pk)
        if not queue.in_queue_of(task, request.user):
            return Response({"error": "not_found", "detail": "no such task in your queue"}, status=404)
        return Response(task_detail(task, request.user))


class SubmitAnnotation(APIView):
    """POST {level_labels and/or labels, comment, mode}: your verification of a task; 409 if you already did or it
    is closed; 400 naming the field for an unknown level or condition, a value outside 1/0/-1."""

    permission_classes = [CanVerify]

    @extend_schema(request=SUBMIT_BODY, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, pk):
        task = get_object_or_404(LabelTask, pk=pk)
        try:
            body = _body(request)
            annotation = services.submit_annotation(task, request.user, body.get("labels"), body.get("comment", ""),
                                                    mode=body.get("mode"), level_labels=body.get("level_labels"))
        except services.AnnotationError as exc:
            return error_response(exc)
        return Response({"id": annotation.pk, "task": annotation.task.pk, "task_status": annotation.task.status,
                         "mode": annotation.mode, "extraction_seen": annotation.extraction_seen},
                        status=status.HTTP_201_CREATED)


class RevealExtraction(APIView):
    """POST {labels}: blind mode: fix your complete first pass; answers the task with its extraction shown.

    409 ``not_blind`` in assisted mode, ``already_revealed`` if a different first pass is on record,
    ``already_annotated`` / ``wrong_status`` as for a submission.
    """

    permission_classes = [CanVerify]

    @extend_schema(request=REVEAL_BODY, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, pk):
        task = get_object_or_404(LabelTask, pk=pk)
        if not queue.in_queue_of(task, request.user):
            return Response({"error": "not_found", "detail": "no such task in your queue"}, status=404)
        try:
            body = _body(request)
            services.reveal(task, request.user, body.get("labels"), body.get("level_labels"))
        except services.AnnotationError as exc:
            return error_response(exc)
        return Response(task_detail(task, request.user))


class AdjudicationQueue(APIView):
    """GET tasks whose annotators disagreed."""

    permission_classes = [CanAdjudicate]

    @extend_schema(operation_id="annotations_adjudication_queue", parameters=[ORDER_PARAM],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        try:
            qs = queue.for_adjudication(request.query_params.get("order"))
        except queue.BadOrder as exc:
            return Response({"error": "invalid", "detail": str(exc), "field": "order"}, status=400)
        return _page(self, request, qs)


class Adjudicate(APIView):
    """POST {labels, revision}: the final labels of a task in adjudication; 409 ``stale`` if it changed since."""

    permission_classes = [CanAdjudicate]

    @extend_schema(request=ADJUDICATE_BODY, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, pk):
        task = get_object_or_404(LabelTask, pk=pk)
        try:
            body = _body(request)
            verified = services.adjudicate(task, request.user, body.get("labels"), revision_seen=body.get("revision"),
                                           level_labels=body.get("level_labels"))
        except services.AnnotationError as exc:
            return error_response(exc)
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

    @extend_schema(request={"multipart/form-data": IMPORT_BODY, "application/json": OpenApiTypes.OBJECT},
                   responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        try:
            body = _body(request)
            upload = request.FILES.get("file")
            if upload is not None:
                if upload.size > MAX_IMPORT_BYTES:
                    raise services.Invalid(f"file larger than {MAX_IMPORT_BYTES // 2**20} MiB", field="file")
                rows, parsed = importing.parse_upload(upload.read(), upload.name or "")
            elif isinstance(body.get("reports"), list):
                rows, parsed = importing.rows_from_records(body["reports"])
            else:
                raise services.Invalid("send a file (multipart field 'file') or JSON {\"reports\": [...]}",
                                       field="file")
            summary = services.import_reports(rows, errors=parsed.errors,
                                              required_annotations=body.get("required_annotations"),
                                              defer_llm=True)
        except services.AnnotationError as exc:
            return error_response(exc)
        return Response(summary.to_dict())


class LabelMetrics(APIView):
    """GET per-condition Cohen's kappa between annotators (also split by whether they saw the extraction) and
    Fleiss' kappa over tasks with three or more annotations, each with a jackknife 95% interval; what revealing
    changed in blind first passes; each labeler's accuracy against verified labels."""

    permission_classes = [CanViewMetrics]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"annotator_agreement": metrics.annotator_agreement(),
                         "reveal_effect": metrics.reveal_effect(),
                         "labeler_accuracy": metrics.labeler_accuracy()})
