"""Who am I (the role and permissions the viewer uses to show or hide controls), and logging out everywhere."""

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.api_errors import error_responses
from backend.audit.log import record
from backend.audit.models import AuditEvent
from backend.errors import NotFound

from .models import NoticeAcknowledgement
from .roles import role_of
from .tokens import revoke_credentials


def _log_out_everywhere(request) -> dict[str, int]:
    user = request.user
    ended = revoke_credentials(user)
    record(AuditEvent.ADMIN, "user-credentials", user.get_username(), user=user, request=request,
           detail={"logout_all": ended})
    logout(request)
    return ended


class MeView(APIView):
    @extend_schema(responses=inline_serializer("Me", {
        "username": serializers.CharField(),
        "role": serializers.CharField(allow_null=True),
        "permissions": serializers.ListField(child=serializers.CharField()),
    }))
    def get(self, request):
        user = request.user
        return Response({
            "username": user.username,
            "role": role_of(user),
            "permissions": sorted(user.get_all_permissions()),
        })


class LogoutAll(APIView):
    """POST: end every session and delete every API token of the caller (a lost laptop, a leaked token)."""

    @extend_schema(request=None, responses=inline_serializer("LogoutAll", {
        "tokens": serializers.IntegerField(), "sessions": serializers.IntegerField()}))
    def post(self, request):
        return Response(_log_out_everywhere(request._request))


@require_POST
@login_required
def logout_everywhere(request):
    """The page form of LogoutAll (CSRF-checked by Django's middleware)."""
    _log_out_everywhere(request)
    return redirect("login")


class AcknowledgeNotice(APIView):
    """POST: the caller acknowledged a site notice (the viewer's investigational-use notice); it is not shown to
    them again, in any browser. Idempotent; 404 for a notice we do not know."""

    @extend_schema(request=None, responses={200: inline_serializer("NoticeAcknowledged", {
        "notice": serializers.CharField(), "acknowledged_at": serializers.DateTimeField()}), **error_responses(404)})
    def post(self, request, notice):
        if notice not in dict(NoticeAcknowledgement.NOTICES):
            raise NotFound(f"no notice {notice!r}")
        row, _ = NoticeAcknowledgement.objects.get_or_create(user=request.user, notice=notice)
        return Response({"notice": row.notice, "acknowledged_at": row.acknowledged_at.isoformat()})
