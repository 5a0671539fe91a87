"""Candidate vs active, per condition, side by side, on the run's own held-out test split.

Metrics of two models are only comparable on the same cases. The run measured its candidate and its base
on the dataset's test split (a probes run on the stored embeddings; a chain run, chain.py, on the images,
also the version active at the time); when the base is (still) the active version those are the two
columns. If another version has been promoted since, its diagnosis heads are evaluated now on the same
test embeddings (probes runs, when it shares the base's encoders; otherwise its column says why it is
missing).
Beside AUROC, which conditions each version may call at all (its operating points: a candidate whose
val split was too small to validate a condition never calls it), and what the candidate's calls did on
the test split (false findings per case, sensitivity).

And levels (:func:`level_rows`): a chain run measured, for each model on the test split's images, how often
its level head names the verified level of a finding verified present at a spinal level (``spinefm compare``
``levels``); the comparison puts candidate and active side by side, overall and per condition. A probes run
changes no level head and sees no images, so it has no level figures.
"""

from __future__ import annotations

from backend.errors import Conflict
from backend.inference.jobs import active_model_version
from backend.inference.models import ModelVersion
from spinefm.conditions import CONDITIONS

from . import embeddings
from .models import TrainingRun


def _version(mv: ModelVersion | None) -> dict | None:
    return None if mv is None else {"id": mv.pk, "name": mv.name, "version": mv.version, "state": mv.state,
                                    "label": mv.label}


def _validated(mv: ModelVersion | None) -> dict[str, bool] | None:
    """{condition: validated} from the version's operating points (docs/models.md); None when its bundle
    has none (every condition callable at thresholds from training data) or cannot be read."""
    if mv is None:
        return None
    from spinefm.bundle import BundleError, read_manifest

    try:
        points = read_manifest(mv.path).get("operating_points")
    except (BundleError, OSError, ValueError):
        return None
    return None if not points else {p["condition"]: bool(p["validated"]) for p in points["points"]}


def _evaluate_other(run: TrainingRun, active: ModelVersion) -> tuple[dict | None, str]:
    """The active version's heads on the run's test embeddings, or (None, why not)."""
    if embeddings.key_of(active) is None or embeddings.key_of(active) != embeddings.key_of(run.base_model):
        return None, "the active version embeds studies differently; its heads cannot be scored on these embeddings"
    from spinefm.train.retrain import evaluate_head, label_matrix, load_diagnosis_head

    examples, _ = embeddings.gather([i for i in run.dataset.items if i["split"] == "test"], run.base_model)
    head = load_diagnosis_head(active.path)
    x, y = label_matrix(examples["test"], list(head.conditions), embeddings.embedding_dim(run.base_model))
    return evaluate_head(head, x, y, n_boot=(run.options or {}).get("n_boot", 200),
                         seed=(run.options or {}).get("seed", 0)), "evaluated now on the run's test split"


def _evaluated_by_chain(run: TrainingRun, active: ModelVersion) -> tuple[dict | None, str]:
    """A chain run (chain.py) scored the models on the test split's images, not on stored embeddings: the
    active version's column is the run's own measurement of it, if it was the active one then."""
    then = run.metrics.get("active_at_run") or {}
    if then.get("id") == active.pk and then.get("metrics") is not None:
        return then["metrics"], "the active version, evaluated by the run on the test split's images"
    why = (run.metrics.get("reference_errors") or {}).get("active")
    return None, (f"the active version could not be scored by the run ({why})" if why and then.get("id") == active.pk
                  else "the active version changed since this run; a chain run compares on images, not stored "
                       "embeddings: start a new run to compare with it")


def _accuracy(levels: dict | None) -> float | None:
    return ((levels or {}).get("accuracy") or {}).get("value")


def level_rows(candidate: dict, active: dict | None) -> dict | None:
    """Per-level agreement on the test split of candidate and active (their metrics' ``levels``), overall and
    per condition, with the candidate-minus-active difference in exact accuracy; None when the run measured
    no levels (a probes run, or a run from before levels were measured)."""
    cand = candidate.get("levels")
    if cand is None:
        return None
    act = (active or {}).get("levels")
    delta = None if _accuracy(cand) is None or _accuracy(act) is None else _accuracy(cand) - _accuracy(act)
    conds = sorted(set(cand.get("per_condition", {})) | set((act or {}).get("per_condition", {})))
    rows = []
    for c in conds:
        a, b = cand.get("per_condition", {}).get(c), (act or {}).get("per_condition", {}).get(c)
        rows.append({"condition": c, "candidate": a, "active": b,
                     "delta_accuracy": None if a is None or b is None else a["accuracy"] - b["accuracy"]})
    return {"what": "level of findings verified present at a spinal level, named by each model's level head at "
                    "its segmentation agent's box (test split)",
            "n_findings": cand["n_findings"], "candidate": cand, "active": act, "delta_accuracy": delta,
            "conditions": rows}


def compare(run: TrainingRun) -> dict:
    if run.status != TrainingRun.SUCCEEDED or run.candidate is None:
        raise Conflict(f"training run {run.pk} is {run.status}; a comparison needs a succeeded run",
                       status=run.status)
    metrics = run.metrics
    active = active_model_version()
    if active is None:
        active_metrics, how = None, "no active model version"
    elif active.pk == run.base_model_id:
        active_metrics, how = metrics["base"], "the run's base model, measured by the run on its test split"
        if metrics.get("chain", "probes") != "probes":
            why = (metrics.get("reference_errors") or {}).get("base")
            how = (f"the run's base model, which could not be scored on the test split's images ({why})"
                   if active_metrics is None else "the run's base model, measured by the run on the test "
                                                  "split's images (the same cases as the candidate)")
    elif active.pk == run.candidate_id:
        active_metrics, how = metrics["candidate"], "the candidate itself (already promoted)"
    elif metrics.get("chain", "probes") != "probes":
        active_metrics, how = _evaluated_by_chain(run, active)
    else:
        active_metrics, how = _evaluate_other(run, active)
    cand = metrics["candidate"]["per_condition"]
    validated = {"candidate": _validated(run.candidate), "active": _validated(active)}
    registry = [c.key for c in CONDITIONS]  # rows in registry order (JSONB does not keep key order)
    rows = []
    for cond in sorted(cand, key=lambda k: (registry.index(k) if k in registry else len(registry), k)):
        c = cand[cond]
        a = (active_metrics or {}).get("per_condition", {}).get(cond)
        delta = None if a is None or a["auroc"] is None or c["auroc"] is None else c["auroc"] - a["auroc"]
        rows.append({"condition": cond, "candidate": c, "active": a, "delta_auroc": delta,
                     "validated": {k: None if v is None else v.get(cond) for k, v in validated.items()}})
    return {
        "run": run.pk, "label": metrics.get("label", ""), "split": "test", "n_test": metrics.get("n_test"),
        "dataset": {"id": run.dataset_id, "name": run.dataset.name, "version": run.dataset.version},
        "candidate": _version(run.candidate), "active": _version(active), "base": _version(run.base_model),
        "active_metrics_source": how,
        "mean_auroc": {"candidate": metrics["candidate"]["mean_auroc"],
                       "active": None if active_metrics is None else active_metrics["mean_auroc"]},
        "conditions": rows,
        # which conditions each model may call at all, and what the candidate's calls did on the test split
        "validated_conditions": {k: None if v is None else [c for c, ok in v.items() if ok]
                                 for k, v in validated.items()},
        "candidate_calls_test": metrics.get("operating_points_test"),
        "levels": level_rows(metrics["candidate"], active_metrics),
    }
