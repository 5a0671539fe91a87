"""Annotator agreement and labeler accuracy, per condition, from the database.

Both reuse ``spine_labels.agreement`` (Cohen's kappa, ternary accuracy,
sensitivity/specificity), so the web figures and the CLI's agree.

* Agreement: every task with two or more annotations contributes the pair of
  its first two annotations (by submission time); kappa per condition over
  those pairs. Kappa is null where undefined (both annotators used a single
  category throughout), as sklearn gives nan.
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


def annotator_agreement() -> dict:
    pairs: dict[int, list[dict]] = defaultdict(list)
    for a in Annotation.objects.order_by("task_id", "submitted_at", "pk").only("task_id", "labels"):
        if len(pairs[a.task_id]) < 2:
            pairs[a.task_id].append(a.labels)
    doubles = [p for p in pairs.values() if len(p) == 2]
    keys = list(condition_keys())
    first, second = [p[0] for p in doubles], [p[1] for p in doubles]
    kappas = cohen_kappa(first, second, conditions=keys) if doubles else {k: math.nan for k in keys}
    out = {}
    for k in keys:
        both = [(x[k], y[k]) for x, y in zip(first, second) if k in x and k in y]
        out[k] = {"n": len(both), "kappa": _num(kappas[k]),
                  "observed_agreement": (sum(1 for x, y in both if x == y) / len(both)) if both else None}
    return {"n_tasks": len(doubles), "conditions": out}


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
