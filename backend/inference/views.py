"""Jobs, results and model versions. Thin views over jobs.py and registry.py."""

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from backend import celery
from backend.accounts.permissions import CanManageModelVersions, CanQueueJobs, CanViewJobs, CanViewModelVersions
from backend.api_errors import error_responses
from backend.errors import Conflict
from backend.studies.models import Study

from . import jobs, registry
from .models import InferenceJob, InferenceResult, ModelVersion
from .serializers import InferenceJobSerializer, InferenceResultSerializer, JobFilter, ModelVersionSerializer


@extend_schema_view(get=extend_schema(parameters=[JobFilter], responses={200: InferenceJobSerializer(many=True),
                                                                     **error_responses(400, 401, 403)}))
class JobList(generics.ListAPIView):
    permission_classes = [CanViewJobs]
    serializer_class = InferenceJobSerializer

    def get_queryset(self):
        query = JobFilter(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        qs = InferenceJob.objects.select_related("study", "model_version", "result")
        if uid := query.validated_data.get("study"):
            qs = qs.filter(study__study_instance_uid=uid)
        if state := query.validated_data.get("status"):
            qs = qs.filter(status=state)
        return qs


class JobDetail(generics.RetrieveAPIView):
    permission_classes = [CanViewJobs]
    serializer_class = InferenceJobSerializer
    queryset = InferenceJob.objects.select_related("study", "model_version")


class QueueJob(APIView):
    """POST: queue a new (manual) job for a study with the active model version."""

    permission_classes = [CanQueueJobs]

    @extend_schema(request=None, responses={201: InferenceJobSerializer, **error_responses(401, 403, 404, 503)})
    def post(self, request, study_instance_uid):
        study = get_object_or_404(Study, study_instance_uid=study_instance_uid)
        celery.require_broker()
        job = jobs.create_job(study)
        return Response(InferenceJobSerializer(job).data, status=status.HTTP_201_CREATED)


class LatestResult(generics.RetrieveAPIView):
    """The newest result for a study."""

    permission_classes = [CanViewJobs]
    serializer_class = InferenceResultSerializer

    def get_object(self):
        result = (InferenceResult.objects.select_related("model_version")
                  .filter(study__study_instance_uid=self.kwargs["study_instance_uid"]).first())
        if result is None:
            raise Http404("no result for this study yet")
        return result


class ModelVersionList(generics.ListAPIView):
    permission_classes = [CanViewModelVersions]
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.all()


class PromoteModelVersion(APIView):
    permission_classes = [CanManageModelVersions]

    @extend_schema(request=None, responses={200: ModelVersionSerializer, **error_responses(401, 403, 404, 409)})
    def post(self, request, pk):
        mv = get_object_or_404(ModelVersion, pk=pk)
        # A training run's candidate goes through the run's promotion gate (backend/training/promotion.py);
        # one that was promoted there once may be made active again here (a rollback).
        run = mv.training_runs.order_by("-pk").first()
        if run is not None and run.decision != "promoted":
            raise Conflict(f"{mv.name} {mv.version} is the candidate of training run {run.pk}: promote it there "
                           f"(POST /api/training/runs/{run.pk}/promote), where the promotion gate applies",
                           training_run=run.pk)
        mv = registry.promote(mv)
        return Response(ModelVersionSerializer(mv).data)
