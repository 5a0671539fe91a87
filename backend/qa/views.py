"""QA review API: the queue, one case, the review. Thin: the permission here, the rules in services.py."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_response

from . import services
from .models import QACase
from .serializers import ReviewRequest

CanReview = require_perms("qa.review_case")
ERRORS = {400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT}


class QAQueue(APIView):
    """GET ?status=open|reviewed: the cases the caller may review (never their own reads)."""

    permission_classes = [CanReview]

    @extend_schema(operation_id="qa_cases_list",
                   parameters=[OpenApiParameter("status", str, enum=[QACase.OPEN, QACase.REVIEWED])],
                   responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT})
    def get(self, request):
        status = request.query_params.get("status") or QACase.OPEN
        if status not in (QACase.OPEN, QACase.REVIEWED):
            return Response({"error": "invalid", "detail": "status must be open or reviewed", "field": "status"},
                            status=400)
        cases = services.queue(request.user, status)[:500]
        return Response({"status": status, "results": [services.queue_row(c) for c in cases]})


class QACaseDetail(APIView):
    """GET one case: AI draft, signed report, addenda, score and comment, viewer link (not for its reader)."""

    permission_classes = [CanReview]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT})
    def get(self, request, pk):
        case = get_object_or_404(QACase.objects.select_related("report__study", "reviewer"), pk=pk)
        if services.is_own(case, request.user):
            return error_response(services.OwnCase("you read this report; it is reviewed by someone else"))
        return Response(services.case_payload(case, request.user))


class QAReview(APIView):
    """POST {decision, score, reason, report_version}: the one review of a case; audited."""

    permission_classes = [CanReview]

    @extend_schema(request=ReviewRequest, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request, pk):
        body = ReviewRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            case = services.review(pk, request.user, data["decision"], data.get("score"), data.get("reason"),
                                   data["report_version"], request=request)
        except services.QAError as exc:
            if exc.status != 403:  # 403s are audited as refused by the audit middleware
                services.record_refusal(exc, pk, request.user, request)
            return error_response(exc)
        case = QACase.objects.select_related("report__study", "reviewer").get(pk=case.pk)
        return Response(services.case_payload(case, request.user))
