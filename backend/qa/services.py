"""The review of a QA case: who may, what a valid review is, and the one write (with its audit event).

Rules: the reviewer holds ``qa.review_case`` (checked by the views) and is neither the signer nor an author
of any version of the report (403 ``own_case``); a case is reviewed once (409 ``already_reviewed``); the
review names the newest report version the reviewer saw, and an addendum since then makes it 409
``stale``. The case row is locked while it is checked and written, and the audit event is written in the
same transaction, so a refused or failed review leaves nothing behind; the refusal itself is audited apart.
"""

from __future__ import annotations

from urllib.parse import quote

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from backend.audit.log import record
from backend.audit.models import AuditEvent
from backend.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Stale
from backend.reports import radpeer
from backend.reports.models import Report, ReportVersion

from .models import QACase

MAX_REASON = 2000


class OwnCase(Forbidden):
    """The reviewer read this report themselves: a peer review must come from someone else."""

    code = "own_case"


class AlreadyReviewed(Conflict):
    code = "already_reviewed"


def is_own(case: QACase, user) -> bool:
    """Whether ``user`` read this report: signed it or wrote any version of it (drafts and addenda too)."""
    if case.reader_id == user.pk:
        return True
    return ReportVersion.objects.filter(report_id=case.report_id, author_id=user.pk).exists()


def _own_report_ids(user):
    return ReportVersion.objects.filter(author_id=user.pk).values("report_id")


def queue(user, status: str = QACase.OPEN):
    """Cases in ``status`` that ``user`` may review (never their own), significant discrepancies first."""
    qs = (QACase.objects.filter(status=status).exclude(reader_id=user.pk).exclude(report_id__in=_own_report_ids(user))
          .select_related("report__study", "reviewer"))
    if status == QACase.OPEN:
        return qs.order_by("selection", "created_at", "pk")  # "discrepant" sorts before "sampled"
    return qs.order_by("-reviewed_at", "-pk")


def report_version(report: Report) -> int | None:
    """The newest version number of the report, addenda included: what a review is based on."""
    return report.versions.aggregate(top=Max("number"))["top"]


def viewer_url(study_instance_uid: str) -> str:
    return f"/viewer/spineagent?StudyInstanceUIDs={quote(study_instance_uid, safe='')}"


def marker(decision: str, reviewed_score: str) -> str:
    """The worklist's words for a reviewed case."""
    return "QA reviewed: agreed" if decision == QACase.AGREE else f"QA reviewed: changed to {reviewed_score}"


def queue_row(case: QACase) -> dict:
    """A case as the queue lists it (no texts: no query beyond the queue's own joins)."""
    study = case.report.study
    return {"id": case.pk, "study_instance_uid": study.study_instance_uid, "status": case.status,
            "study_date": study.study_date.isoformat() if study.study_date else None,
            "study_description": study.study_description, "selection": case.selection,
            "original_score": case.original_score, "created_at": case.created_at.isoformat(),
            "signed_at": case.report.signed_at.isoformat() if case.report.signed_at else None,
            "decision": case.decision or None, "reviewed_score": case.reviewed_score or None,
            "reviewer": case.reviewer.username if case.reviewer else None,
            "reviewed_at": case.reviewed_at.isoformat() if case.reviewed_at else None}


def case_payload(case: QACase, user=None) -> dict:
    """What the reviewer judges: texts, score, comment, links; no reader identity (blind peer review)."""
    report = case.report
    draft = report.versions.select_related("model_version").ai_draft()
    final = report.versions.get(number=case.signed_number)
    addenda = report.versions.filter(source=ReportVersion.ADDENDUM).order_by("number")
    mv = draft.model_version if draft else None
    can_images = user is None or user.has_perm("studies.view_images")
    return {
        "id": case.pk, "status": case.status, "selection": case.selection,
        "study_instance_uid": report.study.study_instance_uid,
        "study_date": report.study.study_date.isoformat() if report.study.study_date else None,
        "study_description": report.study.study_description,
        "viewer_url": viewer_url(report.study.study_instance_uid) if can_images else None,
        "ai_draft": {"number": draft.number, "text": draft.text, "draft_backend": draft.draft_backend,
                     "model_version": f"{mv.name}:{mv.version}" if mv else None} if draft else None,
        "final": {"number": final.number, "text": final.text},
        "addenda": [{"number": a.number, "text": a.text, "created_at": a.created_at.isoformat()} for a in addenda],
        "signed_at": report.signed_at.isoformat() if report.signed_at else None,
        "original_score": case.original_score, "original_comment": case.original_comment,
        "report_version": report_version(report),
        "created_at": case.created_at.isoformat(),
        "review": None if case.status == QACase.OPEN else {
            "reviewer": case.reviewer.username if case.reviewer else None, "decision": case.decision,
            "reviewed_score": case.reviewed_score, "reason": case.review_reason,
            "report_version": case.reviewed_report_version, "reviewed_at": case.reviewed_at.isoformat()},
    }


def _clean(decision: str, score: str | None, reason: str | None, original: str) -> tuple[str, str]:
    """(reviewed score, reason) of a valid review; Invalid otherwise. ``decision`` is agree or change."""
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise Invalid(f"reason is longer than {MAX_REASON} characters", field="reason")
    if decision == QACase.AGREE:
        if score not in (None, "", original):
            raise Invalid(f"agreeing keeps the score {original}; to give {score!r} choose 'change'", field="score")
        return original, reason
    if bad := radpeer.problems(score, reason):
        field, message = next(iter(bad.items()))
        raise Invalid(message.replace("a written comment", "a written reason"),
                      field="score" if field == "radpeer_score" else "reason")
    if score == original:
        raise Invalid(f"the score is already {original}; choose 'agree' to confirm it", field="score")
    if not reason:
        raise Invalid("changing the score needs a reason", field="reason")
    return score, reason


def review(case_id: int, user, decision: str, score: str | None, reason: str | None, based_on: int,
           request=None) -> QACase:
    """Record the one review of a case (see the module docstring for the refusals). A refusal is audited
    here, after its transaction rolled back, except a 403: the audit middleware records refused requests
    to the API, and the review page records its own."""
    try:
        return _review(case_id, user, decision, score, reason, based_on, request)
    except DomainError as exc:
        if exc.status != 403:
            record_refusal(exc, case_id, user, request)
        raise


@transaction.atomic
def _review(case_id: int, user, decision: str, score: str | None, reason: str | None, based_on: int,
            request=None) -> QACase:
    case = QACase.objects.select_for_update().select_related("report").filter(pk=case_id).first()
    if case is None:
        raise NotFound(f"no QA case {case_id}")
    if is_own(case, user):
        raise OwnCase("you read this report; a peer review must come from someone else")
    if case.status != QACase.OPEN:
        raise AlreadyReviewed(f"already reviewed by {case.reviewer.username if case.reviewer else '?'} "
                              f"at {case.reviewed_at:%Y-%m-%d %H:%M} UTC ({case.decision}, {case.reviewed_score})",
                              reviewed_score=case.reviewed_score, decision=case.decision)
    report = Report.objects.select_for_update().get(pk=case.report_id)
    study_uid = Report.objects.filter(pk=report.pk).values_list("study__study_instance_uid", flat=True).get()
    current = report_version(report)
    if based_on != current:
        raise Stale(f"the report changed since you opened it (version {based_on} -> {current}); "
                    "reload the case and review it again", report_version=current)
    reviewed_score, reason = _clean(decision, score, reason, case.original_score)
    case.status, case.reviewer, case.decision = QACase.REVIEWED, user, decision
    case.reviewed_score, case.review_reason = reviewed_score, reason
    case.reviewed_report_version, case.reviewed_at = current, timezone.now()
    case.save()
    record(AuditEvent.EDIT, "qa-review", study_uid,
           user=user, request=request,
           detail={"qa_case": case.pk, "report": report.pk, "decision": decision,
                   "original_score": case.original_score, "reviewed_score": reviewed_score, "reason": reason,
                   "report_version": current, "selection": case.selection})
    return case


def record_refusal(exc: DomainError, case_id, user, request=None) -> None:
    """An audit event for a refused review (who, which case, why), outside the rolled-back transaction."""
    record(AuditEvent.REFUSED, "qa-review", str(case_id), user=user, request=request,
           detail={"status": exc.status, "code": exc.code, "reason": exc.detail[:300]})


def markers_for(study_ids, user) -> dict[int, str]:
    """Study id -> worklist marker, for the reviewed cases ``user`` may see: their own reads, or any when
    they review cases themselves (peer review results are not shown to other readers)."""
    qs = QACase.objects.filter(status=QACase.REVIEWED, report__study_id__in=list(study_ids))
    if not user.has_perm("qa.review_case"):
        qs = qs.filter(reader_id=user.pk)
    return {s: marker(d, score) for s, d, score in qs.values_list("report__study_id", "decision", "reviewed_score")}
