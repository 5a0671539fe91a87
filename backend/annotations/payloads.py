"""JSON shapes of the annotations API (the annotator page codes against these; see docs/annotation.md)."""

from __future__ import annotations

from urllib.parse import quote

from spinefm.conditions import CONDITIONS, LABEL_NAMES

from . import priority
from .models import LabelTask


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


def task_detail(task: LabelTask, user) -> dict:
    extractions = list(task.extractions.all())
    out = task_row(task)
    out.update({
        "text": task.text,
        "values": {str(v): name for v, name in LABEL_NAMES.items()},
        "conditions": conditions_payload(),
        "extractions": [extraction_payload(e) for e in extractions],
        "preset": preset(task, extractions),
        "viewer_url": viewer_url(task) if user.has_perm("studies.view_images") else None,
        # The model's calls only for roles that may see inference results (see docs/annotation.md).
        "model": model_payload(task) if user.has_perm("inference.view_inferenceresult") else None,
        "verified": None,
    })
    if user.has_perm("annotations.adjudicate_labels"):
        out["annotations_detail"] = [
            {"annotator": a.annotator.get_username(), "labels": a.labels, "comment": a.comment,
             "submitted_at": a.submitted_at.isoformat()}
            for a in task.annotations.select_related("annotator")]
        verified = getattr(task, "verified", None)  # reverse one-to-one: AttributeError when absent
        if verified is not None:
            out["verified"] = {"labels": verified.labels, "method": verified.method,
                               "decided_by": verified.decided_by.get_username() if verified.decided_by else None,
                               "decided_at": verified.decided_at.isoformat()}
    return out
