"""``/dicom-web/``: QIDO-RS and WADO-RS for authenticated users with image access."""

from django.http import JsonResponse, StreamingHttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from backend.accounts.permissions import CanViewImages

from . import access_cache, paths, proxy


class PassThroughNegotiation(BaseContentNegotiation):
    """DICOMweb Accept headers (multipart/related; ...) are Orthanc's business, not DRF's."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DicomWebGateway(APIView):
    permission_classes = [CanViewImages]
    content_negotiation_class = PassThroughNegotiation
    schema = None  # binary passthrough: not described in the OpenAPI schema

    def dispatch(self, request, *args, **kwargs):
        # Fast path for reads by a credential that passed the full check moments ago (see access_cache).
        if request.method == "GET" and access_cache.is_allowed(access_cache.credential_key(request)):
            return self.forward(request, kwargs["path"])
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, path: str):
        access_cache.remember(access_cache.credential_key(request), request.user.pk)  # authenticated and permitted
        return self.forward(request, path)

    @staticmethod
    def forward(request, path: str):
        resource = paths.parse(path)
        raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
        if resource is None or not paths.raw_target_is_clean(raw):
            return JsonResponse({"error": "not_found", "detail": "not a DICOMweb resource this gateway serves"},
                                status=404)
        getattr(request, "_request", request).dicomweb_resource = resource  # what the audit middleware records
        upstream = proxy.open_upstream(resource.upstream, request.META.get("QUERY_STRING", ""), request.headers,
                                       request.get_host(), request.scheme)
        response = StreamingHttpResponse(proxy.stream_body(upstream), status=upstream.status_code)
        for name in proxy.FORWARDED_RESPONSE_HEADERS:
            if name in upstream.headers:
                response[name] = upstream.headers[name]
        response["Cache-Control"] = "private, max-age=0"
        return response
