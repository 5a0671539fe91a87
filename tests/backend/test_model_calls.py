"""The model's calls as the backend reads them: unassessed conditions are no call (priority, analytics)."""

from types import SimpleNamespace

from backend.analytics.conditions import outcomes
from backend.annotations.priority import model_called, model_disagreement, model_predictions

RESULT = SimpleNamespace(data={"conditions": [
    {"condition": "canal", "probability": 0.9, "present": False, "status": "not_assessed"},
    {"condition": "herniation", "probability": 0.7, "present": True, "status": "present"},
    {"condition": "fracture", "probability": 0.3, "present": False, "status": "possible"},
    {"condition": "edema", "probability": 0.1, "present": False},  # written before operating points
]})


def test_predictions_carry_the_status_and_only_unassessed_is_no_call():
    preds = model_predictions(RESULT)
    assert preds["canal"]["status"] == "not_assessed" and preds["edema"]["status"] is None
    assert [model_called(preds[k]) for k in ("canal", "herniation", "fracture", "edema")] == [False, True, True, True]


def test_disagreement_leaves_out_unassessed_conditions():
    preds = model_predictions(RESULT)
    # canal: signed present, model "absent" only because it may not call it -> not a disagreement
    labels = {"canal": 1, "herniation": 1, "fracture": 1, "edema": 0}
    assert model_disagreement(labels, preds) == 1 / 3  # fracture: hedged, not called present
    assert model_disagreement({"canal": 1}, preds) is None


def test_condition_outcomes_exclude_unassessed_from_the_ai_side():
    rows = {r["condition"]: r for r in outcomes("draft", "Spinal canal stenosis at L4-L5.", RESULT)}
    assert rows["canal"]["ai_present"] is None and rows["canal"]["signed_label"] == 1
    assert rows["herniation"]["ai_present"] is True and rows["fracture"]["ai_present"] is False
    assert rows["edema"]["ai_present"] is False and rows["cyst"]["ai_present"] is None
