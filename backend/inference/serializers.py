from rest_framework import serializers

from backend.serializer_fields import StrictCharField

from .models import InferenceJob, InferenceResult, ModelVersion


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "name", "version", "state", "metrics", "synthetic_training", "created_at", "promoted_at"]


class InferenceJobSerializer(serializers.ModelSerializer):
    study_instance_uid = serializers.CharField(source="study.study_instance_uid", read_only=True)
    model_version = ModelVersionSerializer(read_only=True)
    has_result = serializers.SerializerMethodField()

    class Meta:
        model = InferenceJob
        fields = ["id", "study_instance_uid", "status", "trigger", "attempts", "stage", "progress", "error",
                  "model_version", "timings", "created_at", "started_at", "finished_at", "has_result"]

    def get_has_result(self, job) -> bool:
        return hasattr(job, "result")


class InferenceResultSerializer(serializers.ModelSerializer):
    job = serializers.IntegerField(source="job_id", read_only=True)
    model_version = ModelVersionSerializer(read_only=True)

    class Meta:
        model = InferenceResult
        fields = ["job", "model_version", "data", "created_at", "sr_status", "sr_error"]


class JobFilter(serializers.Serializer):
    study = StrictCharField(required=False, help_text="StudyInstanceUID")
    status = serializers.ChoiceField(choices=InferenceJob.STATUSES, required=False)
