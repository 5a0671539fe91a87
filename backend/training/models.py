"""Dataset versions (immutable snapshots of verified labels) and the training runs made from them."""

from django.conf import settings
from django.db import models

from backend.inference.models import ModelVersion


class ImmutableDataset(RuntimeError):
    """A dataset version was about to change after creation; make a new version instead."""


class DatasetVersionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableDataset("dataset versions are immutable; snapshot a new version instead")

    def bulk_update(self, objs, fields, batch_size=None):
        raise ImmutableDataset("dataset versions are immutable; snapshot a new version instead")


class DatasetVersion(models.Model):
    """A frozen set of verified labels with patient-level train/validation/test splits.

    ``items`` is written once at creation and never changed: a model's metrics
    always point at exactly the labels it was trained and tested on. Changes are
    refused three times over: ``save()`` of an existing row, ``QuerySet.update``,
    and a database trigger (migration 0002) for anything that bypasses the ORM.
    """

    name = models.CharField(max_length=128)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                   on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    split_seed = models.IntegerField(default=0)
    # [{"study_instance_uid", "patient_id", "split": "train"|"val"|"test", "labels": {cond: 1|0|-1}, ...}]
    items = models.JSONField()
    counts = models.JSONField(default=dict, blank=True)  # per split and per condition, for the admin
    sha256 = models.CharField(max_length=64)  # of the canonical JSON of items
    # What was snapshotted, for the record: the filters and split ratios the items were made with.
    filters = models.JSONField(default=dict, blank=True)
    ratios = models.JSONField(default=dict, blank=True)
    # True when any item comes from a synthetic phantom study: models trained on it are labelled synthetic.
    synthetic = models.BooleanField(default=False)

    objects = DatasetVersionQuerySet.as_manager()

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_dataset_name_version")]
        permissions = [("manage_datasets", "Can snapshot and export dataset versions")]

    def __str__(self):
        return f"dataset {self.name} v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableDataset(f"{self} is immutable; snapshot a new version instead")
        super().save(*args, **kwargs)


class TrainingRun(models.Model):
    """One retraining of the heads on a dataset version; ends with a candidate ModelVersion."""

    QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
    STATUSES = [(s, s) for s in (QUEUED, RUNNING, SUCCEEDED, FAILED)]

    dataset = models.ForeignKey(DatasetVersion, related_name="runs", on_delete=models.PROTECT)
    base_model = models.ForeignKey(ModelVersion, related_name="+", on_delete=models.PROTECT)
    candidate = models.ForeignKey(ModelVersion, null=True, blank=True, related_name="training_runs",
                                  on_delete=models.SET_NULL)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED, db_index=True)
    stage = models.CharField(max_length=64, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                   on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # One line per stage the run went through ("<ISO time> <progress>% <stage>"), for the run's page.
    log = models.TextField(blank=True)
    # The admin's decision on the candidate (promotion.py): promoted or rejected, why, by whom, and the
    # promotion gate as it stood then (passed, reasons, the numbers compared).
    PROMOTED, REJECTED = "promoted", "rejected"
    decision = models.CharField(max_length=16, blank=True, choices=[(PROMOTED, PROMOTED), (REJECTED, REJECTED)])
    decision_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                   on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(null=True, blank=True)
    gate = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("run_training", "Can start training runs")]

    def __str__(self):
        return f"training run {self.pk} on {self.dataset} ({self.status})"
