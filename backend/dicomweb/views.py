"""``/dicom-web/``: QIDO-RS and WADO-RS for authenticated users with image access.

Two ways out for the bytes: this gateway streams Orthanc's answer itself (the demo, any deployment without
our nginx), or, in the compose deployment, nginx asks ``fast_path_decision`` first (``auth_request``) and,
when it allows, takes the bytes straight from Orthanc. The decision allows exactly what the gateway's own
fast path allows (a credential that passed the full check moments ago and was not revoked since, a path of
the grammar, a clean raw target) and records the same audit event; everything else is declined, and nginx
then hands the request to this gateway, which decides as it always does.
"""

from django.http import HttpResponse, JsonResponse, QueryDict, StreamingHttpResponse
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


PREFIX = "/dicom-web/"
# What nginx copies from the decision onto the bytes it serves (the headers Django's middleware sets on every
# answer, so the fast path's answers carry the same ones); see docker/nginx/nginx.conf.
UPSTREAM_HEADER = "X-SpineAgent-Upstream"


def fast_path_decision(request):
    """nginx's ``auth_request`` for a ``/dicom-web/`` read: 200 with the grammar's rebuilt upstream path when
    the gateway's fast path would serve it, else 403 (nginx then sends the request to the gateway itself).

    Reveals nothing the caller could not learn by asking the gateway; holds no Orthanc credential.
    """
    raw = request.headers.get("X-Original-URI", "")
    target, _, query = raw.partition("?")
    if (request.headers.get("X-Original-Method", "GET") != "GET" or not target.startswith(PREFIX)
            or "%" in target or not paths.raw_target_is_clean(raw)):
        return HttpResponse(status=403)
    resource = paths.parse(target[len(PREFIX):])
    if resource is None or not access_cache.is_allowed(access_cache.credential_key(request)):
        return HttpResponse(status=403)
    request.dicomweb_resource = resource  # what the audit middleware records, as for the gateway
    request.dicomweb_query = QueryDict(query)
    request.dicomweb_path = target
    return HttpResponse(status=200, headers={UPSTREAM_HEADER: resource.upstream,
                                             "Cache-Control": "private, max-age=0"})
