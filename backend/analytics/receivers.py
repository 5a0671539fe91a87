"""report_signed -> edit metrics. A failure is logged, never raised: the sign-off already committed and
``manage.py compute_edit_metrics`` back-fills anything missing."""

from __future__ import annotations

import logging

from .services import compute_for_report

log = logging.getLogger(__name__)


def metrics_on_sign(sender, report_id, **kwargs):
    try:
        compute_for_report(report_id)
    except Exception:
        log.exception("could not compute edit metrics of report %s", report_id)
