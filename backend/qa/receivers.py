"""report_signed -> QA selection. A failure is logged, never raised: the sign-off already committed, and
``manage.py select_qa_cases`` opens anything missed."""

from __future__ import annotations

import logging

from .selection import select

log = logging.getLogger(__name__)


def select_on_sign(sender, report_id, **kwargs):
    try:
        select(report_id)
    except Exception:
        log.exception("could not select report %s for QA review", report_id)
