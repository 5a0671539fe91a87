"""Active prioritisation: which report should a human verify first.

Two signals, each in [0, 1], stored on the task so the queue can sort in SQL:

* ``model_uncertainty``: the mean binary entropy (in bits) of the model's
  per-condition probabilities in the study's latest inference result. We use
  entropy rather than closeness to the decision threshold because the result
  stores probabilities but not the per-condition thresholds the model used;
  entropy is 1 at p = 0.5 and 0 at p in {0, 1}. Labels of studies the model is
  unsure about are the ones that teach it most. None while the study has no
  result (reports are often imported before their images).
* ``labeler_disagreement``: the largest fraction of conditions on which two
  sources disagree, over the pairs that exist: rules vs LLM extraction (both
  ternary, compared exactly), and the preferred extraction vs the model's
  present/absent call (conditions the extraction marks uncertain, or the model
  did not assess, are left out of that pair, since neither is a call). None
  when no pair exists.

``priority`` is the mean of the signals that exist (0 when none), so a task
with any reason for doubt is served before one without.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from spine_labels.schema import SOURCE_FALLBACK, SOURCE_LLM, SOURCE_RULES, condition_keys
from spinefm.conditions import LabelValue
from spinefm.results import Call

from backend.inference.analysis import analysis_of
from backend.inference.models import InferenceResult

# Which extraction presets the annotator's toggles and stands for "the labeler": a validated LLM reading
# first, then the rules; an LLM run that fell back entirely to the rules is the rules again.
PREFERENCE = (SOURCE_LLM, SOURCE_RULES, SOURCE_FALLBACK)


def binary_entropy(p: float) -> float:
    p = min(1.0, max(0.0, float(p)))
    if p in (0.0, 1.0):
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def model_predictions(result: InferenceResult | None) -> dict[str, dict]:
    """{condition: {"probability", "present", "level", "status"}} of a result (first prediction per
    condition); ``status`` is None in results written before the bundle's operating points."""
    out: dict[str, dict] = {}
    analysis = analysis_of(result)
    for c in analysis.conditions if analysis else []:
        if c.condition not in out:
            out[c.condition] = {"probability": float(c.probability), "present": bool(c.present), "level": c.level,
                                "status": c.status}
    return out


def model_called(prediction: Mapping) -> bool:
    """Whether the model made a present/absent call: a condition its bundle failed to validate
    (status "not_assessed") has a probability but no call, so it cannot agree or disagree."""
    return prediction["status"] != Call.NOT_ASSESSED


def uncertainty(predictions: Mapping[str, Mapping]) -> float | None:
    values = [binary_entropy(p["probability"]) for p in predictions.values()]
    return sum(values) / len(values) if values else None


def ternary_disagreement(a: Mapping[str, int], b: Mapping[str, int]) -> float | None:
    keys = [k for k in condition_keys() if k in a and k in b]
    return sum(1 for k in keys if a[k] != b[k]) / len(keys) if keys else None


def model_disagreement(labels: Mapping[str, int], predictions: Mapping[str, Mapping]) -> float | None:
    keys = [k for k in condition_keys()
            if k in labels and k in predictions and labels[k] != LabelValue.UNCERTAIN and model_called(predictions[k])]
    if not keys:
        return None
    return sum(1 for k in keys if (labels[k] == LabelValue.PRESENT) != predictions[k]["present"]) / len(keys)


def preferred(extractions) -> object | None:
    """The extraction to show first: by PREFERENCE, newest within a source."""
    ranked = sorted(extractions, key=lambda e: (PREFERENCE.index(e.labeler) if e.labeler in PREFERENCE
                                                 else len(PREFERENCE), -e.pk))
    return ranked[0] if ranked else None


def values_of(extraction) -> dict[str, int]:
    return {k: int(v["value"]) for k, v in (extraction.labels.get("labels") or {}).items()}


def disagreement(extractions, predictions: Mapping[str, Mapping]) -> float | None:
    by_source = {}
    for e in sorted(extractions, key=lambda e: e.pk):
        by_source[e.labeler] = e  # newest per source
    pairs = []
    if SOURCE_RULES in by_source and SOURCE_LLM in by_source:
        pairs.append(ternary_disagreement(values_of(by_source[SOURCE_RULES]), values_of(by_source[SOURCE_LLM])))
    best = preferred(extractions)
    if best is not None and predictions:
        pairs.append(model_disagreement(values_of(best), predictions))
    pairs = [p for p in pairs if p is not None]
    return max(pairs) if pairs else None


def combine(*signals: float | None) -> float:
    present = [s for s in signals if s is not None]
    return sum(present) / len(present) if present else 0.0


def latest_result(task) -> InferenceResult | None:
    study_id = task.study_id
    if study_id is None:
        return None
    return InferenceResult.objects.filter(study_id=study_id).order_by("-created_at", "-pk").first()


def refresh(task, save: bool = True):
    """Recompute the task's signals from its extractions and the study's latest result."""
    predictions = model_predictions(latest_result(task))
    extractions = list(task.extractions.all())
    task.model_uncertainty = uncertainty(predictions)
    task.labeler_disagreement = disagreement(extractions, predictions)
    task.priority = combine(task.model_uncertainty, task.labeler_disagreement)
    if save:
        task.save(update_fields=["model_uncertainty", "labeler_disagreement", "priority", "updated_at"])
    return task
