"""JSON shapes of the report API (the OHIF panel codes against these; see docs/reports-api.md)."""

from __future__ import annotations

from rest_framework import serializers

from backend.inference.serializers import ModelVersionSerializer

from .models import Report, ReportVersion


class VersionSummarySerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, read_only=True)

    class Meta:
        model = ReportVersion
        fields = ["number", "author", "source", "created_at", "base_number"]


class VersionSerializer(VersionSummarySerializer):
    class Meta(VersionSummarySerializer.Meta):
        fields = ["number", "text", "author", "source", "created_at", "base_number", "draft_backend"]


def _username(user) -> str | None:
    return user.username if user else None


def report_payload(study, report: Report | None, versions: list[ReportVersion], result, job, user) -> dict:
    """Everything the panel needs in one answer: texts, history, sign-off state, the AI result and job."""
    by_number = {v.number: v for v in versions}
    current = by_number.get(report.current_number) if report else None
    ai_versions = [v for v in versions if v.source == ReportVersion.AI]
    ai_draft = ai_versions[-1] if ai_versions else None
    model_version = (ai_draft.model_version if ai_draft and ai_draft.model_version
                     else (result.model_version if result else None))
    signed = bool(report and report.locked)
    data = None
    if result is not None:
        data = {k: v for k, v in (result.data or {}).items() if k != "embedding"}
    return {
        "study_instance_uid": study.study_instance_uid,
        "status": report.status if report else Report.NO_DRAFT,
        "current": VersionSerializer(current).data if current else None,
        "ai_draft": VersionSerializer(ai_draft).data if ai_draft else None,
        "versions": VersionSummarySerializer(versions, many=True).data,
        "addenda": VersionSerializer([v for v in versions if v.source == ReportVersion.ADDENDUM], many=True).data,
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
        "result": data,
        "job": ({"id": job.pk, "status": job.status, "stage": job.stage, "progress": job.progress,
                 "error": job.error} if job else None),
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
        "job_id": study.job_id,
        "job_status": study.job_status,
        "job_error": study.job_error or None,
        "reader": study.reader_name,
        "model_version": model,
    }
