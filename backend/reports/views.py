"""Report and worklist endpoints. Thin: permissions here, request shapes in serializers.py, rules in versions.py,
queries in worklist.py; refusals are raised and answered by the API's exception handler."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_responses
from backend.errors import NotFound
from backend.inference.analysis import analysis_of
from backend.inference.models import InferenceJob, InferenceResult
from backend.inference.receivers import dispatch_sr_export
from backend.pagination import Pagination
from backend.serializer_fields import validated
from backend.studies.models import Study

from . import sentences, versions, worklist
from .diff import word_diff
from .models import Report
from .serializers import (AddendumRequest, ClaimRequest, DiffQuery, ReportDiffSerializer, ReportPayloadSerializer,
                          ReportStateSerializer, SaveRequest, SentenceSerializer, SignRequest, VersionSerializer,
                          WorklistQuery, WorklistRowSerializer, report_payload, state_payload, worklist_row)

CanViewReports = require_perms("reports.view_report")
CanEditReports = require_perms("reports.view_report", "reports.change_report")
CanSignReports = require_perms("reports.view_report", "reports.sign_report")
CanViewWorklist = require_perms("reports.view_worklist")


# OpenAPI: the small answers' shapes here, the report payloads' in serializers.py.
WRITES = error_responses(400, 403, 404, 409)
READS = error_responses(403, 404)
VERSION_ANSWER = inline_serializer("ReportVersionCreated", {"version": VersionSerializer(),
                                                           "sentences": SentenceSerializer(many=True, required=False)})


def _study(uid: str) -> Study:
    return get_object_or_404(Study, study_instance_uid=uid)


class StudyReport(APIView):
    """GET the report with its AI result. Reading changes nothing; a radiologist claims with POST .../claim."""

    permission_classes = [CanViewReports]

    @extend_schema(responses={200: ReportPayloadSerializer, **READS})
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

    @extend_schema(responses={200: ReportStateSerializer, **READS})
    def get(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        report = Report.objects.filter(study=study).first()
        result_id = InferenceResult.objects.filter(study=study).values_list("pk", flat=True).first()
        return Response(state_payload(study, report, _latest_job(study), result_id))


class ClaimReport(APIView):
    """POST {take_over}: become the report's reader (in review). Another reader's report: 409 ``claimed``
    unless ``take_over`` is true; a take-over is audited with the previous reader."""

    permission_classes = [CanEditReports]

    @extend_schema(request=ClaimRequest, responses={200: inline_serializer("ReportClaimed", {
        "status": serializers.CharField(), "reader": serializers.CharField(),
        "took_over_from": serializers.CharField(allow_null=True)}), **WRITES})
    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        body = validated(ClaimRequest, request.data)
        report, previous = versions.claim(study, request.user, body["take_over"])
        return Response({"status": report.status, "reader": request.user.username, "took_over_from": previous})


class ReportVersions(APIView):
    """POST {text, base_number}: a new radiologist version; 409 stale/locked instead of overwriting."""

    permission_classes = [CanEditReports]

    @extend_schema(request=SaveRequest, responses={201: VERSION_ANSWER, **WRITES})
    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        body = validated(SaveRequest, request.data)
        version = versions.save_version(study, request.user, body["text"], body["base_number"])
        result = InferenceResult.objects.filter(study=study).first()
        return Response({"version": VersionSerializer(version).data,
                         "sentences": sentences.link(version.text, analysis_of(result))},
                        status=status.HTTP_201_CREATED)


class SignReport(APIView):
    """POST {number, radpeer_score, radpeer_comment}: sign the current version and lock the report."""

    permission_classes = [CanSignReports]

    @extend_schema(request=SignRequest, responses={200: inline_serializer("ReportSigned", {
        "status": serializers.CharField(), "signed_by": serializers.CharField(),
        "signed_at": serializers.DateTimeField(), "signed_number": serializers.IntegerField(),
        "radpeer": serializers.DictField(), "locked": serializers.BooleanField()}), **WRITES})
    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        body = validated(SignRequest, request.data)
        report = versions.sign(study, request.user, body["number"], body.get("radpeer_score"),
                               body.get("radpeer_comment"))
        return Response({"status": report.status, "signed_by": request.user.username,
                         "signed_at": report.signed_at.isoformat(), "signed_number": report.signed_number,
                         "radpeer": {"score": report.radpeer_score or None, "comment": report.radpeer_comment},
                         "locked": True})


class ReportAddenda(APIView):
    """POST {text}: an addendum to a signed report (the signed text itself never changes)."""

    permission_classes = [CanSignReports]

    @extend_schema(request=AddendumRequest, responses={201: VERSION_ANSWER, **WRITES})
    def post(self, request, study_instance_uid):
        study = _study(study_instance_uid)
        version = versions.add_addendum(study, request.user, validated(AddendumRequest, request.data)["text"])
        return Response({"version": VersionSerializer(version).data}, status=status.HTTP_201_CREATED)


class ReportDiff(APIView):
    """GET ?from=&to=: word-level diff between two versions (default: AI draft -> current)."""

    permission_classes = [CanViewReports]

    @extend_schema(parameters=[DiffQuery], responses={200: ReportDiffSerializer, **error_responses(400, 403, 404)})
    def get(self, request, study_instance_uid):
        report = get_object_or_404(Report, study__study_instance_uid=study_instance_uid)
        asked = validated(DiffQuery, request.query_params)
        texts = dict(report.versions.values_list("number", "text"))
        ai_draft = report.versions.ai_draft()
        defaults = {"from": ai_draft.number if ai_draft else None, "to": report.current_number}
        chosen = {}
        for key in ("from", "to"):
            chosen[key] = asked.get(key, defaults[key])
            if chosen[key] not in texts:
                raise NotFound(f"no version {chosen[key]} ({key})")
        return Response({"from": chosen["from"], "to": chosen["to"],
                         **word_diff(texts[chosen["from"]], texts[chosen["to"]])})


class RetrySRExport(APIView):
    """POST: export the newest result's DICOM SR again (after a failure the reader and the admin see)."""

    permission_classes = [require_perms("inference.queue_job")]

    @extend_schema(request=None, responses={202: inline_serializer("SRExportQueued", {
        "result_id": serializers.IntegerField(), "sr_status": serializers.CharField(),
        "sr_error": serializers.CharField()}), **error_responses(403, 404)})
    def post(self, request, study_instance_uid):
        result = InferenceResult.objects.filter(study__study_instance_uid=study_instance_uid).first()
        if result is None:
            raise NotFound("no result for this study yet")
        dispatch_sr_export(result.pk)
        result.refresh_from_db(fields=["sr_status", "sr_error"])
        return Response({"result_id": result.pk, "sr_status": result.sr_status, "sr_error": result.sr_error},
                        status=status.HTTP_202_ACCEPTED)


class Worklist(APIView):
    """GET the reading worklist, newest received first (or ?ordering=); filters ?status=&hide=&date_from=
    &date_to=&reader=&mine=&unread= (see worklist.py). ``qa_review``: 'QA reviewed: agreed' or '... changed to
    3a' on a peer-reviewed study, shown to its reader and to QA reviewers only (null otherwise)."""

    permission_classes = [CanViewWorklist]
    pagination_class = Pagination

    @extend_schema(parameters=[WorklistQuery], responses={200: WorklistRowSerializer(many=True),
                                                          **error_responses(400, 403)})
    def get(self, request):
        filters, paginator = worklist.Filters(**validated(WorklistQuery, request.query_params)), self.pagination_class()
        rows = paginator.paginate_fetch(request, lambda offset, limit: worklist.page(filters, offset, limit,
                                                                                     request.user))
        from backend.qa.services import markers_for  # the peer review's result, for its reader (one query)

        markers = markers_for([s.pk for s in rows], request.user)
        return paginator.get_paginated_response([{**worklist_row(s), "qa_review": markers.get(s.pk)} for s in rows])
