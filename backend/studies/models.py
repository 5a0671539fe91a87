"""The study index: what Orthanc holds, as rows we can filter, join and permission.

Orthanc stays the store of record for pixels; these rows are rebuilt from it by
``manage.py sync_orthanc``. UIDs are unique, so indexing the same study again
updates rows instead of duplicating them.
"""

from django.db import models

from spinefm.sequences import SEQUENCE_TYPES


class Study(models.Model):
    study_instance_uid = models.CharField(max_length=64, unique=True)
    orthanc_id = models.CharField(max_length=64, blank=True)
    patient_id = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=256, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    patient_birth_date = models.CharField(max_length=8, blank=True)
    accession_number = models.CharField(max_length=64, blank=True)
    study_date = models.DateField(null=True, blank=True)
    study_description = models.CharField(max_length=256, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    modalities = models.CharField(max_length=64, blank=True)
    num_series = models.PositiveIntegerField(default=0)
    num_instances = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=16, default="upload")  # upload | orthanc | sync
    received_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]
        permissions = [
            ("view_images", "Can read images through the DICOMweb gateway"),
            ("upload_study", "Can upload DICOM studies"),
            ("resync_index", "Can re-sync the study index from Orthanc"),
        ]
        indexes = [models.Index(fields=["study_date"]), models.Index(fields=["received_at"])]

    def __str__(self):
        return self.study_instance_uid


class Series(models.Model):
    SEQUENCE_CHOICES = [(s, s) for s in SEQUENCE_TYPES]

    study = models.ForeignKey(Study, related_name="series", on_delete=models.CASCADE)
    series_instance_uid = models.CharField(max_length=64, unique=True)
    series_number = models.IntegerField(null=True, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    series_description = models.CharField(max_length=256, blank=True)
    manufacturer = models.CharField(max_length=128, blank=True)
    plane = models.CharField(max_length=16, blank=True)
    sequence_type = models.CharField(max_length=8, choices=SEQUENCE_CHOICES, default="OTHER")
    sequence_rule = models.CharField(max_length=32, blank=True)  # which rule of the table decided
    num_instances = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["series_number", "series_instance_uid"]
        verbose_name_plural = "series"

    def __str__(self):
        return f"{self.series_description or self.series_instance_uid} ({self.sequence_type})"


class Instance(models.Model):
    series = models.ForeignKey(Series, related_name="instances", on_delete=models.CASCADE)
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64, blank=True)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["instance_number", "sop_instance_uid"]

    def __str__(self):
        return self.sop_instance_uid
