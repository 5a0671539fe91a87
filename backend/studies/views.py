"""Study API: upload, list/detail, Orthanc announcements, re-sync. Thin: the work is in ingest."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import CanResyncIndex, CanUploadStudies, CanViewStudies
from backend.api_errors import error_responses
from backend.errors import Forbidden, NotFound

from . import webhook
from .dicom_files import RequestTooLarge, UploadWorkspace, read_upload
from .ingest import index_from_orthanc, resync_from_orthanc, store_upload
from .orthanc.client import get_client
from .models import Study
from .serializers import (DicomIntakeSerializer, ResyncSummarySerializer, StableStudyIndexedSerializer,
                          StableStudySerializer, StudyDetailSerializer, StudySerializer, StudyUploadRequest,
                          UploadSummarySerializer)


class StudyList(generics.ListAPIView):
    permission_classes = [CanViewStudies]
    serializer_class = StudySerializer
    queryset = Study.objects.all()


class StudyDetail(generics.RetrieveAPIView):
    permission_classes = [CanViewStudies]
    serializer_class = StudyDetailSerializer
    queryset = Study.objects.prefetch_related("series")
    lookup_field = "study_instance_uid"


class StudyUpload(APIView):
    """POST multipart ``files`` (DICOM files and/or zips). All valid, or 400 naming each bad file."""

    permission_classes = [CanUploadStudies]
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": StudyUploadRequest},
                   responses={201: UploadSummarySerializer, **error_responses(400, 401, 403, 413, 503)})
    def post(self, request):
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.SPINEAGENT_MAX_UPLOAD_BYTES:
            raise _too_large()  # refused before the body is read
        upload = StudyUploadRequest(data=request.data)
        upload.is_valid(raise_exception=True)
        uploaded = upload.validated_data["files"]
        if sum(f.size for f in uploaded) > settings.SPINEAGENT_MAX_UPLOAD_BYTES:
            raise _too_large()
        with UploadWorkspace() as workspace:
            reports = store_upload(read_upload(((f.name, f) for f in uploaded), workspace))
        return Response({"studies": [
            {"study_instance_uid": r.study.study_instance_uid, "created": r.created,
             "instances_received": r.instances_received, "instances_new": r.instances_new}
            for r in reports
        ]}, status=status.HTTP_201_CREATED)


def _too_large() -> RequestTooLarge:
    return RequestTooLarge(f"an upload may be at most {settings.SPINEAGENT_MAX_UPLOAD_BYTES} bytes; nothing was stored")


class OrthancStableStudy(APIView):
    """Called by our Orthanc plugin on STABLE_STUDY; authenticated by HMAC, not by a user."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # server-to-server; a C-STORE backlog must not hit the anonymous rate

    @extend_schema(request=StableStudySerializer,
                   responses={200: StableStudyIndexedSerializer, **error_responses(400, 403, 404, 503)})
    def post(self, request):
        body = request.body
        problem = webhook.verify(settings.ORTHANC_WEBHOOK_SECRET, request.headers.get("X-SpineAgent-Timestamp"),
                                 request.headers.get("X-SpineAgent-Signature"), body)
        if not problem and not webhook.first_use(request.headers["X-SpineAgent-Signature"]):
            problem = "replayed signature"
        if problem:
            raise Forbidden(problem)
        serializer = StableStudySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            study, created = index_from_orthanc(serializer.validated_data["study_instance_uid"])
        except LookupError as exc:  # Orthanc does not have it (any more)
            raise NotFound(str(exc)) from None
        return Response({"study_instance_uid": study.study_instance_uid, "created": created})


class DicomModalities(APIView):
    """GET: our AE title and port, and the modalities allowed to C-STORE, as Orthanc enforces them now.

    The list is configuration (``SPINEAGENT_DICOM_MODALITIES`` of the Orthanc process, registered by our
    plugin at start); anyone else's C-STORE is refused."""

    permission_classes = [CanUploadStudies]

    @extend_schema(responses={200: DicomIntakeSerializer, **error_responses(401, 403, 503)})
    def get(self, request):
        return Response(get_client().dicom_intake())


class StudyResync(APIView):
    permission_classes = [CanResyncIndex]

    @extend_schema(request=None, responses={200: ResyncSummarySerializer, **error_responses(401, 403, 503)})
    def post(self, request):
        return Response(resync_from_orthanc())
