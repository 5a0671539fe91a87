from rest_framework import serializers

from .models import Series, Study


class SeriesSerializer(serializers.ModelSerializer):
    class Meta:
        model = Series
        fields = ["series_instance_uid", "series_number", "modality", "series_description", "manufacturer",
                  "plane", "sequence_type", "sequence_rule", "num_instances"]


class StudySerializer(serializers.ModelSerializer):
    class Meta:
        model = Study
        fields = ["study_instance_uid", "patient_id", "patient_name", "accession_number", "study_date",
                  "study_description", "body_part", "modalities", "num_series", "num_instances", "source",
                  "received_at"]


class StudyDetailSerializer(StudySerializer):
    series = SeriesSerializer(many=True, read_only=True)

    class Meta(StudySerializer.Meta):
        fields = StudySerializer.Meta.fields + ["series"]


class StableStudySerializer(serializers.Serializer):
    study_instance_uid = serializers.RegexField(r"^[0-9.]{1,64}$")
    orthanc_id = serializers.CharField(max_length=64, required=False, allow_blank=True)


class StudyUploadRequest(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), allow_empty=False,
        help_text="DICOM Part-10 files and/or zips of them",  # each file is checked by studies.dicom_files
        error_messages={k: "send DICOM files or zips in the 'files' field" for k in ("required", "empty")})


# ---- answers (the OpenAPI schema's; the views and ingest write them) --------------------------------------------

class UploadedStudySerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField()
    created = serializers.BooleanField()
    instances_received = serializers.IntegerField()
    instances_new = serializers.IntegerField()


class UploadSummarySerializer(serializers.Serializer):
    studies = UploadedStudySerializer(many=True)


class StableStudyIndexedSerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField()
    created = serializers.BooleanField()


class ResyncSummarySerializer(serializers.Serializer):
    studies = serializers.IntegerField(help_text="studies Orthanc has")
    created = serializers.IntegerField()
    removed = serializers.IntegerField()
    kept_protected = serializers.IntegerField(help_text="gone from Orthanc, kept for their reports")
    unreadable = serializers.IntegerField(help_text="listed by Orthanc without DICOMweb metadata")


class ModalitySerializer(serializers.Serializer):
    name = serializers.CharField()
    ae_title = serializers.CharField(allow_null=True)
    host = serializers.CharField(allow_null=True)
    port = serializers.IntegerField(allow_null=True)
    may_store = serializers.BooleanField()


class DicomIntakeSerializer(serializers.Serializer):
    """As Orthanc reports it (a key Orthanc leaves out is null)."""

    ae_title = serializers.CharField(allow_null=True)
    port = serializers.IntegerField(allow_null=True)
    modalities = ModalitySerializer(many=True)
