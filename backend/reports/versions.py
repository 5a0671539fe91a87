"""The report's write path: AI drafts, radiologist versions, sign-off, addenda, first open.

Every writer locks the ``Report`` row (select_for_update) and checks the number it
based its edit on, so two radiologists saving on the same base cannot overwrite
each other: exactly one wins, the other gets :class:`Stale` with both texts.
Arguments are typed (the views validate request bodies with serializers); the rules about content (a
non-blank text, a RADPEER score that fits the report) are checked here, for every caller.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from backend.inference.analysis import analysis_of
from backend.inference.models import InferenceResult
from backend.errors import Conflict, Invalid, Stale
from backend.studies.models import Study

from . import radpeer, signals
from .priority import priority_of
from .models import Report, ReportVersion


class Locked(Conflict):
    code = "locked"


class NotSigned(Conflict):
    code = "not_signed"


class Claimed(Conflict):
    """Another radiologist is reading this report; editing or signing it needs an explicit take-over."""

    code = "claimed"


def _locked_report(study: Study) -> Report:
    report, _ = Report.objects.select_for_update().get_or_create(study=study)
    return report


def _next_number(report: Report) -> int:
    top = report.versions.aggregate(top=Max("number"))["top"]
    return 0 if top is None else top + 1


@transaction.atomic
def add_ai_draft(result: InferenceResult) -> ReportVersion | None:
    """Store a result's draft text as an AI version, if a human has not touched the report yet.

    Idempotent per result; never touches a signed report; an older result arriving late is ignored.
    """
    report = _locked_report(result.study)
    if report.status == Report.SIGNED:
        return None
    newest = report.versions.filter(inference_result__gt=result.pk).exists()
    if not newest and report.ai_priority != (value := priority_of(result)):
        report.ai_priority = value  # the latest result's calls, even when its text is not taken
        report.save(update_fields=["ai_priority", "updated_at"])
    versions = list(report.versions.all())
    if any(v.source != ReportVersion.AI for v in versions):
        return None  # a radiologist edited: their text wins over a re-run
    if any((v.inference_result_id or 0) >= result.pk for v in versions):
        return None  # this result (or a newer one) is already the draft
    analysis = analysis_of(result)
    version = ReportVersion.objects.create(
        report=report, number=_next_number(report), text=analysis.draft_text or "", author=None,
        source=ReportVersion.AI, base_number=report.current_number, model_version=result.model_version,
        draft_backend=(analysis.draft_backend or "")[:64], inference_result=result)
    report.current_number = version.number
    if report.status == Report.NO_DRAFT:
        report.status = Report.DRAFT_READY
    report.save()
    return version


def heal_missing_draft(study: Study) -> None:
    """Create the draft from the latest result if the signal was lost (worker died right after commit)."""
    if Report.objects.filter(study=study, current_number__isnull=False).exists():
        return
    result = InferenceResult.objects.filter(study=study).select_related("study", "model_version").first()
    if result is not None:
        add_ai_draft(result)


def _claim(report: Report, user) -> bool:
    """Make ``user`` the reader of a locked ``report`` row; first_opened_at once, draft_ready -> in_review."""
    changed = False
    if report.first_opened_at is None:
        report.first_opened_at, changed = timezone.now(), True
    if report.reader_id != user.pk:
        report.reader, changed = user, True
    if report.status == Report.DRAFT_READY:
        report.status, changed = Report.IN_REVIEW, True
    return changed


def _require_reader(report: Report, user) -> None:
    if report.reader_id is not None and report.reader_id != user.pk:
        raise Claimed(f"{report.reader.username} is reading this report; take it over to edit or sign it",
                      reader=report.reader.username)


@transaction.atomic
def claim(study: Study, user, take_over: bool = False) -> tuple[Report, str | None]:
    """A radiologist starts reading: they become the reader (first open recorded, draft_ready -> in_review).

    A report another radiologist is reading is only taken over when asked explicitly (``take_over``);
    returns the report and the previous reader's name when it was taken over from someone.
    """
    report = _locked_report(study)
    if report.locked:
        raise Locked(f"already signed by {report.signed_by.username if report.signed_by else '?'}")
    previous = report.reader if report.reader_id not in (None, user.pk) else None
    if previous is not None and not take_over:
        _require_reader(report, user)
    if _claim(report, user):
        report.save()
    return report, previous.username if previous else None


def mark_opened(study: Study, user) -> Report:
    """Claim for a reader who opens the report (fixtures and the analytics demo): ``claim`` without take-over."""
    return claim(study, user)[0]


def _current_payload(report: Report) -> dict | None:
    if report.current_number is None:
        return None
    v = report.versions.select_related("author").get(number=report.current_number)
    return {"number": v.number, "text": v.text, "author": v.author.username if v.author else None,
            "created_at": v.created_at.isoformat()}


def _clean_text(text: str) -> str:
    if not text.strip():
        raise Invalid("text must be a non-empty string", field="text")
    return text


@transaction.atomic
def save_version(study: Study, user, text: str, base_number: int | None) -> ReportVersion:
    """Add a radiologist version on top of ``base_number``; Stale if someone saved in between."""
    text = _clean_text(text)
    report = _locked_report(study)
    if report.locked:
        raise Locked("the report is signed; add an addendum instead")
    _require_reader(report, user)
    if base_number != report.current_number:
        raise Stale(f"version {report.current_number} was saved after version {base_number} that you edited",
                    your_text=text, base_number=base_number, current=_current_payload(report))
    version = ReportVersion.objects.create(
        report=report, number=max(_next_number(report), 1),  # 0 is reserved for the AI draft
        text=text, author=user, source=ReportVersion.RADIOLOGIST, base_number=base_number)
    report.current_number = version.number
    report.status = Report.IN_REVIEW
    if report.reader_id is None:
        report.reader = user
    report.save()
    return version


@transaction.atomic
def sign(study: Study, user, number: int, score: str | None, comment: str | None) -> Report:
    """Sign the current version with a RADPEER score of the AI draft; the report is locked afterwards."""
    report = _locked_report(study)
    if report.locked:
        raise Locked(f"already signed by {report.signed_by.username if report.signed_by else '?'}")
    _require_reader(report, user)
    if report.current_number is None:
        raise Invalid("there is no version to sign yet", field="number")
    if number != report.current_number:
        raise Stale(f"you are signing version {number} but the current version is {report.current_number}",
                    base_number=number, current=_current_payload(report))
    has_ai_draft = report.versions.ai_draft() is not None
    comment = (comment or "").strip()
    if has_ai_draft:
        if bad := radpeer.problems(score, comment):
            field, message = next(iter(bad.items()))
            raise Invalid(message, field=field)
    elif score not in (None, ""):
        raise Invalid("this report has no AI draft to score; leave radpeer_score empty", field="radpeer_score")
    report.status = Report.SIGNED
    report.signed_by, report.signed_at, report.signed_number = user, timezone.now(), number
    report.radpeer_score, report.radpeer_comment = score or "", comment
    report.reader = user
    report.save()
    report_id = report.pk
    transaction.on_commit(lambda: signals.report_signed.send(sender=Report, report_id=report_id))
    return report


@transaction.atomic
def add_addendum(study: Study, user, text: str) -> ReportVersion:
    """An addendum to a signed report: its own version, the report stays signed and its body unchanged."""
    text = _clean_text(text)
    report = _locked_report(study)
    if not report.locked:
        raise NotSigned("the report is not signed yet; save a new version instead")
    return ReportVersion.objects.create(
        report=report, number=_next_number(report), text=text, author=user, source=ReportVersion.ADDENDUM,
        base_number=report.signed_number)
