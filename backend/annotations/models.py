"""Label verification: the reports to label, what labelers extracted, what annotators decided.

A :class:`LabelTask` is one report text (bulk-imported or signed in the platform).
Labelers (rules, LLM) write :class:`Extraction` rows; annotators each write one
:class:`Annotation`; when enough annotations agree (or an adjudicator decides)
the task gets its one :class:`VerifiedLabels` row. Only ``VerifiedLabels`` feed
datasets and retraining; extractions are suggestions, never trusted as final.

Label sets are JSON keyed by condition key (``spinefm.conditions``) with the
ternary values 1 present / 0 absent / -1 uncertain, as everywhere else; ``level_labels``
add the level ({condition: {level | "study": value}}, see ``levels.py``), from which
``labels`` are derived so every per-condition consumer keeps working.
"""

from django.conf import settings
from django.db import models

from backend.reports.models import Report
from backend.studies.models import Study


class LabelTask(models.Model):
    IMPORTED, SIGNED = "imported", "signed"
    SOURCES = [(IMPORTED, "imported"), (SIGNED, "signed in SpineAgent")]
    OPEN, ADJUDICATION, DONE = "open", "adjudication", "done"
    STATUSES = [(OPEN, "open"), (ADJUDICATION, "needs adjudication"), (DONE, "done")]

    # Imported reports may arrive before (or without) their images: the UID is the join key.
    study = models.ForeignKey(Study, null=True, blank=True, related_name="label_tasks", on_delete=models.SET_NULL)
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    # Patient-level dataset splits need it; imported rows carry it, signed ones copy it from the Study.
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    source = models.CharField(max_length=16, choices=SOURCES)
    report = models.ForeignKey(Report, null=True, blank=True, related_name="label_tasks", on_delete=models.SET_NULL)
    external_id = models.CharField(max_length=128, blank=True)
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    required_annotations = models.PositiveSmallIntegerField(default=1)  # 2 = double annotation
    status = models.CharField(max_length=16, choices=STATUSES, default=OPEN, db_index=True)
    # Queue ordering signals (see the prioritisation service): higher priority is served first.
    model_uncertainty = models.FloatField(null=True, blank=True)
    labeler_disagreement = models.FloatField(null=True, blank=True)
    priority = models.FloatField(default=0.0, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "created_at", "pk"]
        constraints = [
            # Importing the same report twice (or re-signing identical text) makes no second task.
            models.UniqueConstraint(fields=["study_instance_uid", "text_sha256"], name="one_task_per_report_text"),
        ]
        permissions = [
            ("verify_labels", "Can verify extracted labels (annotator queue)"),
            ("adjudicate_labels", "Can adjudicate disagreeing annotations"),
            ("import_reports", "Can bulk-import reports for labelling"),
            ("view_label_metrics", "Can see annotator agreement and labeler accuracy"),
        ]

    def __str__(self):
        return f"label task {self.pk} {self.study_instance_uid} ({self.status})"


class Extraction(models.Model):
    """Labels one labeler extracted from a task's text, with evidence spans and provenance."""

    task = models.ForeignKey(LabelTask, related_name="extractions", on_delete=models.CASCADE)
    labeler = models.CharField(max_length=32)  # spine_labels source: "rules", "llm", "llm-fallback-rules"
    labeler_version = models.CharField(max_length=64)
    # spine_labels.schema.LabelSet JSON: per condition value, evidence (offsets into task.text), flags.
    labels = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["task", "labeler", "labeler_version"], name="one_extraction_per_labeler"),
        ]

    def __str__(self):
        return f"{self.labeler} {self.labeler_version} labels of task {self.task_id}"


class Annotation(models.Model):
    """One annotator's submitted verification of a task: a value for every condition.

    ``mode`` and ``extraction_seen`` say whether the labels could have been anchored on the extraction
    (agreement studies must tell blind labels from assisted ones); ``blind_labels`` keeps a blind
    annotator's first pass when they revealed the extraction before submitting.
    """

    BLIND, ASSISTED = "blind", "assisted"
    MODES = [(BLIND, "blind (nothing preset)"), (ASSISTED, "assisted (preset to the extraction)")]

    task = models.ForeignKey(LabelTask, related_name="annotations", on_delete=models.CASCADE)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="label_annotations",
                                  on_delete=models.PROTECT)
    labels = models.JSONField()  # {condition_key: 1 | 0 | -1}, derived from level_labels (see levels.py)
    # {condition_key: {level | "study": 1 | 0 | -1}}; None on rows made before per-level labels.
    level_labels = models.JSONField(null=True, blank=True)
    comment = models.TextField(blank=True)
    # Rows made before the modes existed were all preset to the extraction: assisted, seen.
    mode = models.CharField(max_length=16, choices=MODES, default=ASSISTED)
    extraction_seen = models.BooleanField(default=True)
    blind_labels = models.JSONField(null=True, blank=True)  # the first pass, when revealed before submitting
    revealed_at = models.DateTimeField(null=True, blank=True)
    # The extraction shown (preset or revealed); None when none was shown.
    extraction = models.ForeignKey(Extraction, null=True, blank=True, related_name="+", on_delete=models.SET_NULL)
    submitted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["submitted_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="one_annotation_per_annotator")]

    def __str__(self):
        return f"annotation of task {self.task_id} by {self.annotator_id}"


class Reveal(models.Model):
    """A blind annotator's complete first pass, fixed when they asked to see the extraction.

    The server sends the extraction of an open task in blind mode only to an annotator with a Reveal
    (or an annotation): the first pass is on record before anything could anchor it.
    """

    task = models.ForeignKey(LabelTask, related_name="reveals", on_delete=models.CASCADE)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="+", on_delete=models.PROTECT)
    labels = models.JSONField()  # {condition_key: 1 | 0 | -1}, every condition
    level_labels = models.JSONField(null=True, blank=True)  # {condition_key: {level: value}}
    extraction = models.ForeignKey(Extraction, null=True, blank=True, related_name="+", on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["task", "annotator"], name="one_reveal_per_annotator")]

    def __str__(self):
        return f"first pass of task {self.task_id} by {self.annotator_id}"


class VerifiedLabels(models.Model):
    """The final labels of a task; the only labels datasets are built from."""

    SINGLE, AGREEMENT, ADJUDICATED = "single", "agreement", "adjudicated"
    METHODS = [(SINGLE, "one annotator"), (AGREEMENT, "annotators agreed"), (ADJUDICATED, "adjudicated")]

    task = models.OneToOneField(LabelTask, related_name="verified", on_delete=models.CASCADE)
    labels = models.JSONField()  # {condition_key: 1 | 0 | -1} for every condition
    # {condition_key: {level | "study": 1 | 0 | -1}}; None on rows verified before per-level labels.
    level_labels = models.JSONField(null=True, blank=True)
    method = models.CharField(max_length=16, choices=METHODS)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                   on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["decided_at", "pk"]
        verbose_name_plural = "verified labels"

    def __str__(self):
        return f"verified labels of task {self.task_id} ({self.method})"
