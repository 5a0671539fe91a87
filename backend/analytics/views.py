"""Admin analytics API: RADPEER profile, edits per score, condition accuracy, turnaround, edit burden,
CSV / XLSX exports (each one written to the audit log) and PNG charts. Logic lives in services, conditions,
turnaround, edit_burden / burden_summary, exports and charts; these views validate, check permissions and
encode."""

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_responses
from backend.audit.log import record
from backend.audit.models import AuditEvent
from backend.serializer_fields import validated

from . import burden_summary, charts, conditions, draft_agreement, edit_burden, exports, services, turnaround
from .filters import AnalyticsFilters, ChartQuery, CsvExportQuery, XlsxExportQuery
from .serializers import (ConditionSummarySerializer, DraftAgreementSummarySerializer, EditBurdenSummarySerializer,
                          EditSummarySerializer, RadpeerSummarySerializer, TurnaroundSummarySerializer)

CanViewAnalytics = require_perms("analytics.view_analytics")
IDENTIFIED_PERM = "analytics.export_identified"
LABEL_METRICS_PERM = "annotations.view_label_metrics"  # the annotator_agreement table needs it too

REFUSED = error_responses(400, 401, 403)  # 403: not an admin, or identified / annotator agreement without permission


def _export_params(request, serializer_class) -> tuple[dict, str, bool]:
    """(filters, table, identified) of an export; PermissionDenied (403) for identified without the permission."""
    params = validated(serializer_class, request.query_params)
    table, identified = params.pop("table"), params.pop("identified")
    if identified and not request.user.has_perm(IDENTIFIED_PERM):
        raise PermissionDenied(f"identified exports need the permission {IDENTIFIED_PERM}")
    return params, table, identified


def _audit(request, fmt: str, target: str, filters: dict, identified: bool, tables: list) -> None:
    """One audit event per export, before the first byte goes out (a download cut short still leaked)."""
    record(AuditEvent.EXPORT, "analytics", target, request=request,
           detail={"params": filters, "row_count": sum(t.row_count for t in tables), "identified": identified,
                   "format": fmt, "tables": {t.name: t.row_count for t in tables}})


def _filename(stem: str, ext: str) -> str:
    return f'attachment; filename="spineagent-{stem}-{timezone.now():%Y%m%d-%H%M%S}.{ext}"'


class _FilteredSummary(APIView):
    """GET with the common filters (a 400 unless valid): ``{"params": ..., **summary(params)}``."""

    permission_classes = [CanViewAnalytics]

    def summary(self, params: dict) -> dict:
        raise NotImplementedError

    def get(self, request):
        params = validated(AnalyticsFilters, request.query_params)
        return Response({"params": params, **self.summary(params)})


class RadpeerAnalytics(_FilteredSummary):
    """GET (filters, group_by): RADPEER score counts, discrepancy / significant rates with Wilson CIs."""

    @extend_schema(parameters=[AnalyticsFilters], responses={200: RadpeerSummarySerializer, **REFUSED})
    def get(self, request):
        return super().get(request)

    def summary(self, params):
        return {"min_count": services.MIN_COUNT, "confidence": 0.95, "groups": services.radpeer_summary(params)}


class EditAnalytics(_FilteredSummary):
    """GET (filters): per RADPEER score, n and mean/median normalised char/word edit distance."""

    @extend_schema(parameters=[AnalyticsFilters], responses={200: EditSummarySerializer, **REFUSED})
    def get(self, request):
        return super().get(request)

    def summary(self, params):
        return {"scores": services.edits_summary(params)}


class ConditionAnalytics(_FilteredSummary):
    """GET (filters): per condition, AI prediction and draft finding against the signed report."""

    @extend_schema(parameters=[AnalyticsFilters], responses={200: ConditionSummarySerializer, **REFUSED})
    def get(self, request):
        return super().get(request)

    def summary(self, params):
        return {"confidence": 0.95, **conditions.summary(services.metrics_queryset(params))}


class TurnaroundAnalytics(_FilteredSummary):
    """GET (filters, group_by): median / p90 / mean seconds from arrival to draft, first open and signature."""

    @extend_schema(parameters=[AnalyticsFilters], responses={200: TurnaroundSummarySerializer, **REFUSED})
    def get(self, request):
        return super().get(request)

    def summary(self, params):
        return {"unit": "seconds",
                "groups": turnaround.summary(services.metrics_queryset(params), params.get("group_by"))}


class EditBurdenAnalytics(_FilteredSummary):
    """GET (filters, group_by): WER with S/I/D, sentences kept/edited/added/deleted and significant edits,
    per group and per report (each report's list of significant edits)."""

    @extend_schema(parameters=[AnalyticsFilters], responses={200: EditBurdenSummarySerializer, **REFUSED})
    def get(self, request):
        return super().get(request)

    def summary(self, params):
        qs = services.metrics_queryset(params)
        return {"reference": "signed text", "hypothesis": "AI draft", "sentence_match": edit_burden.SENTENCE_MATCH,
                "labeler": conditions.LABELER_VERSION, "edit_kinds": list(edit_burden.EDIT_KINDS),
                "confidence": 0.95, "groups": burden_summary.summary(qs, params.get("group_by")),
                "reports": burden_summary.reports(qs)}


class DraftAgreementAnalytics(_FilteredSummary):
    """GET (filters): AI draft vs signed report agreement (percent agreement with Wilson CI, Cohen's kappa with
    jackknife CI) per condition and per condition x level, from the rule labeler on both texts."""

    @extend_schema(parameters=[AnalyticsFilters], responses={200: DraftAgreementSummarySerializer, **REFUSED})
    def get(self, request):
        return super().get(request)

    def summary(self, params):
        return draft_agreement.summary(services.metrics_queryset(params))


class AnalyticsExport(APIView):
    """GET ?table=radpeer|edits|reports|conditions|turnaround|edit_burden|significant_edits|draft_agreement|
    draft_agreement_levels|annotator_agreement|annotator_agreement_levels (+ filters, identified): streamed CSV,
    audited."""

    permission_classes = [CanViewAnalytics]

    @extend_schema(parameters=[CsvExportQuery], responses={(200, "text/csv"): OpenApiTypes.STR, **REFUSED})
    def get(self, request):
        params, name, identified = _export_params(request, CsvExportQuery)
        if name in exports.LABEL_METRICS_TABLES and not request.user.has_perm(LABEL_METRICS_PERM):
            raise PermissionDenied(f"annotator agreement needs the permission {LABEL_METRICS_PERM}")
        table = exports.build(name, params, identified=identified)
        _audit(request, "csv", table.name, params, identified, [table])
        response = StreamingHttpResponse(exports.csv_chunks(table), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = _filename(table.name, "csv")
        return response


class AnalyticsExportXlsx(APIView):
    """GET ?table=... (or none / all: one sheet per table) + filters, identified: an XLSX workbook, audited."""

    permission_classes = [CanViewAnalytics]

    @extend_schema(parameters=[XlsxExportQuery], responses={(200, exports.XLSX_TYPE): OpenApiTypes.BINARY,
                                                            **REFUSED})
    def get(self, request):
        params, name, identified = _export_params(request, XlsxExportQuery)
        names = exports.TABLES if name == "all" else [name]
        if set(names) & set(exports.LABEL_METRICS_TABLES) and not request.user.has_perm(LABEL_METRICS_PERM):
            if name != "all":
                raise PermissionDenied(f"annotator agreement needs the permission {LABEL_METRICS_PERM}")
            names = [n for n in names if n not in exports.LABEL_METRICS_TABLES]
        tables = [exports.build(n, params, identified=identified) for n in names]
        _audit(request, "xlsx", name, params, identified, tables)
        return FileResponse(exports.xlsx_file(tables), as_attachment=True, content_type=exports.XLSX_TYPE,
                            filename=f"spineagent-{name}-{timezone.now():%Y%m%d-%H%M%S}.xlsx")


class AnalyticsChart(APIView):
    """GET ?chart=radpeer|edits|conditions|errors|turnaround|burden|significant (+ filters): a PNG; 'no data'
    image if empty."""

    permission_classes = [CanViewAnalytics]

    @extend_schema(parameters=[ChartQuery], responses={(200, "image/png"): OpenApiTypes.BINARY, **REFUSED})
    def get(self, request):
        params = validated(ChartQuery, request.query_params)
        png, empty = charts.render(params.pop("chart"), params)
        response = HttpResponse(png, content_type="image/png")
        response["Cache-Control"] = "private, no-store"
        response["X-Analytics-Empty"] = "1" if empty else "0"
        return response
