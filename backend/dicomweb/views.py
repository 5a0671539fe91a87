"""``/dicom-web/``: QIDO-RS and WADO-RS for users with image access; STOW-RS for users who may upload.

Two ways out for the bytes of a read: this gateway streams Orthanc's answer itself (the demo, any deployment
without our nginx), or, in the compose deployment, nginx asks ``fast_path_decision`` first (``auth_request``)
and, when it allows, takes the bytes straight from Orthanc. The decision allows exactly what the gateway's own
fast path allows (a credential that passed the full check moments ago and was not revoked since, a path of
the grammar, a clean raw target) and records the same audit event; everything else is declined, and nginx
then hands the request to this gateway, which decides as it always does.
"""

from django.conf import settings
from django.http import HttpResponse, JsonResponse, QueryDict, StreamingHttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from backend.accounts.permissions import CanUploadStudies, CanViewImages
from backend.studies.dicom_files import InvalidUpload, UploadWorkspace, validate_files
from backend.studies.ingest import store_upload

from . import access_cache, paths, proxy, stow

DICOM_JSON = "application/dicom+json"


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

    def get_permissions(self):
        return [CanUploadStudies()] if self.request.method == "POST" else super().get_permissions()

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
        response = StreamingHttpResponse(proxy.stream_body(upstream), status=upstream.status)
        for name in proxy.FORWARDED_RESPONSE_HEADERS:
            if name in upstream.headers:
                response[name] = upstream.headers[name]
        response["Cache-Control"] = "private, max-age=0"
        return response

    def post(self, request, path: str):
        """STOW-RS: validated and stored like an API upload, all or nothing (see stow.py)."""
        resource = paths.parse(path)
        if resource is None or resource.resource not in ("search", "study") or resource.segments[0] != "studies":
            return JsonResponse({"error": "not_found", "detail": "STOW-RS is POST /dicom-web/studies[/<uid>]"},
                                status=404)
        django_request = request._request
        boundary = stow.boundary_of(request.META.get("CONTENT_TYPE", ""))  # 415 or 411 (stow's refusals)
        body = stow.body_stream(django_request)
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.SPINEAGENT_MAX_UPLOAD_BYTES:
            return JsonResponse({"error": "too_large", "detail": f"a STOW-RS request may be at most "
                                 f"{settings.SPINEAGENT_MAX_UPLOAD_BYTES} bytes"}, status=413)
        part_paths: dict[str, object] = {}
        with UploadWorkspace() as workspace:  # the refusal below still reads the parts: inside the workspace
            try:
                def parts():
                    for name, file_path in stow.split_parts(body, boundary, workspace):
                        part_paths[name] = file_path
                        yield name, file_path

                instances = validate_files(parts())
                if resource.study and (other := {str(i.dataset.StudyInstanceUID) for i in instances} - {resource.study}):
                    raise InvalidUpload([stow.FileProblem(i.name, f"belongs to study {i.dataset.StudyInstanceUID}, "
                                                          f"not {resource.study}")
                                         for i in instances if str(i.dataset.StudyInstanceUID) in other])
                reports = store_upload(instances)
            except InvalidUpload as exc:
                response = JsonResponse(stow.failed_response(exc.problems, part_paths),
                                        status=413 if exc.status == 413 else 409, content_type=DICOM_JSON)
                response["Warning"] = ", ".join(stow.warning_headers(exc.problems))
                return response
            body = stow.stored_response(reports, request.build_absolute_uri("/dicom-web").rstrip("/"))
        return JsonResponse(body, status=200, content_type=DICOM_JSON)

PREFIX = "/dicom-web/"
# What nginx copies from the decision onto the bytes it serves (the headers Django's middleware sets on every
# answer, so the fast path's answers carry the same ones); see docker/nginx/nginx.conf.
UPSTREAM_HEADER = "X-SpineAgent-Upstream"


def read_decision(request):
    """(resource, target path, query) that nginx may serve straight from Orthanc for this ``auth_request``, or
    None: not a GET, not a clean path of the grammar, or no credential that passed the full check moments ago
    and was not revoked since. The one rule for both ways of answering (this view and ``quick_decision``)."""
    raw = request.headers.get("X-Original-URI", "")
    target, _, query = raw.partition("?")
    if (request.headers.get("X-Original-Method", "GET") != "GET" or not target.startswith(PREFIX)
            or "%" in target or not paths.raw_target_is_clean(raw)):
        return None
    resource = paths.parse(target[len(PREFIX):])
    if resource is None or not access_cache.is_allowed(access_cache.credential_key(request)):
        return None
    return resource, target, query


def fast_path_decision(request):
    """nginx's ``auth_request`` for a ``/dicom-web/`` read: 200 with the grammar's rebuilt upstream path when
    the gateway's fast path would serve it, else 403 (nginx then sends the request to the gateway itself).

    Reveals nothing the caller could not learn by asking the gateway; holds no Orthanc credential.
    """
    decided = read_decision(request)
    if decided is None:
        return HttpResponse(status=403)
    resource, target, query = decided
    request.dicomweb_resource = resource  # what the audit middleware records, as for the gateway
    request.dicomweb_query = QueryDict(query)
    request.dicomweb_path = target
    return HttpResponse(status=200, headers={UPSTREAM_HEADER: resource.upstream,
                                             "Cache-Control": "private, max-age=0"})
