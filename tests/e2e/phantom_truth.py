"""Stand-in model output from a phantom's ground truth, for when no trained bundle is on disk.

The e2e test runs the real pipeline (upload, Orthanc, Celery worker, the active model). The shipped
placeholder model (``builtin:no-findings``) finds nothing, which leaves the viewer nothing to draw; until
``models/bundles/spineagent-phantom-nano`` exists, the test swaps the stored result for the phantom's own
truth (labelled ``phantom-ground-truth``, never a model) so the viewer side is still exercised.
"""

from __future__ import annotations

NAME = "phantom-ground-truth"


def truth_result(truth: dict) -> dict:
    """The phantom's truth in the AnalysisResult shape (spinefm.results)."""
    by_condition = {f["condition"]: f for f in truth["findings"]}
    conditions, key_slices, boxes = [], [], []
    for condition, label in truth["labels"].items():
        finding = by_condition.get(condition)
        level = finding["level"] if finding else None
        conditions.append({"condition": condition, "probability": 0.93 if label == 1 else 0.04,
                           "present": label == 1, "level": level})
        if not finding:
            continue
        n = len(finding["key_slices"])
        for rank, ks in enumerate(finding["key_slices"]):
            key_slices.append({"condition": condition, **ks, "score": round(0.9 - 0.05 * rank / max(n, 1), 3)})
        for rank, b in enumerate(finding["boxes"][:2]):  # two boxes per finding keep the image readable
            boxes.append({"condition": condition, "series_instance_uid": b["series_instance_uid"],
                          "sop_instance_uid": b["sop_instance_uid"], "box": b["box"],
                          "score": round(0.88 - 0.1 * rank, 3), "level": level})
    return {"model_name": NAME, "model_version": "truth", "synthetic_training": True,
            "conditions": conditions, "key_slices": key_slices, "boxes": boxes,
            "similar_cases": [{"case_id": "phantom-S1-0007", "score": 0.82,
                               "report": "Similar phantom case (stand-in text).\nIMPRESSION: see findings."}],
            "series": [], "draft_text": truth["report"]["text"], "draft_backend": "ground-truth", "timings": {}}


def apply_truth(study_uid: str, truth: dict) -> None:
    """Store the truth stand-in as a newer finished result of the study, the way a re-run would land.

    Report versions are immutable, so the stand-in draft arrives as a newer AI version through the
    reports app's own ``add_ai_draft`` (allowed while no human has edited).
    """
    from django.utils import timezone

    from backend.inference.models import InferenceJob, InferenceResult
    from backend.reports.versions import add_ai_draft
    from backend.studies.models import Study

    study = Study.objects.get(study_instance_uid=study_uid)
    now = timezone.now()
    job = InferenceJob.objects.create(study=study, status=InferenceJob.SUCCEEDED, trigger=InferenceJob.MANUAL,
                                      stage="done", progress=100, worker=NAME, started_at=now, finished_at=now)
    result = InferenceResult.objects.create(job=job, study=study, data=truth_result(truth))
    add_ai_draft(result)
