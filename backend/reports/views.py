"""Report and worklist endpoints. Thin: permissions here, rules in versions.py, queries in worklist.py."""

from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.inference.models import InferenceJob, InferenceResult
from backend.studies.models import Study

from . import versions, worklist
from .diff import word_diff
from .models import Report
from .serializers import VersionSerializer, report_payload, stale_payload, worklist_row

CanViewReports = require_perms("reports.view_report")
CanEditReports = require_perms("reports.view_report", "reports.change_report")
CanSignReports = require_perms("reports.view_report", "reports.sign_report")
CanViewWorklist = require_perms("reports.view_worklist")


def _study(uid: str) -> Study:
    return get_object_or_404(Study, study_instance_uid=uid)


def _error(exc: versions.ReportError) -> Response:
    code = status.HTTP_400_BAD_REQUEST if isinstance(exc, versions.Invalid) else status.HTTP_409_CONFLICT
    return Response(stale_payload(exc), status=code)


class StudyReport(APIView):
    """GET the report with its AI result; a radiologist's first open claims it (in review)."""

    permission_classes = [CanViewReports]

    def get(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        versions.heal_missing_draft(study)
        if request.user.has_perm("reports.change_report"):
            report = Report.objects.filter(study=study).only("status", "first_opened_at").first()
            if report is None or report.first_opened_at is None or report.status == Report.DRAFT_READY:
                versions.mark_opened(study, request.user)
        report = Report.objects.select_related("signed_by", "reader").filter(study=study).first()
        rows = list(report.versions.select_related("author", "model_version")) if report else []
        result = InferenceResult.objects.select_related("model_version").filter(study=study).first()
        job = InferenceJob.objects.filter(study=study).order_by("-created_at", "-pk").first()
        return Response(report_payload(study, report, rows, result, job, request.user))


class ReportVersions(APIView):
    """POST {text, base_number}: a new radiologist version; 409 stale/locked instead of overwriting."""

    permission_classes = [CanEditReports]

    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        try:
            version = versions.save_version(study, request.user, request.data.get("text"),
                                            request.data.get("base_number"))
        except versions.ReportError as exc:
            return _error(exc)
        return Response({"version": VersionSerializer(version).data}, status=status.HTTP_201_CREATED)


class SignReport(APIView):
    """POST {number, radpeer_score, radpeer_comment}: sign the current version and lock the report."""

    permission_classes = [CanSignReports]

    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        try:
            report = versions.sign(study, request.user, request.data.get("number"),
                                   request.data.get("radpeer_score"), request.data.get("radpeer_comment"))
        except versions.ReportError as exc:
            return _error(exc)
        return Response({"status": report.status, "signed_by": request.user.username,
                         "signed_at": report.signed_at.isoformat(), "signed_number": report.signed_number,
                         "radpeer": {"score": report.radpeer_score or None, "comment": report.radpeer_comment},
                         "locked": True})


class ReportAddenda(APIView):
    """POST {text}: an addendum to a signed report (the signed text itself never changes)."""

    permission_classes = [CanSignReports]

    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        try:
            version = versions.add_addendum(study, request.user, request.data.get("text"))
        except versions.ReportError as exc:
            return _error(exc)
        return Response({"version": VersionSerializer(version).data}, status=status.HTTP_201_CREATED)


class ReportDiff(APIView):
    """GET ?from=&to=: word-level diff between two versions (default: AI draft -> current)."""

    permission_classes = [CanViewReports]

    def get(self, request, study_instance_uid):
        report = get_object_or_404(Report, study__study_instance_uid=study_instance_uid)
        texts = dict(report.versions.values_list("number", "text"))
        ai_numbers = list(report.versions.filter(source="ai").values_list("number", flat=True))
        defaults = {"from": max(ai_numbers) if ai_numbers else None, "to": report.current_number}
        chosen = {}
        for key in ("from", "to"):
            raw = request.query_params.get(key)
            try:
                chosen[key] = int(raw) if raw not in (None, "") else defaults[key]
            except ValueError:
                return Response({"error": "invalid", "detail": f"{key} must be a version number"}, status=400)
            if chosen[key] not in texts:
                return Response({"error": "not_found", "detail": f"no version {chosen[key]} ({key})"}, status=404)
        return Response({"from": chosen["from"], "to": chosen["to"],
                         **word_diff(texts[chosen["from"]], texts[chosen["to"]])})


class WorklistPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class Worklist(APIView):
    """GET the reading worklist, newest received first; filters ?status=&date_from=&date_to=&reader=."""

    permission_classes = [CanViewWorklist]

    def get(self, request):
        try:
            qs = worklist.filtered(request.query_params)
        except worklist.BadFilter as exc:
            return Response({"error": "invalid", "detail": str(exc)}, status=400)
        paginator = WorklistPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([worklist_row(s) for s in page])
