"""Inference jobs, their results, and the registry of model versions."""

from django.db import models
from django.db.models import Q

from backend.studies.models import Study


class ModelVersion(models.Model):
    CANDIDATE, ACTIVE, RETIRED = "candidate", "active", "retired"
    STATES = [(CANDIDATE, "candidate"), (ACTIVE, "active"), (RETIRED, "retired")]

    name = models.CharField(max_length=128)
    version = models.CharField(max_length=64)
    path = models.CharField(max_length=512, help_text="bundle directory, or builtin:<name>")
    state = models.CharField(max_length=16, choices=STATES, default=CANDIDATE)
    metrics = models.JSONField(default=dict, blank=True)
    synthetic_training = models.BooleanField(default=True, help_text="trained on synthetic phantoms only")
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="unique_model_name_version"),
            models.UniqueConstraint(fields=["state"], condition=Q(state="active"), name="one_active_model"),
        ]
        permissions = [("manage_model_versions", "Can register, promote and retire model versions")]

    def __str__(self):
        return f"{self.name} {self.version} ({self.state})"

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}" + (" [synthetic]" if self.synthetic_training else "")


class InferenceJob(models.Model):
    QUEUED, RUNNING, SUCCEEDED, FAILED, UNSUPPORTED = "queued", "running", "succeeded", "failed", "unsupported"
    STATUSES = [(s, s) for s in (QUEUED, RUNNING, SUCCEEDED, FAILED, UNSUPPORTED)]
    TERMINAL = (SUCCEEDED, FAILED, UNSUPPORTED)
    AUTO, MANUAL = "auto", "manual"

    study = models.ForeignKey(Study, related_name="jobs", on_delete=models.CASCADE)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT)
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED)
    trigger = models.CharField(max_length=16, default=AUTO)
    attempts = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=64, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=128, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Sending the same study twice must not queue a second automatic job.
            models.UniqueConstraint(fields=["study"], condition=Q(trigger="auto"), name="one_auto_job_per_study"),
        ]
        indexes = [models.Index(fields=["status", "dispatched_at"]), models.Index(fields=["study", "-created_at"])]
        permissions = [("queue_job", "Can queue inference jobs")]

    def __str__(self):
        return f"job {self.pk} {self.status} ({self.study_id})"


class InferenceResult(models.Model):
    """Exactly one per job (OneToOne): a redelivered job cannot store a second result."""

    job = models.OneToOneField(InferenceJob, related_name="result", on_delete=models.CASCADE)
    study = models.ForeignKey(Study, related_name="inference_results", on_delete=models.CASCADE)
    model_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.PROTECT)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The DICOM SR export of this result (backend/inference/tasks.py): shown to the reader and the admin,
    # who can retry a failed one.
    SR_STATUSES = [(s, s) for s in ("queued", "stored", "exists", "nothing to export", "failed")]
    sr_status = models.CharField(max_length=24, choices=SR_STATUSES, blank=True)
    sr_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
