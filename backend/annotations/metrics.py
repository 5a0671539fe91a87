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
  ``fleiss``: Fleiss' kappa per condition over the tasks with three or more annotations, all of them
  (``spine_labels.fleiss_kappa``; the number of annotators may vary by task).
  Every kappa has a 95% interval: the delete-one jackknife over tasks (``spine_labels.jackknife_ci``,
  estimate +- 1.96 SE, clipped to [-1, 1]; null when fewer than two tasks, a leave-one-out kappa is
  undefined, or, for Cohen's, one annotator used a single value throughout).
  ``levels`` and ``fleiss.levels``: the same per condition x level (``levels.of_annotation``; rows made before
  per-level labels count at "study"). A task contributes one rating per annotator for every level any of its
  annotators named for the condition ("study" included); a level an annotator did not name is absent for them.
* Reveal effect: blind annotations revealed before submitting, and how many of
  their rows changed after the reveal, and how many of those changed to the
  suggestion (anchoring, or the labeler catching a slip).
* Labeler accuracy: each stored extraction of a task that has verified labels,
  grouped by (labeler, labeler version), scored against the verified labels.
"""

from __future__ import annotations

import math
from collections import defaultdict

from spine_labels import evaluate, fleiss_kappa, jackknife_ci, pair_kappa_ci
from spine_labels.schema import condition_keys

from . import levels as level_labels
from .models import Annotation, Extraction
from .priority import values_of


def _num(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


CI_METHOD = "delete-one jackknife over tasks, estimate +- 1.96 SE, clipped to [-1, 1]"


def _kappa_cells(estimate_low_high: tuple) -> dict:
    kappa, low, high = estimate_low_high
    return {"kappa": _num(kappa), "ci_low": low, "ci_high": high}


def _agreement(pairs: list[tuple[Annotation, Annotation]]) -> dict:
    """Cohen's kappa per condition over the (first, second) annotation pairs of tasks."""
    out = {}
    for k in condition_keys():
        both = [(a.labels[k], b.labels[k]) for a, b in pairs if k in a.labels and k in b.labels]
        out[k] = {"n": len(both), **_kappa_cells(pair_kappa_ci(both)),
                  "observed_agreement": (sum(1 for x, y in both if x == y) / len(both)) if both else None}
    return {"n_tasks": len(pairs), "conditions": out}


def _fleiss(groups: list[list[Annotation]]) -> dict:
    """Fleiss' kappa per condition over tasks with three or more annotations (every annotation counted).

    Observed agreement: the mean over tasks of the share of agreeing annotator pairs (Fleiss' P-bar).
    """
    out = {}
    for k in condition_keys():
        ratings = [tuple(sorted(a.labels[k] for a in g if k in a.labels)) for g in groups]
        ratings = [r for r in ratings if len(r) >= 3]
        p_bar = (sum(sum(1 for i, x in enumerate(r) for y in r[i + 1:] if x == y) / (len(r) * (len(r) - 1) / 2)
                     for r in ratings) / len(ratings)) if ratings else None
        out[k] = {"n": len(ratings), **_kappa_cells(jackknife_ci(ratings, fleiss_kappa)),
                  "observed_agreement": p_bar}
    return {"n_tasks": len(groups), "annotations": sum(len(g) for g in groups), "conditions": out}


def _level_ratings(group: list[Annotation]) -> dict[tuple[str, str], tuple[int, ...]]:
    """{(condition, level): one value per annotation} of one task, over the levels any annotator named."""
    per = [level_labels.of_annotation(a) for a in group]
    out = {}
    for k in condition_keys():
        named = {lv for p in per for lv in p.get(k, {})}
        for lv in level_labels.ordered(named):
            out[(k, lv)] = tuple(p.get(k, {}).get(lv, 0) for p in per)
    return out


def _level_rows(cells: dict[tuple[str, str], list], figures) -> list[dict]:
    order = {k: i for i, k in enumerate(condition_keys())}
    rank = {lv: i for i, lv in enumerate(level_labels.KNOWN_LEVELS)}
    return [{"condition": k, "level": lv, **figures(items)}
            for (k, lv), items in sorted(cells.items(), key=lambda c: (order.get(c[0][0], len(order)),
                                                                        rank.get(c[0][1], len(rank))))]


def _cohen_levels(pairs: list[tuple[Annotation, Annotation]]) -> list[dict]:
    """Cohen's kappa per condition x level over the (first, second) annotation pairs of tasks."""
    cells: dict[tuple[str, str], list] = defaultdict(list)
    for a, b in pairs:
        for cell, (x, y) in _level_ratings([a, b]).items():
            cells[cell].append((x, y))
    return _level_rows(cells, lambda both: {
        "n": len(both), **_kappa_cells(pair_kappa_ci(both)),
        "observed_agreement": sum(1 for x, y in both if x == y) / len(both)})


def _fleiss_levels(groups: list[list[Annotation]]) -> list[dict]:
    """Fleiss' kappa per condition x level over tasks with three or more annotations."""
    cells: dict[tuple[str, str], list] = defaultdict(list)
    for g in groups:
        for cell, ratings in _level_ratings(g).items():
            cells[cell].append(tuple(sorted(ratings)))
    return _level_rows(cells, lambda ratings: {
        "n": len(ratings), **_kappa_cells(jackknife_ci(ratings, fleiss_kappa)),
        "observed_agreement": sum(sum(1 for i, x in enumerate(r) for y in r[i + 1:] if x == y)
                                  / (len(r) * (len(r) - 1) / 2) for r in ratings) / len(ratings)})


def annotator_agreement() -> dict:
    by_task: dict[int, list[Annotation]] = defaultdict(list)
    for a in Annotation.objects.order_by("task_id", "submitted_at", "pk").only("task_id", "labels", "level_labels",
                                                                                "extraction_seen"):
        by_task[a.task_id].append(a)
    pairs = [(p[0], p[1]) for p in by_task.values() if len(p) >= 2]
    out = _agreement(pairs)
    out["ci_method"] = CI_METHOD
    out["levels"] = _cohen_levels(pairs)
    triples = [g for g in by_task.values() if len(g) >= 3]
    out["fleiss"] = _fleiss(triples)
    out["fleiss"]["levels"] = _fleiss_levels(triples)
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
