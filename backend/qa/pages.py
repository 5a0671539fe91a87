"""The QA reviewer's HTML pages: the open cases and one case with its review form (a plain CSRF-protected
POST, no script). Login is required and ``qa.review_case`` is checked here on the server (403 otherwise);
a case the user read themselves is refused (403), never shown with a form."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from rest_framework.exceptions import ValidationError

from backend.accounts.roles import role_of
from backend.api_errors import validation_payload
from backend.errors import DomainError
from backend.reports.radpeer import SCORES

from . import services
from .models import QACase
from .serializers import ReviewRequest

reviewer_page = permission_required("qa.review_case", raise_exception=True)


@require_http_methods(["GET"])
@login_required
@reviewer_page
def queue_page(request):
    open_cases = [services.queue_row(c) for c in services.queue(request.user)[:200]]
    reviewed = [services.queue_row(c)
                for c in services.queue(request.user, QACase.REVIEWED).filter(reviewer=request.user)[:50]]
    return render(request, "qa/queue.html", {"role": role_of(request.user) or "none", "open_cases": open_cases,
                                             "reviewed": reviewed})


@require_http_methods(["GET", "POST"])
@login_required
@reviewer_page
def case_page(request, pk: int):
    case = get_object_or_404(QACase.objects.select_related("report__study", "reviewer"), pk=pk)
    if services.is_own(case, request.user):
        exc = services.OwnCase("you read this report; a peer review must come from someone else")
        services.record_refusal(exc, pk, request.user, request)
        return render(request, "qa/refused.html", {"role": role_of(request.user) or "none", "message": exc.detail},
                      status=403)
    error, status, form = None, 200, {}
    if request.method == "POST":
        form = request.POST
        body = ReviewRequest(data=request.POST)
        if not body.is_valid():  # the message the API would answer
            error, status = validation_payload(ValidationError(body.errors))["detail"], 400
        else:
            data = body.validated_data
            try:
                services.review(pk, request.user, data["decision"], data.get("score"), data.get("reason"),
                                data["report_version"], request=request)
                return redirect("qa-case-page", pk=pk)
            except DomainError as exc:
                if exc.status == 403:  # services.review leaves refused requests (403) to the caller's audit
                    services.record_refusal(exc, pk, request.user, request)
                error, status = exc.detail, exc.status
        case.refresh_from_db()
    return render(request, "qa/case.html", {
        "role": role_of(request.user) or "none", "case": services.case_payload(case, request.user),
        "scores": SCORES, "error": error, "form": form}, status=status)
