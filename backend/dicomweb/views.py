"""``/dicom-web/``: QIDO-RS and WADO-RS for users with image access; STOW-RS for users who may upload."""

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
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
        response = StreamingHttpResponse(proxy.stream_body(upstream), status=upstream.status_code)
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
        try:
            boundary = stow.boundary_of(request.META.get("CONTENT_TYPE", ""))
            body = stow.body_stream(django_request)
        except stow.UnsupportedMedia as exc:
            return JsonResponse({"error": "unsupported_media_type", "detail": str(exc)}, status=415)
        except stow.LengthRequired as exc:
            return JsonResponse({"error": "length_required", "detail": str(exc)}, status=411)
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
