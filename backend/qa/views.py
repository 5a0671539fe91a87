"""QA review API: the queue, one case, the review. Thin: the permission here, the request shapes in
serializers.py, the rules (and the audit of a refused review) in services.py; refusals are raised and
answered by the API's exception handler."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import require_perms
from backend.api_errors import error_responses

from . import services
from .models import QACase
from .serializers import QACaseSerializer, QAQueueSerializer, QueueQuery, ReviewRequest

CanReview = require_perms("qa.review_case")


class QAQueue(APIView):
    """GET ?status=open|reviewed: the cases the caller may review (never their own reads)."""

    permission_classes = [CanReview]

    @extend_schema(operation_id="qa_cases_list", parameters=[QueueQuery],
                   responses={200: QAQueueSerializer, **error_responses(400, 403)})
    def get(self, request):
        query = QueueQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        status = query.validated_data["status"]
        cases = services.queue(request.user, status)[:500]
        return Response({"status": status, "results": [services.queue_row(c) for c in cases]})


class QACaseDetail(APIView):
    """GET one case: AI draft, signed report, addenda, score and comment, viewer link (not for its reader)."""

    permission_classes = [CanReview]

    @extend_schema(responses={200: QACaseSerializer, **error_responses(403, 404)})
    def get(self, request, pk):
        case = get_object_or_404(QACase.objects.select_related("report__study", "reviewer"), pk=pk)
        if services.is_own(case, request.user):
            raise services.OwnCase("you read this report; it is reviewed by someone else")
        return Response(services.case_payload(case, request.user))


class QAReview(APIView):
    """POST {decision, score, reason, report_version}: the one review of a case; audited."""

    permission_classes = [CanReview]

    @extend_schema(request=ReviewRequest, responses={200: QACaseSerializer, **error_responses(400, 403, 404, 409)})
    def post(self, request, pk):
        body = ReviewRequest(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        case = services.review(pk, request.user, data["decision"], data.get("score"), data.get("reason"),
                               data["report_version"], request=request)
        case = QACase.objects.select_related("report__study", "reviewer").get(pk=case.pk)
        return Response(services.case_payload(case, request.user))
