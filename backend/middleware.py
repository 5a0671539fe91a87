"""Turn service outages raised outside DRF views into JSON 503 answers (and refused data into 400)."""

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
