"""JSON shapes of the annotations API (the annotator page codes against these; see docs/annotation.md)."""

from __future__ import annotations

from urllib.parse import quote

from spinefm.conditions import CONDITIONS, LABEL_NAMES

from . import modes, priority, services
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
    data = result.data or {}
    return {"result_id": result.pk, "model_name": data.get("model_name"), "model_version": data.get("model_version"),
            "synthetic_training": bool(data.get("synthetic_training", True)),
            "conditions": priority.model_predictions(result)}


def preset(task: LabelTask, extractions) -> dict[str, int]:
    """Values the toggles start at: the preferred extraction's, absent where it has none."""
    best = priority.preferred(extractions)
    values = priority.values_of(best) if best else {}
    return {c.key: values.get(c.key, 0) for c in CONDITIONS}


def conditions_payload() -> list[dict]:
    return [{"key": c.key, "name": c.display_name, "group": c.group} for c in CONDITIONS]


def annotation_payload(a: Annotation) -> dict:
    return {"annotator": a.annotator.get_username(), "labels": a.labels, "comment": a.comment,
            "mode": a.mode, "extraction_seen": a.extraction_seen, "blind_labels": a.blind_labels,
            "revealed_at": a.revealed_at.isoformat() if a.revealed_at else None,
            "submitted_at": a.submitted_at.isoformat()}


def disagreements(annotations: list[Annotation]) -> list[str]:
    """Condition keys on which the submitted annotations do not all agree."""
    return [c.key for c in CONDITIONS if len({a.labels.get(c.key) for a in annotations}) > 1]


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
        "first_pass": seen.first_pass.labels if seen.first_pass else None,
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
            out["verified"] = {"labels": verified.labels, "method": verified.method,
                               "decided_by": verified.decided_by.get_username() if verified.decided_by else None,
                               "decided_at": verified.decided_at.isoformat()}
    return out
