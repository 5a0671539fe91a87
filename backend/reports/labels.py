"""The words people read for our statuses and condition keys: the one table the panel and the worklist use.

The API keeps its machine values (``in_review``, ``disc_height``); every payload that shows one to a person
also carries its label from here, so the panel, the worklist page and the docs say the same thing.
"""

from __future__ import annotations

from spinefm.conditions import CONDITIONS

REPORT_STATUS = {"no_draft": "No draft", "draft_ready": "Draft ready", "in_review": "In review",
                 "signed": "Signed"}
JOB_STATUS = {"queued": "Queued for analysis", "running": "Analysing", "succeeded": "Analysis done",
              "failed": "Analysis failed", "unsupported": "Unsupported study"}
# The worklist's derived status (worklist.STATUSES).
WORKLIST_STATUS = {"queued": "Queued", "running": "Analysing", "draft ready": "Draft ready",
                   "in review": "In review", "signed": "Signed", "failed": "Analysis failed",
                   "unsupported": "Unsupported (not a spine MRI)", "not queued": "Not analysed"}
# The model's call on a condition at the bundle's operating points (spinefm.results.STATUSES).
CALL = {"present": "called present", "possible": "possible", "absent": "not found",
        "not_assessed": "not validated"}
# The same call as a box's label on the image says it (a box is drawn below threshold too: spinefm.analyze).
BOX_CALL = {"present": "present", "possible": "possible", "absent": "below threshold",
            "not_assessed": "not validated"}
CONDITION_NAMES = {c.key: c.display_name for c in CONDITIONS}


def condition_name(key: str) -> str:
    """The registry's display name; a condition a site added without one reads as its key, spaced."""
    return CONDITION_NAMES.get(key) or key.replace("_", " ").capitalize()


def score_meaning(model_metrics: dict | None) -> dict:
    """What the per-finding number is. Our bundles output a sigmoid score whose operating points were
    fitted on held-out cases, not a calibrated probability; a bundle that declares calibrated
    probabilities (``metrics["probabilities"] == "calibrated"``) is shown as such."""
    if (model_metrics or {}).get("probabilities") == "calibrated":
        return {"kind": "calibrated", "name": "probability",
                "meaning": "calibrated probability that the condition is present"}
    return {"kind": "raw", "name": "model score",
            "meaning": "raw model score (0-100%), not a calibrated probability; the call next to it comes "
                       "from the bundle's held-out operating points"}
