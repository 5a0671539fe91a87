"""Who am I: the role and permissions the viewer uses to show or hide controls."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .roles import role_of


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
