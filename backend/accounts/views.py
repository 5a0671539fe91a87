"""Who am I: the role and permissions the viewer uses to show or hide controls."""

from rest_framework.response import Response
from rest_framework.views import APIView

from .roles import role_of


class MeView(APIView):
    def get(self, request):
        user = request.user
        return Response({
            "username": user.username,
            "role": role_of(user),
            "permissions": sorted(user.get_all_permissions()),
        })
