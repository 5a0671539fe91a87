"""Annotator agreement and labeler accuracy, per condition, from the database.

Both reuse ``spine_labels.agreement`` (Cohen's kappa, ternary accuracy,
sensitivity/specificity), so the web figures and the CLI's agree.

* Agreement: every task with two or more annotations contributes the pair of
  its first two annotations (by submission time); kappa per condition over
  those pairs. Kappa is null where undefined (both annotators used a single
  category throughout), as sklearn gives nan.
  ``by_exposure`` repeats it over the pairs in which neither annotator had seen
  the extraction (``unseen``: blind, not revealed) and those in which both had
  (``seen``: assisted, or revealed before submitting); mixed pairs are in
  neither. Agreement of anchored annotators is not agreement of readers.
* Reveal effect: blind annotations revealed before submitting, and how many of
  their rows changed after the reveal, and how many of those changed to the
  suggestion (anchoring, or the labeler catching a slip).
* Labeler accuracy: each stored extraction of a task that has verified labels,
  grouped by (labeler, labeler version), scored against the verified labels.
"""

from __future__ import annotations

import math
from collections import defaultdict

from spine_labels import cohen_kappa, evaluate
from spine_labels.schema import condition_keys

from .models import Annotation, Extraction
from .priority import values_of


def _num(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def _agreement(pairs: list[tuple[Annotation, Annotation]]) -> dict:
    keys = list(condition_keys())
    first, second = [a.labels for a, _ in pairs], [b.labels for _, b in pairs]
    kappas = cohen_kappa(first, second, conditions=keys) if pairs else {k: math.nan for k in keys}
    out = {}
    for k in keys:
        both = [(x[k], y[k]) for x, y in zip(first, second) if k in x and k in y]
        out[k] = {"n": len(both), "kappa": _num(kappas[k]),
                  "observed_agreement": (sum(1 for x, y in both if x == y) / len(both)) if both else None}
    return {"n_tasks": len(pairs), "conditions": out}


def annotator_agreement() -> dict:
    firsts: dict[int, list[Annotation]] = defaultdict(list)
    for a in Annotation.objects.order_by("task_id", "submitted_at", "pk").only("task_id", "labels", "extraction_seen"):
        if len(firsts[a.task_id]) < 2:
            firsts[a.task_id].append(a)
    pairs = [(p[0], p[1]) for p in firsts.values() if len(p) == 2]
    out = _agreement(pairs)
    out["by_exposure"] = {
        "unseen": _agreement([(a, b) for a, b in pairs if not a.extraction_seen and not b.extraction_seen]),
        "seen": _agreement([(a, b) for a, b in pairs if a.extraction_seen and b.extraction_seen]),
    }
    return out


def reveal_effect() -> dict:
    n = rows = changed = to_suggestion = 0
    for a in Annotation.objects.filter(blind_labels__isnull=False).select_related("extraction").order_by("pk"):
        suggested = values_of(a.extraction) if a.extraction else {}
        n += 1
        for k, v in a.labels.items():
            rows += 1
            if a.blind_labels.get(k) != v:
                changed += 1
                to_suggestion += suggested.get(k) == v
    return {"n_annotations": n, "rows": rows, "rows_changed": changed, "changed_to_suggestion": to_suggestion}


def labeler_accuracy() -> list[dict]:
    groups: dict[tuple[str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    rows = (Extraction.objects.filter(task__verified__isnull=False).select_related("task__verified")
            .order_by("labeler", "labeler_version", "task_id"))
    for e in rows:
        truth, pred = groups[(e.labeler, e.labeler_version)]
        truth.append(e.task.verified.labels)
        pred.append(values_of(e))
    out = []
    for (labeler, version), (truth, pred) in sorted(groups.items()):
        metrics = evaluate(truth, pred, conditions=list(condition_keys()))
        conditions = {k: {name: _num(v) for name, v in m.to_dict().items() if name != "condition"}
                      for k, m in metrics.items()}
        accs = [m.accuracy for m in metrics.values() if not math.isnan(m.accuracy)]
        out.append({"labeler": labeler, "labeler_version": version, "n_tasks": len(truth),
                    "macro_accuracy": sum(accs) / len(accs) if accs else None, "conditions": conditions})
    return out
