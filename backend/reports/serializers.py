"""JSON shapes of the report API (the OHIF panel codes against these; see docs/reports-api.md): the request
bodies and query parameters, validated at the boundary (types here, the report's rules in versions.py), and
the answers."""

from __future__ import annotations

import math

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from backend.serializer_fields import StrictCharField
from backend.inference.analysis import analysis_of, prediction_for
from backend.inference.serializers import ModelVersionSerializer
from spinefm.report.findings import level_count_note
from spinefm.results import AnalysisResult, Call

from . import labels, radpeer, sentences, worklist
from .priority import LABELS as PRIORITY_LABELS
from .models import Report, ReportVersion, ai_draft_of


# ---- requests ---------------------------------------------------------------------------------------------------

class ClaimRequest(serializers.Serializer):
    take_over = serializers.BooleanField(default=False, help_text="take the report over from another reader")


class SaveRequest(serializers.Serializer):
    text = StrictCharField(trim_whitespace=False, help_text="the whole report text (not blank)")
    base_number = serializers.IntegerField(allow_null=True, help_text="the number of the version you edited; "
                                                                      "null when there is none yet")


class SignRequest(serializers.Serializer):
    number = serializers.IntegerField(help_text="the number of the version you are signing")
    radpeer_score = StrictCharField(required=False, allow_blank=True, allow_null=True,
                                    help_text="RADPEER score of the AI draft (required when there is one)")
    radpeer_comment = StrictCharField(required=False, allow_blank=True, allow_null=True,
                                      help_text="required for 2b, 3a and 3b")


class AddendumRequest(serializers.Serializer):
    text = StrictCharField(trim_whitespace=False, help_text="the addendum's text (not blank)")


def _version_number(key: str, default: str) -> serializers.IntegerField:
    return serializers.IntegerField(required=False, help_text=f"version number (default: {default})",
                                    error_messages={"invalid": f"{key} must be a version number"})


class DiffQuery(serializers.Serializer):
    locals()["from"] = _version_number("from", "the AI draft")  # "from" is a Python keyword
    to = _version_number("to", "the current version")


class StatusList(serializers.CharField):
    """Comma-separated display statuses (``draft_ready`` or ``draft ready``), as a set."""

    def to_internal_value(self, data) -> frozenset[str]:
        text = super().to_internal_value(data)
        wanted = frozenset(s.strip().replace("_", " ") for s in text.split(",") if s.strip())
        if unknown := wanted - set(worklist.STATUSES):
            raise serializers.ValidationError(f"unknown status {', '.join(sorted(unknown))} in {self.field_name}; "
                                              f"one of {', '.join(worklist.STATUSES)}")
        return wanted


class WorklistQuery(serializers.Serializer):
    """The worklist's query parameters, as ``worklist.Filters``."""

    status = StatusList(required=False, help_text="comma-separated display statuses")
    hide = StatusList(required=False, help_text="comma-separated display statuses to leave out")
    date_from = serializers.DateField(required=False, help_text="study date YYYY-MM-DD, inclusive")
    date_to = serializers.DateField(required=False, help_text="study date YYYY-MM-DD, inclusive")
    reader = StrictCharField(required=False, allow_blank=True, help_text="username of the reader or signer")
    mine = serializers.BooleanField(required=False, help_text="1: studies the caller reads or signed")
    unread = serializers.BooleanField(required=False, help_text="1: studies nobody has opened yet (not signed)")
    ordering = serializers.ChoiceField(
        choices=[k for key in worklist.ORDERINGS for k in (key, f"-{key}")], required=False,
        help_text="received, date, status, priority or reader; prefix - for descending (default -received)")

    def validate(self, data: dict) -> dict:
        if data.get("hide") and not (data.get("status") or set(worklist.STATUSES)) - data["hide"]:
            raise serializers.ValidationError({"hide": "status and hide leave no status to show"})
        return data


# ---- answers ----------------------------------------------------------------------------------------------------

class VersionSummarySerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, read_only=True, allow_null=True)
    kind = serializers.SerializerMethodField(help_text="ai draft | edit | signed | addendum (what the history shows)")

    class Meta:
        model = ReportVersion
        fields = ["number", "author", "source", "kind", "created_at", "base_number"]

    def get_kind(self, version: ReportVersion) -> str:
        if version.source == ReportVersion.AI:
            return "ai draft"
        if version.source == ReportVersion.ADDENDUM:
            return "addendum"
        signed = self.context.get("signed_number")
        return "signed" if signed is not None and version.number == signed else "edit"


class VersionSerializer(VersionSummarySerializer):
    class Meta(VersionSummarySerializer.Meta):
        fields = ["number", "text", "author", "source", "kind", "created_at", "base_number", "draft_backend"]


# The answers' shapes for the OpenAPI schema (the payload builders below write them; the fuzz test holds the two
# together). Free dicts are kept where the keys are data (condition names, timings, a model's metrics).

class JobStateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    stage = serializers.CharField()
    progress = serializers.IntegerField()
    error = serializers.CharField()


class PanelStateSerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField()
    state = serializers.CharField(help_text="analysing, failed, unsupported, not_analysed, ready or signed")
    final = serializers.BooleanField(help_text="nothing changes until a person acts: stop polling")
    status = serializers.CharField()
    status_label = serializers.CharField()
    job = JobStateSerializer(allow_null=True)


class ReportStateSerializer(PanelStateSerializer):
    current_number = serializers.IntegerField(allow_null=True)
    version_count = serializers.IntegerField()
    result_id = serializers.IntegerField(allow_null=True)


class SlicePointerSerializer(serializers.Serializer):
    series_instance_uid = serializers.CharField()
    sop_instance_uid = serializers.CharField()
    slice_index = serializers.IntegerField(required=False)
    box = serializers.ListField(child=serializers.FloatField(), required=False)
    level = serializers.CharField(required=False, allow_null=True)


class SentenceLinkSerializer(serializers.Serializer):
    condition = serializers.CharField()
    level = serializers.CharField(allow_null=True)
    matches_model = serializers.BooleanField()
    key_slice = SlicePointerSerializer(allow_null=True)
    box = SlicePointerSerializer(allow_null=True)


class SentenceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    start = serializers.IntegerField(help_text="UTF-16 offset")
    end = serializers.IntegerField(help_text="UTF-16 offset")
    text = serializers.CharField()
    links = SentenceLinkSerializer(many=True)


class ConditionCallSerializer(serializers.Serializer):
    condition = serializers.CharField()
    probability = serializers.FloatField()
    present = serializers.BooleanField()
    level = serializers.CharField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    level_uncertain = serializers.BooleanField()
    level_note = serializers.CharField()
    rule_out = serializers.BooleanField(allow_null=True)
    call = serializers.CharField()


class BoxSerializer(serializers.Serializer):
    condition = serializers.CharField()
    series_instance_uid = serializers.CharField()
    sop_instance_uid = serializers.CharField()
    box = serializers.ListField(child=serializers.FloatField())
    score = serializers.FloatField()
    level = serializers.CharField(allow_null=True)
    level_uncertain = serializers.BooleanField()
    call = serializers.CharField()
    label = serializers.CharField(help_text="what the box says on the image")


class AnalysisSerializer(serializers.Serializer):
    """``spinefm.results.AnalysisResult`` without its embedding, with the calls and box labels added."""

    model_name = serializers.CharField()
    model_version = serializers.CharField()
    synthetic_training = serializers.BooleanField()
    conditions = ConditionCallSerializer(many=True)
    key_slices = serializers.ListField(child=serializers.DictField())
    boxes = BoxSerializer(many=True)
    similar_cases = serializers.ListField(child=serializers.DictField())
    similar_source = serializers.CharField()
    series = serializers.ListField(child=serializers.DictField())
    draft_text = serializers.CharField()
    draft_backend = serializers.CharField()
    draft_fallback = serializers.CharField()
    timings = serializers.DictField(child=serializers.FloatField())
    region = serializers.CharField()
    regions = serializers.ListField(child=serializers.CharField())
    region_source = serializers.CharField()
    region_dicom = serializers.CharField()
    region_image = serializers.CharField()
    region_disagreement = serializers.CharField()
    coverage = serializers.ListField(child=serializers.CharField())
    levels_source = serializers.CharField()
    levels_note = serializers.CharField(help_text="where the levels were counted when not on the read series "
                                        "('levels counted on localizer (series 1)'), or why none is named")
    spine_check = serializers.DictField()
    series_skipped = serializers.ListField(child=serializers.CharField())


class SeriesLayoutSerializer(serializers.Serializer):
    series_instance_uid = serializers.CharField()
    series_number = serializers.IntegerField(allow_null=True)
    description = serializers.CharField()
    modality = serializers.CharField()
    plane = serializers.CharField()
    sequence_type = serializers.CharField()
    num_instances = serializers.IntegerField()


class RadpeerChoiceSerializer(serializers.Serializer):
    score = serializers.CharField()
    meaning = serializers.CharField()
    needs_comment = serializers.BooleanField()


class ReportPayloadSerializer(PanelStateSerializer):
    """``report_payload``: everything the panel shows."""

    current = VersionSerializer(allow_null=True)
    sentences = SentenceSerializer(many=True)
    ai_draft = VersionSerializer(allow_null=True)
    versions = VersionSummarySerializer(many=True)
    addenda = VersionSerializer(many=True)
    radpeer = inline_serializer("SignedRadpeer", {"score": serializers.CharField(),
                                                  "comment": serializers.CharField()}, allow_null=True)
    signed_by = serializers.CharField(allow_null=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    signed_number = serializers.IntegerField(allow_null=True)
    locked = serializers.BooleanField()
    reader = serializers.CharField(allow_null=True)
    first_opened_at = serializers.DateTimeField(allow_null=True)
    model_version = ModelVersionSerializer(allow_null=True)
    result_id = serializers.IntegerField(allow_null=True)
    sr_export = inline_serializer("SRExportState", {"status": serializers.CharField(),
                                                    "error": serializers.CharField()}, allow_null=True)
    result = AnalysisSerializer(allow_null=True)
    condition_names = serializers.DictField(child=serializers.CharField(), help_text="condition key -> name")
    calls = serializers.DictField(child=serializers.CharField(), help_text="call -> how the panel says it")
    radpeer_choices = RadpeerChoiceSerializer(many=True)
    score = inline_serializer("ScoreMeaning", {"kind": serializers.ChoiceField(["raw", "calibrated"]),
                                               "name": serializers.CharField(), "meaning": serializers.CharField()})
    series = SeriesLayoutSerializer(many=True)
    permissions = inline_serializer("ReportPermissions", {key: serializers.BooleanField() for key in (
        "edit", "sign", "addendum", "claim", "take_over", "retry_sr_export", "retry_job")})


class DiffOpSerializer(serializers.Serializer):
    op = serializers.ChoiceField(["equal", "delete", "insert"])
    text = serializers.CharField()


class ReportDiffSerializer(serializers.Serializer):
    locals()["from"] = serializers.IntegerField(help_text="version number")
    to = serializers.IntegerField(help_text="version number")
    ops = DiffOpSerializer(many=True)
    words = inline_serializer("DiffWordCounts", {key: serializers.IntegerField() for key in (
        "from", "to", "equal", "deleted", "inserted")})
    similarity = serializers.FloatField()


class WorklistModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    synthetic_training = serializers.BooleanField()


class WorklistRowSerializer(serializers.Serializer):
    """``worklist_row`` plus the peer review's marker."""

    study_instance_uid = serializers.CharField()
    patient_id = serializers.CharField()
    patient_name = serializers.CharField()
    study_date = serializers.DateField(allow_null=True)
    study_description = serializers.CharField()
    modalities = serializers.CharField()
    num_series = serializers.IntegerField()
    received_at = serializers.DateTimeField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    reason = serializers.CharField(allow_null=True)
    priority = serializers.IntegerField(allow_null=True)
    priority_label = serializers.CharField(allow_null=True)
    job_id = serializers.IntegerField(allow_null=True)
    job_status = serializers.CharField(allow_null=True)
    job_error = serializers.CharField(allow_null=True)
    reader = serializers.CharField(allow_null=True)
    model_version = WorklistModelSerializer(allow_null=True)
    qa_review = serializers.CharField(allow_null=True)


def _username(user) -> str | None:
    return user.username if user else None


def panel_state(report: Report | None, job) -> dict:
    """What the panel shows, decided here once: ``state`` (analysing, failed, unsupported, not_analysed,
    ready, signed) and ``final``: True once nothing will change unless a person acts, so the panel stops
    polling. A report with a version is ready whatever a later re-run did (its failure is shown beside)."""
    job_status = job.status if job else None
    has_text = bool(report and report.current_number is not None)
    if report and report.locked:
        state = "signed"
    elif has_text:
        state = "ready"
    elif job_status in ("queued", "running", "succeeded"):
        state = "analysing"  # succeeded: the draft is being stored
    elif job_status in ("failed", "unsupported"):
        state = job_status
    else:
        state = "not_analysed"
    final = job_status not in ("queued", "running") and not (job_status == "succeeded" and not has_text)
    return {"state": state, "final": final}


def job_payload(job) -> dict | None:
    if job is None:
        return None
    return {"id": job.pk, "status": job.status, "status_label": labels.JOB_STATUS.get(job.status, job.status),
            "stage": job.stage, "progress": job.progress, "error": job.error}


def state_payload(study, report: Report | None, job, result_id: int | None) -> dict:
    """The small answer the panel polls (no report text, no findings): enough to know when to reload."""
    status = report.status if report else Report.NO_DRAFT
    return {"study_instance_uid": study.study_instance_uid, **panel_state(report, job), "status": status,
            "status_label": labels.REPORT_STATUS[status],
            "current_number": report.current_number if report else None,
            "version_count": report.versions.count() if report else 0,
            "result_id": result_id, "job": job_payload(job)}


def series_payload(study) -> list[dict]:
    """The study's series from the index (plane and sequence type as our rule table read them), for the
    viewer's layout: which series to hang side by side."""
    return [{"series_instance_uid": s.series_instance_uid, "series_number": s.series_number,
             "description": s.series_description, "modality": s.modality, "plane": s.plane,
             "sequence_type": s.sequence_type, "num_instances": s.num_instances}
            for s in study.series.all()]


def _percent(p: float) -> str:
    return f"{math.floor(p * 100 + 0.5)}%"


def box_label(box, finding, names: dict, score: dict) -> str:
    """What a box says on the image: condition, level (or that the model could not place it), the model's
    call on its condition and that finding's one score."""
    name = names.get(box.condition) or box.condition
    level = box.level or ("level uncertain" if box.level_uncertain else "")
    call = labels.BOX_CALL[finding.call if finding else Call.ABSENT]
    number = (f" · {'p' if score['kind'] == 'calibrated' else 'score'} {_percent(finding.probability)}"
              if finding else "")
    return f"AI: {name}{f' {level}' if level else ''} · {call}{number}"


def result_payload(analysis: AnalysisResult, names: dict, score: dict) -> dict:
    """The AI result as the panel shows it (no embedding), with the model's call on each condition and on each
    box (its condition's call; absent when the model made no prediction of it) and each box's label."""
    data = {k: v for k, v in analysis.to_dict().items() if k != "embedding"}
    data["levels_note"] = level_count_note(analysis)  # the draft's own words (spinefm.report.findings)
    for row, c in zip(data["conditions"], analysis.conditions):
        row["call"] = c.call
    for row, box in zip(data["boxes"], analysis.boxes):
        finding = prediction_for(analysis, box.condition, any_level=True)
        row["call"] = finding.call if finding else Call.ABSENT
        row["label"] = box_label(box, finding, names, score)
    return data


def report_payload(study, report: Report | None, versions: list[ReportVersion], result, job, user) -> dict:
    """Everything the panel needs in one answer: texts, history, sign-off state, the AI result and job."""
    by_number = {v.number: v for v in versions}
    current = by_number.get(report.current_number) if report else None
    ai_draft = ai_draft_of(versions)
    model_version = (ai_draft.model_version if ai_draft and ai_draft.model_version
                     else (result.model_version if result else None))
    signed = bool(report and report.locked)
    analysis = analysis_of(result)
    status = report.status if report else Report.NO_DRAFT
    context = {"signed_number": report.signed_number if signed else None}
    named = {c.condition for c in (analysis.conditions if analysis else [])} | set(labels.CONDITION_NAMES)
    names = {key: labels.condition_name(key) for key in sorted(k for k in named if k)}
    score = labels.score_meaning(model_version.metrics if model_version else None)
    return {
        "study_instance_uid": study.study_instance_uid,
        "status": status,
        "status_label": labels.REPORT_STATUS[status],
        **panel_state(report, job),
        "current": VersionSerializer(current, context=context).data if current else None,
        "sentences": sentences.link(current.text, analysis) if current else [],
        "ai_draft": VersionSerializer(ai_draft, context=context).data if ai_draft else None,
        "versions": VersionSummarySerializer(versions, many=True, context=context).data,
        "addenda": VersionSerializer([v for v in versions if v.source == ReportVersion.ADDENDUM], many=True,
                                     context=context).data,
        "radpeer": ({"score": report.radpeer_score, "comment": report.radpeer_comment}
                    if signed and report.radpeer_score else None),
        "signed_by": _username(report.signed_by) if report else None,
        "signed_at": report.signed_at.isoformat() if report and report.signed_at else None,
        "signed_number": report.signed_number if report else None,
        "locked": signed,
        "reader": _username(report.reader) if report else None,
        "first_opened_at": report.first_opened_at.isoformat() if report and report.first_opened_at else None,
        "model_version": ModelVersionSerializer(model_version).data if model_version else None,
        "result_id": result.pk if result else None,
        "sr_export": {"status": result.sr_status, "error": result.sr_error} if result else None,
        "result": result_payload(analysis, names, score) if analysis else None,
        "condition_names": names,
        "calls": labels.CALL,
        "radpeer_choices": radpeer.choices(),
        "score": score,
        "series": series_payload(study),
        "job": job_payload(job),
        "permissions": _permissions(report, user, signed),
    }


def _permissions(report: Report | None, user, signed: bool) -> dict:
    """What the caller may do now; another radiologist's report needs a take-over first (versions.claim)."""
    others = bool(report and report.reader_id not in (None, user.pk))
    can_edit = user.has_perm("reports.change_report") and not signed
    return {
        "edit": can_edit and not others,
        "sign": user.has_perm("reports.sign_report") and not signed and not others,
        "addendum": user.has_perm("reports.sign_report") and signed,
        "claim": can_edit and not others and not (report and report.reader_id == user.pk),
        "take_over": can_edit and others,
        "retry_sr_export": user.has_perm("inference.queue_job"),
        "retry_job": user.has_perm("inference.queue_job"),
    }


def worklist_row(study) -> dict:
    """One worklist row from an annotated Study (see worklist.py); no queries."""
    model = None
    if study.job_model_name:
        model = {"name": study.job_model_name, "version": study.job_model_version,
                 "synthetic_training": study.job_model_synthetic}
    return {
        "study_instance_uid": study.study_instance_uid,
        "patient_id": study.patient_id,
        "patient_name": study.patient_name,
        "study_date": study.study_date.isoformat() if study.study_date else None,
        "study_description": study.study_description,
        "modalities": study.modalities,
        "num_series": study.num_series,
        "received_at": study.received_at.isoformat(),
        "status": study.display_status,
        "status_label": labels.WORKLIST_STATUS.get(study.display_status, study.display_status),
        # why there is no draft: the failure or the unsupported study's reason (the row's own status says which)
        "reason": (study.job_error or None) if study.display_status in ("failed", "unsupported") else None,
        "priority": study.priority,
        "priority_label": PRIORITY_LABELS.get(study.priority),
        "job_id": study.job_id,
        "job_status": study.job_status,
        "job_error": study.job_error or None,
        "reader": study.reader_name,
        "model_version": model,
    }
