"""JSON shapes of the annotations API (the annotator page codes against these; see docs/annotation.md)."""

from __future__ import annotations

from urllib.parse import quote

from backend.inference.analysis import analysis_of
from spinefm.conditions import CONDITIONS, LABEL_NAMES

from . import levels, modes, priority, services
from .models import Annotation, LabelTask, Reveal


def viewer_url(task: LabelTask) -> str | None:
    """Our OHIF mode on this study (as the worklist opens it); None until the images are indexed."""
    if task.study_id is None:
        return None
    return f"/viewer/spineagent?StudyInstanceUIDs={quote(task.study_instance_uid, safe='')}"


def task_row(task: LabelTask) -> dict:
    n = getattr(task, "n_annotations", None)
    return {
        "id": task.pk, "study_instance_uid": task.study_instance_uid, "patient_id": task.patient_id,
        "source": task.source, "external_id": task.external_id, "status": task.status,
        "required_annotations": task.required_annotations,
        "annotations": n if n is not None else task.annotations.count(),
        "model_uncertainty": task.model_uncertainty, "labeler_disagreement": task.labeler_disagreement,
        "priority": task.priority, "created_at": task.created_at.isoformat(),
    }


def extraction_payload(e) -> dict:
    labels = e.labels.get("labels") or {}
    return {
        "id": e.pk, "labeler": e.labeler, "labeler_version": e.labeler_version, "created_at": e.created_at.isoformat(),
        "meta": e.labels.get("meta") or {},
        "labels": {k: {"value": v.get("value"), "source": v.get("source"), "labeler_version": v.get("labeler_version"),
                       "flags": v.get("flags") or [], "evidence": v.get("evidence") or []} for k, v in labels.items()},
    }


def model_payload(task: LabelTask) -> dict | None:
    result = priority.latest_result(task)
    if result is None:
        return None
    analysis = analysis_of(result)
    return {"result_id": result.pk, "model_name": analysis.model_name or None,
            "model_version": analysis.model_version or None, "synthetic_training": bool(analysis.synthetic_training),
            "conditions": priority.model_predictions(result)}


def preset(task: LabelTask, extractions) -> dict[str, int]:
    """Values the toggles start at: the preferred extraction's, absent where it has none."""
    best = priority.preferred(extractions)
    values = priority.values_of(best) if best else {}
    return {c.key: values.get(c.key, 0) for c in CONDITIONS}


def conditions_payload() -> list[dict]:
    return [{"key": c.key, "name": c.display_name, "group": c.group,
             "has_levels": levels.levels_for(c.key) != (levels.STUDY_LEVEL,)} for c in CONDITIONS]


def suggested_levels(task: LabelTask, extractions) -> dict[str, dict[str, int]]:
    """{condition: {level: value}} of the preferred extraction: the levels offered per row ("study" when none)."""
    found = levels.extraction_levels(priority.preferred(extractions))
    return {c.key: found.get(c.key) or {levels.STUDY_LEVEL: 0} for c in CONDITIONS}


def _undecided(*many) -> dict[str, dict[str, None]]:
    keys = {k for m in many for k in (m or {})} | {c.key for c in CONDITIONS}
    return {k: {lv: None for lv in levels.ordered({lv for m in many for lv in (m or {}).get(k, {})}
                                                  or {levels.STUDY_LEVEL})} for k in keys}


def preset_levels(seen: "Seen", suggested: dict | None, annotations: list[Annotation], task: LabelTask) -> dict | None:
    """Per-level rows and the values their toggles start at (None: undecided), like ``preset`` per condition."""
    if seen.adjudicating:  # agreed conditions start at the merged levels; disputed ones list every level, empty
        per = [levels.of_annotation(a) for a in annotations]
        split = set(disagreements(annotations))
        start = _undecided(*per)
        for key in start:
            if key not in split:
                start[key] = levels.merge([p.get(key, {}) for p in per])
        return start
    if seen.annotating:
        if seen.first_pass:  # the first pass as fixed; the extraction's levels are offered beside it to add
            return levels.of_annotation(seen.first_pass)
        return {k: dict(v) for k, v in suggested.items()} if seen.mode == modes.ASSISTED and suggested else _undecided()
    if seen.mine is not None:
        return levels.of_annotation(seen.mine)
    final = getattr(task, "verified", None)
    return levels.of_annotation(final) if final is not None else None


def annotation_payload(a: Annotation) -> dict:
    return {"annotator": a.annotator.get_username(), "labels": a.labels, "level_labels": levels.of_annotation(a),
            "comment": a.comment,
            "mode": a.mode, "extraction_seen": a.extraction_seen, "blind_labels": a.blind_labels,
            "revealed_at": a.revealed_at.isoformat() if a.revealed_at else None,
            "submitted_at": a.submitted_at.isoformat()}


def disagreements(annotations: list[Annotation]) -> list[str]:
    """Condition keys on which the submitted annotations do not all agree (value, or the levels it is at)."""
    per = [levels.of_annotation(a) for a in annotations]
    return [c.key for c in CONDITIONS if len({a.labels.get(c.key) for a in annotations}) > 1
            or any(not levels.same(p.get(c.key, {}), per[0].get(c.key, {})) for p in per)]


class Seen:
    """What the caller may see of a task now. In blind mode an open task the caller may still annotate
    shows no extraction (values, evidence, flags, the model's calls) until their first pass is fixed;
    while they may still annotate it, nobody's annotations are shown (both modes)."""

    def __init__(self, task: LabelTask, user):
        self.mode = modes.current()
        self.mine = task.annotations.filter(annotator=user).first()
        self.first_pass = Reveal.objects.filter(task=task, annotator=user).first()
        self.annotating = task.status == LabelTask.OPEN and self.mine is None
        self.hidden = self.annotating and self.mode == modes.BLIND and self.first_pass is None
        self.adjudicating = task.status == LabelTask.ADJUDICATION and user.has_perm("annotations.adjudicate_labels")


def task_detail(task: LabelTask, user, seen: Seen | None = None) -> dict:
    seen = seen or Seen(task, user)
    extractions = [] if seen.hidden else list(task.extractions.all())
    suggested = None if seen.hidden else preset(task, extractions)
    suggested_by_level = None if seen.hidden else suggested_levels(task, extractions)
    annotations = [] if seen.annotating else list(task.annotations.select_related("annotator"))
    if seen.adjudicating:  # agreed rows start at the agreed value; disagreeing ones start empty
        split = set(disagreements(annotations))
        start = {c.key: None if c.key in split else annotations[0].labels.get(c.key) for c in CONDITIONS}
    elif seen.annotating:
        start = dict(seen.first_pass.labels) if seen.first_pass else (suggested if seen.mode == modes.ASSISTED else None)
    elif seen.mine is not None:
        start = seen.mine.labels
    else:  # an adjudicator looking at a closed task: its final labels
        final = getattr(task, "verified", None)
        start = final.labels if final is not None else None
    out = task_row(task)
    out.update({
        "text": task.text,
        "values": {str(v): name for v, name in LABEL_NAMES.items()},
        "conditions": conditions_payload(),
        "mode": seen.mode,
        # True while the server withholds the extraction (blind mode, before the first pass is fixed).
        "extraction_hidden": seen.hidden,
        "extractions": [extraction_payload(e) for e in extractions],
        "suggested": suggested,
        "preset": start,  # what the toggles start at (null: nothing preset)
        # Per condition x level: the levels the extraction found (withheld like it in blind mode), the rows
        # and their start values (null: undecided), the levels an annotator may add (docs/annotation.md).
        "suggested_levels": suggested_by_level,
        "preset_levels": preset_levels(seen, suggested_by_level, annotations, task),
        "known_levels": list(levels.KNOWN_LEVELS),
        "first_pass": seen.first_pass.labels if seen.first_pass else None,
        "first_pass_levels": levels.of_annotation(seen.first_pass) if seen.first_pass else None,
        "mine": annotation_payload(seen.mine) if seen.mine else None,
        "viewer_url": viewer_url(task) if user.has_perm("studies.view_images") else None,
        # The model's calls only for roles that may see inference results (see docs/annotation.md).
        "model": model_payload(task) if user.has_perm("inference.view_inferenceresult") and not seen.hidden else None,
        "verified": None,
    })
    if user.has_perm("annotations.adjudicate_labels") and not seen.annotating:
        out["annotations_detail"] = [annotation_payload(a) for a in annotations]
        out["disagreements"] = disagreements(annotations)
        out["revision"] = services.revision(task)
        verified = getattr(task, "verified", None)  # reverse one-to-one: AttributeError when absent
        if verified is not None:
            out["verified"] = {"labels": verified.labels, "level_labels": levels.of_annotation(verified),
                               "method": verified.method,
                               "decided_by": verified.decided_by.get_username() if verified.decided_by else None,
                               "decided_at": verified.decided_at.isoformat()}
    return out
