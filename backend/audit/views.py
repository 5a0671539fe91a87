"""Audit log API for admins (``audit.view_auditevent``): filtered list and a streamed CSV export."""

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_responses
from backend.spreadsheets import csv_lines

from . import services
from .filters import AuditFilters
from .log import record
from .models import AuditEvent
from .serializers import AuditEventSerializer

CanViewAudit = require_perms("audit.view_auditevent")
REFUSED = error_responses(400, 401, 403)


def _filters(request) -> dict:
    filters = AuditFilters(data=request.query_params)
    filters.is_valid(raise_exception=True)
    return filters.validated_data


class AuditEventList(ListAPIView):
    """GET: events, newest first, paginated (limit/offset), filtered by the query parameters."""

    permission_classes = [CanViewAudit]
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        return services.events(_filters(self.request))

    @extend_schema(parameters=[AuditFilters], responses={200: AuditEventSerializer(many=True), **REFUSED})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AuditExport(APIView):
    """GET (same filters): the matching events as CSV, oldest first; the export itself is audited."""

    permission_classes = [CanViewAudit]

    @extend_schema(parameters=[AuditFilters], responses={(200, "text/csv"): OpenApiTypes.STR, **REFUSED})
    def get(self, request):
        params = _filters(request)
        qs = services.events(params)
        # Recorded before streaming (a reader who stops mid-download still exported); the CSV includes it
        # only if it matches the filters.
        record(AuditEvent.EXPORT, "audit-log", "", request=request, detail={"params": params})
        response = StreamingHttpResponse(csv_lines(services.CSV_HEADER, services.csv_rows(qs)),
                                         content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="spineagent-audit-{stamp}.csv"'
        return response

