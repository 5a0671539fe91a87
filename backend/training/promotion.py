"""Promote or reject a training run's candidate, behind a gate on the run's held-out test split.

The gate reads the comparison (comparison.py: candidate and active version on the same test cases) and
refuses promotion when the candidate is worse than the active version

* on the mean AUROC lower bound: the mean, over the conditions both versions score, of each condition's
  95% bootstrap lower bound (the point AUROC where the run computed no bootstrap), or
* on any validated condition (validated by the active version's or the candidate's operating points):
  a lower AUROC lower bound there, or the active version validates it and the candidate does not (the
  candidate would stop calling it).

When the active version cannot be scored on these cases the gate cannot pass either. An admin may
override a failed gate with a written reason; the override, the reason and the gate's numbers are
audited and kept on the run. A rejection always needs a reason; it retires the candidate.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from backend.audit.log import record
from backend.audit.models import AuditEvent
from backend.errors import Conflict, Invalid
from backend.inference import registry
from backend.inference.models import ModelVersion

from . import comparison
from .models import TrainingRun

REASON_MAX = 2000


def _lower(metrics: dict | None) -> float | None:
    if not metrics or metrics.get("auroc") is None:
        return None
    lo = (metrics.get("auroc_ci95") or [None])[0]
    return metrics["auroc"] if lo is None else lo


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def gate(cmp: dict) -> dict:
    """{passed, reasons, mean_auroc_lower: {candidate, active, conditions}, validated: [...]} of a comparison."""
    if cmp["active"] is None:
        return {"passed": True, "reasons": [], "note": "no active model version: nothing to be worse than",
                "mean_auroc_lower": None, "validated": []}
    if cmp["active"]["id"] == (cmp["candidate"] or {}).get("id"):
        return {"passed": False, "reasons": ["the candidate is already the active version"],
                "mean_auroc_lower": None, "validated": []}
    reasons: list[str] = []
    rows = cmp["conditions"]
    if all(r["active"] is None for r in rows):
        reasons.append(f"the active version could not be scored on the run's test cases "
                       f"({cmp['active_metrics_source']})")
    both = [r for r in rows if _lower(r["candidate"]) is not None and _lower(r["active"]) is not None]
    cand_lb = _mean([_lower(r["candidate"]) for r in both])
    act_lb = _mean([_lower(r["active"]) for r in both])
    if rows and not both and not reasons:
        reasons.append("no condition has an AUROC for both versions on the test split (too few cases)")
    if cand_lb is not None and cand_lb < act_lb:
        reasons.append(f"mean AUROC lower bound {cand_lb:.3f} < active {act_lb:.3f} "
                       f"(over {len(both)} conditions)")
    validated = [r["condition"] for r in rows if r["validated"]["active"] or r["validated"]["candidate"]]
    for r in rows:
        if r["condition"] not in validated:
            continue
        if r["validated"]["active"] and not r["validated"]["candidate"]:
            reasons.append(f"{r['condition']}: validated for the active version, not for the candidate "
                           "(the candidate would stop calling it)")
            continue
        c, a = _lower(r["candidate"]), _lower(r["active"])
        if c is not None and a is not None and c < a:
            reasons.append(f"{r['condition']}: AUROC lower bound {c:.3f} < active {a:.3f}")
    return {"passed": not reasons, "reasons": reasons, "validated": validated,
            "mean_auroc_lower": {"candidate": cand_lb, "active": act_lb, "conditions": len(both)}}


def parse_reason(raw, required: bool) -> str:
    if raw is None or raw == "":
        if required:
            raise Invalid("a written reason is required", field="reason")
        return ""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise Invalid("reason must be text (no NUL characters)", field="reason")
    if len(raw) > REASON_MAX:
        raise Invalid(f"reason is at most {REASON_MAX} characters", field="reason")
    return raw.strip()


def _undecided(run_id: int) -> TrainingRun:
    run = (TrainingRun.objects.select_for_update(of=("self",))
           .select_related("dataset", "base_model", "candidate").get(pk=run_id))
    if run.decision:
        raise Conflict(f"training run {run.pk}'s candidate was already {run.decision}", status=run.decision)
    if run.candidate is not None and run.candidate.state != ModelVersion.CANDIDATE:
        raise Conflict(f"{run.candidate.name} {run.candidate.version} is {run.candidate.state}, not a candidate",
                       status=run.candidate.state)
    return run


def _decide(run: TrainingRun, decision: str, reason: str, user, result: dict, cmp: dict | None) -> None:
    """Record the decision on the run, with the gate and the comparison as they stood (once the candidate is
    active, a fresh comparison would compare it with itself)."""
    run.decision, run.decision_reason, run.decided_by, run.decided_at = decision, reason, user, timezone.now()
    run.gate = {**result, "comparison": cmp} if cmp is not None else result
    run.save(update_fields=["decision", "decision_reason", "decided_by", "decided_at", "gate"])


def promote(run_id: int, user, reason=None, request=None) -> TrainingRun:
    """Promote the run's candidate if the gate passes, or with a written override reason; else Conflict."""
    reason = parse_reason(reason, required=False)
    with transaction.atomic():
        run = _undecided(run_id)
        cmp = comparison.compare(run)  # Conflict unless the run succeeded
        result = gate(cmp)
        if not result["passed"] and not reason:
            raise Conflict("promotion refused by the gate: " + "; ".join(result["reasons"])
                           + ". An admin may override with a written reason.", gate=result)
        previous = cmp["active"]
        result["override"] = not result["passed"]
        registry.promote(run.candidate)
        _decide(run, TrainingRun.PROMOTED, reason, user, result, cmp)
        record(AuditEvent.ADMIN, "training-run", run.pk, user=user, request=request, detail={
            "decision": "promote", "override": result["override"], "reason": reason,
            "candidate": cmp["candidate"], "previous_active": previous, "gate": result})
    return run


def reject(run_id: int, user, reason=None, request=None) -> TrainingRun:
    """Reject the run's candidate with a written reason: it is retired and never promoted from this run."""
    reason = parse_reason(reason, required=True)
    with transaction.atomic():
        run = _undecided(run_id)
        if run.status != TrainingRun.SUCCEEDED or run.candidate is None:
            raise Conflict(f"training run {run.pk} is {run.status}; only a candidate can be rejected",
                           status=run.status)
        cmp = None
        try:
            cmp = comparison.compare(run)
            result = gate(cmp)
        except (Conflict, OSError, RuntimeError, ValueError) as exc:  # a rejection must not depend on
            # the active version being scorable now
            result = {"passed": None, "reasons": [f"gate not computed: {exc}"]}
        ModelVersion.objects.filter(pk=run.candidate_id).update(state=ModelVersion.RETIRED)
        _decide(run, TrainingRun.REJECTED, reason, user, result, cmp)
        record(AuditEvent.ADMIN, "training-run", run.pk, user=user, request=request, detail={
            "decision": "reject", "reason": reason,
            "candidate": {"id": run.candidate_id, "name": run.candidate.name, "version": run.candidate.version},
            "gate": result})
    return run
