"""Run a labeler on synthetic phantom reports and score it against their truth.

The phantom generator (package ``spine_phantom``) writes each study's report
from a template together with the labels it encoded, so this is a check
that the labeler reads our own generator's phrasing, not evidence of accuracy
on real reports. Imported lazily: spine_labels must work without it.
"""

from __future__ import annotations

from typing import Any, Callable

from .agreement import ConditionMetrics, evaluate
from .schema import LabelSet


def _truth_of(study: Any) -> dict[str, Any]:
    truth = study.truth if hasattr(study, "truth") else study["truth"]
    return truth if isinstance(truth, dict) else vars(truth)


def quick_config() -> Any:
    """Small images, no axial or extra series: a fast smoke-test setting, not for reported numbers."""
    from spine_phantom import PhantomConfig
    return PhantomConfig(image_size=(64, 64), include_axial=False, include_other_sequence=False)


def phantom_reports(n: int, seed: int, config: Any = None) -> list[tuple[str, dict[str, int]]]:
    """(report text, truth labels) for phantom studies 0..n-1 of ``seed``."""
    from spine_phantom import generate_study

    out = []
    for i in range(n):
        truth = _truth_of(generate_study(seed, i) if config is None else generate_study(seed, i, config))
        report = truth["report"]
        text = report["text"] if isinstance(report, dict) else str(report)
        out.append((text, {k: int(v) for k, v in truth["labels"].items()}))
    return out


def evaluate_phantoms(n: int, seed: int, label: Callable[[str], LabelSet],
                      config: Any = None) -> tuple[dict[str, ConditionMetrics], list[dict[str, Any]]]:
    """Per-condition metrics, plus the disagreeing cases (for inspecting errors)."""
    pairs = phantom_reports(n, seed, config)
    preds = [label(text) for text, _ in pairs]
    truths = [t for _, t in pairs]
    metrics = evaluate(truths, preds)
    misses = []
    for i, ((text, t), p) in enumerate(zip(pairs, preds)):
        for k, v in t.items():
            if k in p.labels and p[k].value != v:
                misses.append({"index": i, "condition": k, "truth": v, "pred": p[k].value,
                               "evidence": [e.sentence for e in p[k].evidence], "text": text})
    return metrics, misses
