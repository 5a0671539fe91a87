"""Site-wide response rules: service outages raised outside DRF views become JSON 503 answers (and refused data
400); every response carries our Content-Security-Policy."""

from django.conf import settings
from django.db import DataError, OperationalError
from django.http import JsonResponse

from .errors import ServiceUnavailable, invalid_data_payload


class ServiceUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError):
            exception = ServiceUnavailable("PostgreSQL", "database connection failed")
        if isinstance(exception, ServiceUnavailable):
            return JsonResponse(exception.as_dict(), status=503, headers={"Retry-After": "10"})
        if isinstance(exception, DataError):
            return JsonResponse(invalid_data_payload(exception), status=400)
        return None


class ContentSecurityPolicyMiddleware:
    """``Content-Security-Policy`` on every answer: the pages' strict policy, or the viewer's where OHIF needs
    workers from blob: URLs and WebAssembly (settings.SPINEAGENT_CSP_PAGES / SPINEAGENT_CSP_VIEWER).

    No policy allows inline script: our pages load theirs from files, and scripts/build_viewer.sh moves
    OHIF's two inline scripts into files. docker/nginx/nginx.conf repeats the viewer policy for the files it
    serves itself; tests/deploy/test_compose.py checks that the two stay equal.
    """

    VIEWER_PREFIXES = ("/viewer", "/viewer-ext/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            viewer = request.path.startswith(self.VIEWER_PREFIXES)
            response["Content-Security-Policy"] = (settings.SPINEAGENT_CSP_VIEWER if viewer
                                                   else settings.SPINEAGENT_CSP_PAGES)
        return response
