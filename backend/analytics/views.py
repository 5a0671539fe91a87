"""Admin analytics: RADPEER profile, edit distances per score, CSV exports (each one audited)."""

import csv

from django.http import StreamingHttpResponse
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms

from . import services
from .models import ExportAudit

CanViewAnalytics = require_perms("analytics.view_analytics")


def _bad(exc: services.BadParams) -> Response:
    return Response({"code": "invalid", "detail": exc.message, "field": exc.field},
                    status=status.HTTP_400_BAD_REQUEST)


class RadpeerAnalytics(APIView):
    """GET ?date_from&date_to&reader&model_version&draft_backend&group_by: score counts, rates, Wilson CIs."""

    permission_classes = [CanViewAnalytics]

    def get(self, request):
        try:
            params = services.parse_params(request.query_params)
        except services.BadParams as exc:
            return _bad(exc)
        return Response({"params": params, "min_count": services.MIN_COUNT, "confidence": 0.95,
                         "groups": services.radpeer_summary(params)})


class EditAnalytics(APIView):
    """GET (same filters): per RADPEER score, n and mean/median normalised char/word edit distance."""

    permission_classes = [CanViewAnalytics]

    def get(self, request):
        try:
            params = services.parse_params(request.query_params)
        except services.BadParams as exc:
            return _bad(exc)
        return Response({"params": params, "scores": services.edits_summary(params)})


class _Echo:
    def write(self, value):
        return value


class AnalyticsExport(APIView):
    """GET ?table=radpeer|edits|reports (+ filters): streamed CSV; writes an ExportAudit row."""

    permission_classes = [CanViewAnalytics]

    def get(self, request):
        try:
            params = services.parse_params(request.query_params)
            table = request.query_params.get("table") or ""
            header, rows = services.export_table(table, params)
        except services.BadParams as exc:
            return _bad(exc)
        ExportAudit.objects.create(user=request.user, table=table, params=params, row_count=len(rows))
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse((writer.writerow(r) for r in [header, *rows]),
                                         content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="spineagent-{table}-{stamp}.csv"'
        return response
