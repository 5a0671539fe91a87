"""The worklist's AI priority of a study, from its latest result: which drafts a reader should open first.

2 urgent: a condition the drafts call urgent (spinefm.report.findings.URGENT: compression, fracture,
  intradural lesions, inflammation) is called present;
1 flagged: another condition is called present, or an urgent one possible;
0 routine: the model called nothing present (which is not "normal": unvalidated conditions are not called).
Stored on the report when its AI draft is written (``Report.ai_priority``), so the worklist sorts in SQL.
"""

from __future__ import annotations

from backend.inference.analysis import analysis_of
from spinefm.report.findings import URGENT
from spinefm.results import Call

URGENT_FINDING, FLAGGED, ROUTINE = 2, 1, 0
LABELS = {URGENT_FINDING: "urgent finding", FLAGGED: "finding", ROUTINE: "routine"}


def priority_of(result) -> int:
    """The priority of an InferenceResult (ROUTINE without one)."""
    analysis = analysis_of(result)
    calls = [(c.condition, c.call) for c in analysis.conditions] if analysis else []
    if any(key in URGENT and call == Call.PRESENT for key, call in calls):
        return URGENT_FINDING
    if any(call == Call.PRESENT or (key in URGENT and call == Call.POSSIBLE) for key, call in calls):
        return FLAGGED
    return ROUTINE
