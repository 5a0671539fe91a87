"""Audit log API for admins (``audit.view_auditevent``): filtered list and a streamed CSV export."""

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.spreadsheets import csv_lines

from . import services
from .log import record
from .models import AuditEvent
from .serializers import AuditEventSerializer

CanViewAudit = require_perms("audit.view_auditevent")

FILTER_PARAMETERS = [
    OpenApiParameter("user", str, description="username"),
    OpenApiParameter("action", str, enum=[a for a, _ in AuditEvent.ACTIONS]),
    OpenApiParameter("target_type", str),
    OpenApiParameter("target_id", str),
    OpenApiParameter("date_from", OpenApiTypes.DATE, description="first day, inclusive (UTC)"),
    OpenApiParameter("date_to", OpenApiTypes.DATE, description="last day, inclusive (UTC)"),
]
BAD_PARAMS = OpenApiResponse(description='{"code": "invalid", "detail": ..., "field": ...}')


def _bad(exc: services.BadParams) -> Response:
    return Response({"code": "invalid", "detail": exc.message, "field": exc.field},
                    status=status.HTTP_400_BAD_REQUEST)


class AuditEventList(ListAPIView):
    """GET: events, newest first, paginated (limit/offset), filtered by the query parameters."""

    permission_classes = [CanViewAudit]
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        return services.events(self.params)

    @extend_schema(parameters=FILTER_PARAMETERS, responses={200: AuditEventSerializer(many=True), 400: BAD_PARAMS})
    def get(self, request, *args, **kwargs):
        try:
            self.params = services.parse_params(request.query_params)
        except services.BadParams as exc:
            return _bad(exc)
        return super().get(request, *args, **kwargs)


class AuditExport(APIView):
    """GET (same filters): the matching events as CSV, oldest first; the export itself is audited."""

    permission_classes = [CanViewAudit]

    @extend_schema(parameters=FILTER_PARAMETERS,
                   responses={(200, "text/csv"): OpenApiTypes.STR, 400: BAD_PARAMS})
    def get(self, request):
        try:
            params = services.parse_params(request.query_params)
        except services.BadParams as exc:
            return _bad(exc)
        qs = services.events(params)
        # Recorded before streaming (a reader who stops mid-download still exported); the CSV includes it
        # only if it matches the filters.
        record(AuditEvent.EXPORT, "audit-log", "", request=request, detail={"params": params})
        response = StreamingHttpResponse(csv_lines(services.CSV_HEADER, services.csv_rows(qs)),
                                         content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="spineagent-audit-{stamp}.csv"'
        return response

