"""Which signed reports enter the QA queue: every 2b / 3a / 3b, and a random sample of the rest.

The sample is drawn from a hash of the study UID (``draw``), not from a process RNG: the same study is
always in or out for a given rate, so a re-run of the receiver, a back-fill or a test gets the same
answer, and the expected share of a set of studies is the rate (RADPEER programmes sample ~5%).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Callable

from django.conf import settings
from django.db import IntegrityError, transaction

from backend.reports.models import Report
from backend.reports.radpeer import NEEDS_COMMENT, SCORES

from .models import QACase

log = logging.getLogger(__name__)
SALT = "spineagent-qa-sample-v1"


def draw(study_instance_uid: str) -> float:
    """A number in [0, 1) fixed by the study UID (first 8 bytes of SHA-256 of the salted UID)."""
    digest = hashlib.sha256(f"{SALT}|{study_instance_uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample_rate() -> float:
    """``SPINEAGENT_QA_SAMPLE_RATE`` clipped to [0, 1]."""
    return min(1.0, max(0.0, float(settings.SPINEAGENT_QA_SAMPLE_RATE)))


def reason_for(report: Report, rate: float | None = None,
               drawn: Callable[[str], float] = draw) -> str | None:
    """QACase.DISCREPANT, QACase.SAMPLED or None (not selected) for a signed, scored report."""
    if report.status != Report.SIGNED or report.radpeer_score not in SCORES:
        return None
    if report.radpeer_score in NEEDS_COMMENT:
        return QACase.DISCREPANT
    rate = sample_rate() if rate is None else rate
    return QACase.SAMPLED if drawn(report.study.study_instance_uid) < rate else None


def select(report_id: int, rate: float | None = None, drawn: Callable[[str], float] = draw) -> QACase | None:
    """Open the report's QA case if it is selected; idempotent (an existing case is returned as it is)."""
    report = Report.objects.select_related("study").filter(pk=report_id).first()
    if report is None:
        return None
    existing = QACase.objects.filter(report=report).first()
    if existing is not None:
        return existing
    selection = reason_for(report, rate, drawn)
    if selection is None:
        return None
    try:
        with transaction.atomic():
            return QACase.objects.create(
                report=report, selection=selection, reader_id=report.signed_by_id,
                original_score=report.radpeer_score, original_comment=report.radpeer_comment,
                signed_number=report.signed_number)
    except IntegrityError:  # a concurrent receiver opened it first
        return QACase.objects.get(report=report)
