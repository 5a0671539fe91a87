"""Report and worklist endpoints. Thin: permissions here, rules in versions.py, queries in worklist.py."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_response
from backend.inference.analysis import analysis_of
from backend.inference.models import InferenceJob, InferenceResult
from backend.inference.receivers import dispatch_sr_export
from backend.studies.models import Study

from . import sentences, versions, worklist
from .diff import word_diff
from .models import Report
from .serializers import VersionSerializer, report_payload, state_payload, worklist_row

CanViewReports = require_perms("reports.view_report")
CanEditReports = require_perms("reports.view_report", "reports.change_report")
CanSignReports = require_perms("reports.view_report", "reports.sign_report")
CanViewWorklist = require_perms("reports.view_worklist")


# OpenAPI descriptions of the JSON bodies and query parameters (the schema is fuzzed in CI).
SAVE_BODY = inline_serializer("ReportSaveRequest", {
    "text": serializers.CharField(), "base_number": serializers.IntegerField(allow_null=True)})
SIGN_BODY = inline_serializer("ReportSignRequest", {
    "number": serializers.IntegerField(), "radpeer_score": serializers.CharField(required=False, allow_blank=True),
    "radpeer_comment": serializers.CharField(required=False, allow_blank=True)})
ADDENDUM_BODY = inline_serializer("ReportAddendumRequest", {"text": serializers.CharField()})
ERRORS = {400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT}
WORKLIST_PARAMS = [OpenApiParameter(name, str, description=text) for name, text in (
    ("status", "comma-separated display statuses"), ("hide", "comma-separated display statuses to leave out"),
    ("date_from", "study date YYYY-MM-DD, inclusive"), ("date_to", "study date YYYY-MM-DD, inclusive"),
    ("reader", "username of the reader or signer"), ("mine", "1: studies the caller reads or signed"),
    ("unread", "1: studies nobody has opened yet (not signed)"),
    ("ordering", "received, date, status, priority or reader; prefix - for descending (default -received)"))] + [
    OpenApiParameter("limit", int), OpenApiParameter("offset", int)]


def _body(request) -> dict:
    """The JSON body as a dict; any other JSON value (a list, a number) is a 400, not a crash."""
    if not isinstance(request.data, dict):
        raise versions.Invalid("the request body must be a JSON object")
    return request.data


def _study(uid: str) -> Study:
    return get_object_or_404(Study, study_instance_uid=uid)


class StudyReport(APIView):
    """GET the report with its AI result. Reading changes nothing; a radiologist claims with POST .../claim."""

    permission_classes = [CanViewReports]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT})
    def get(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        versions.heal_missing_draft(study)
        report = Report.objects.select_related("signed_by", "reader").filter(study=study).first()
        rows = list(report.versions.select_related("author", "model_version")) if report else []
        result = InferenceResult.objects.select_related("model_version").filter(study=study).first()
        return Response(report_payload(study, report, rows, result, _latest_job(study), request.user))


def _latest_job(study: Study) -> InferenceJob | None:
    return InferenceJob.objects.filter(study=study).order_by("-created_at", "-pk").first()


class ReportState(APIView):
    """GET what the panel polls while an analysis runs: the report's and the latest job's state, version
    numbers, no text and no findings. Not an access to the report (not audited: a panel left open must not
    write audit rows by itself); when something changed the panel reloads the report, which is audited."""

    permission_classes = [CanViewReports]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT})
    def get(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        report = Report.objects.filter(study=study).first()
        result_id = InferenceResult.objects.filter(study=study).values_list("pk", flat=True).first()
        return Response(state_payload(study, report, _latest_job(study), result_id))


class ClaimRequest(serializers.Serializer):
    take_over = serializers.BooleanField(default=False, help_text="take the report over from another reader")


class ClaimReport(APIView):
    """POST {take_over}: become the report's reader (in review). Another reader's report: 409 ``claimed``
    unless ``take_over`` is true; a take-over is audited with the previous reader."""

    permission_classes = [CanEditReports]

    @extend_schema(request=ClaimRequest, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        body = ClaimRequest(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            report, previous = versions.claim(study, request.user, body.validated_data["take_over"])
        except versions.ReportError as exc:
            return error_response(exc)
        return Response({"status": report.status, "reader": request.user.username, "took_over_from": previous})


class ReportVersions(APIView):
    """POST {text, base_number}: a new radiologist version; 409 stale/locked instead of overwriting."""

    permission_classes = [CanEditReports]

    @extend_schema(request=SAVE_BODY, responses={201: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        try:
            body = _body(request)
            version = versions.save_version(study, request.user, body.get("text"), body.get("base_number"))
        except versions.ReportError as exc:
            return error_response(exc)
        result = InferenceResult.objects.filter(study=study).first()
        return Response({"version": VersionSerializer(version).data,
                         "sentences": sentences.link(version.text, analysis_of(result))},
                        status=status.HTTP_201_CREATED)


class SignReport(APIView):
    """POST {number, radpeer_score, radpeer_comment}: sign the current version and lock the report."""

    permission_classes = [CanSignReports]

    @extend_schema(request=SIGN_BODY, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        try:
            body = _body(request)
            report = versions.sign(study, request.user, body.get("number"), body.get("radpeer_score"),
                                   body.get("radpeer_comment"))
        except versions.ReportError as exc:
            return error_response(exc)
        return Response({"status": report.status, "signed_by": request.user.username,
                         "signed_at": report.signed_at.isoformat(), "signed_number": report.signed_number,
                         "radpeer": {"score": report.radpeer_score or None, "comment": report.radpeer_comment},
                         "locked": True})


class ReportAddenda(APIView):
    """POST {text}: an addendum to a signed report (the signed text itself never changes)."""

    permission_classes = [CanSignReports]

    @extend_schema(request=ADDENDUM_BODY, responses={201: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        try:
            version = versions.add_addendum(study, request.user, _body(request).get("text"))
        except versions.ReportError as exc:
            return error_response(exc)
        return Response({"version": VersionSerializer(version).data}, status=status.HTTP_201_CREATED)


class ReportDiff(APIView):
    """GET ?from=&to=: word-level diff between two versions (default: AI draft -> current)."""

    permission_classes = [CanViewReports]

    @extend_schema(parameters=[OpenApiParameter("from", int), OpenApiParameter("to", int)],
                   responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT})
    def get(self, request, study_instance_uid):
        report = get_object_or_404(Report, study__study_instance_uid=study_instance_uid)
        texts = dict(report.versions.values_list("number", "text"))
        ai_draft = report.versions.ai_draft()
        defaults = {"from": ai_draft.number if ai_draft else None, "to": report.current_number}
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


class RetrySRExport(APIView):
    """POST: export the newest result's DICOM SR again (after a failure the reader and the admin see)."""

    permission_classes = [require_perms("inference.queue_job")]

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT})
    def post(self, request, study_instance_uid):
        result = InferenceResult.objects.filter(study__study_instance_uid=study_instance_uid).first()
        if result is None:
            return Response({"error": "not_found", "detail": "no result for this study yet"}, status=404)
        dispatch_sr_export(result.pk)
        result.refresh_from_db(fields=["sr_status", "sr_error"])
        return Response({"result_id": result.pk, "sr_status": result.sr_status, "sr_error": result.sr_error},
                        status=status.HTTP_202_ACCEPTED)


class WorklistPagination(LimitOffsetPagination):
    """Limit/offset paging over ``worklist.page``, which returns the rows and the total together."""

    default_limit = 50
    max_limit = 500

    def paginate_params(self, params, request, user=None) -> list:
        self.request = request
        self.limit, self.offset = self.get_limit(request), self.get_offset(request)
        rows, self.count = worklist.page(params, self.offset, self.limit, user)
        return rows


class Worklist(APIView):
    """GET the reading worklist, newest received first (or ?ordering=); filters ?status=&hide=&date_from=
    &date_to=&reader=&mine=&unread= (see worklist.py). ``qa_review``: 'QA reviewed: agreed' or '... changed to
    3a' on a peer-reviewed study, shown to its reader and to QA reviewers only (null otherwise)."""

    permission_classes = [CanViewWorklist]

    @extend_schema(parameters=WORKLIST_PARAMS, responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT})
    def get(self, request):
        paginator = WorklistPagination()
        try:
            rows = paginator.paginate_params(request.query_params, request, request.user)
        except worklist.BadFilter as exc:
            return Response({"error": "invalid", "detail": str(exc)}, status=400)
        from backend.qa.services import markers_for  # the peer review's result, for its reader (one query)

        markers = markers_for([s.pk for s in rows], request.user)
        return paginator.get_paginated_response([{**worklist_row(s), "qa_review": markers.get(s.pk)} for s in rows])
