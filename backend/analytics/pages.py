"""The admin's analytics dashboard: server-rendered tables, chart images and export links.

Login is required (anonymous users are redirected to /login) and ``analytics.view_analytics`` is checked
here on the server (403 otherwise); the charts and exports it links to check it again.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import render
from django.views.decorators.http import require_GET
from rest_framework.exceptions import ValidationError

from backend.accounts.roles import role_of
from backend.annotations import metrics as annotation_metrics
from backend.api_errors import validation_payload
from backend.inference.models import ModelVersion

from . import burden_summary, charts, conditions, demo, draft_agreement, edit_burden, exports, services, turnaround
from .filters import AnalyticsFilters
from .models import EditMetrics


def duration(seconds: float | None) -> str:
    """'2 d 03 h', '4 h 05 min', '12 min', '40 s' (the table shows the scale a person reads)."""
    if seconds is None:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 3600:
        return f"{minutes} min"
    if s < 86400:
        return f"{hours} h {minutes % 60:02d} min"
    return f"{days} d {hours % 24:02d} h"


def _choices() -> dict:
    """Values present in the metrics, for the filter form's selects."""
    rows = EditMetrics.objects
    mv_ids = rows.exclude(model_version=None).values_list("model_version_id", flat=True).distinct()
    return {
        "readers": sorted(set(rows.exclude(reader=None).values_list("reader_id", flat=True))),
        "model_versions": list(ModelVersion.objects.filter(pk__in=mv_ids).order_by("name", "version")),
        "backends": sorted(set(rows.exclude(draft_backend="").values_list("draft_backend", flat=True))),
        "regions": sorted(set(rows.exclude(region="").values_list("region", flat=True))),
        "group_by": services.GROUP_BY,
    }


BURDEN_LIST_MAX = 50


def _burden(qs, params: dict) -> dict:
    """Groups of the edit burden and the latest reports with significant edits (the export lists them all)."""
    with_edits = qs.exclude(significant_edits=[])
    latest = with_edits.select_related("report").order_by("-signed_at", "-pk")[:BURDEN_LIST_MAX]
    rows = [{**r, "edits": [{**e, "kind_label": edit_burden.KIND_LABELS.get(e["kind"], e["kind"])}
                            for e in r["significant_edits"]]}
            for r in map(burden_summary.per_report, latest)]
    return {"groups": burden_summary.summary(qs, params.get("group_by")),
            "kinds": [edit_burden.KIND_LABELS[k] for k in edit_burden.EDIT_KINDS],
            "sentence_kinds": edit_burden.SENTENCE_KINDS, "match": edit_burden.SENTENCE_MATCH,
            "reports": rows, "reports_with_edits": with_edits.count(), "list_max": BURDEN_LIST_MAX}


def _turnaround_rows(params: dict) -> list[dict]:
    groups = turnaround.summary(services.metrics_queryset(params), params.get("group_by"))
    return [{"label": g["label"], "reports": g["reports"],
             "intervals": [{"label": i["label"], "n": i["n"], "median": duration(i["median_s"]),
                            "p90": duration(i["p90_s"])} for i in g["intervals"].values()]}
            for g in groups]


def _annotators() -> dict:
    """Annotator agreement, one row per condition with its Cohen and Fleiss figures, and the export's rows per
    condition x level, for the dashboard."""
    data = annotation_metrics.annotator_agreement()
    rows = [{"condition": k, "display_name": conditions._display_name(k), "cohen": c,
             "fleiss": data["fleiss"]["conditions"][k]} for k, c in data["conditions"].items()]
    level_rows = [{**r, "display_name": conditions._display_name(r["condition"])}
                  for r in exports.annotator_level_rows(data)]
    return {**data, "rows": rows, "level_rows": level_rows}


@require_GET
@login_required
@permission_required("analytics.view_analytics", raise_exception=True)
def dashboard(request):
    label_metrics = request.user.has_perm("annotations.view_label_metrics")
    context = {"role": role_of(request.user) or "none", "choices": _choices(), "raw": request.GET,
               "can_identify": request.user.has_perm("analytics.export_identified"),
               "tables": [t for t in exports.TABLES if label_metrics or t not in exports.LABEL_METRICS_TABLES],
               "charts": charts.CHARTS, "titles": charts.TITLES}
    filters = AnalyticsFilters(data=request.GET)
    if not filters.is_valid():
        error = validation_payload(ValidationError(filters.errors))
        return render(request, "analytics/dashboard.html", {**context, "error": error}, status=400)
    params = filters.validated_data
    qs = services.metrics_queryset(params)
    query = urlencode(params)
    context.update(
        params=params, query=query, amp="&" if query else "",
        reports=qs.count(), demo_reports=demo.count_in(qs),
        radpeer=services.radpeer_summary(params), edits=services.edits_summary(params),
        conditions=conditions.summary(qs), turnaround=_turnaround_rows(params), burden=_burden(qs, params),
        agreement=draft_agreement.summary(qs), annotators=_annotators() if label_metrics else None)
    return render(request, "analytics/dashboard.html", context)
