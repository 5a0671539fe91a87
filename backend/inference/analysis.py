"""An InferenceResult as the model library's typed ``AnalysisResult``: the backend's one reader of a result.

The SR export, the worklist and annotation priorities, the condition analytics and the report panel all
take a result through ``analysis_of``, so they agree on what a stored dict means (spinefm.results.from_dict:
missing fields, results written before operating points) and on which prediction a box or a sentence
belongs to (``prediction_for``).
"""

from __future__ import annotations

from spinefm.results import AnalysisResult, ConditionPrediction


def analysis_of(result) -> AnalysisResult | None:
    """The typed reading of an InferenceResult (anything with its ``data``); None without a result."""
    if result is None:
        return None
    return AnalysisResult.from_dict(result.data or {})


def prediction_for(analysis: AnalysisResult, condition: str, level: str | None = None, *,
                   any_level: bool = False) -> ConditionPrediction | None:
    """The model's prediction of ``condition``: the first at ``level`` (a prediction without a level matches
    any), or with ``any_level`` the condition's first whatever its level."""
    for c in analysis.conditions:
        if c.condition == condition and (any_level or c.level in (None, level)):
            return c
    return None
