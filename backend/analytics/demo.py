"""Demo data for the dashboard: N synthetic cases signed through the real report services.

Each case is a study row (no images: ``source="demo"``, patient ``DEMO^CASE<n>``), an inference result with
simulated per-condition predictions from a demo model version, the AI draft written by the real template
drafter (spinefm.report), a demo reader who opens it, rewrites it to the case's true findings (the same
drafter on the truth) when they differ, and signs with a RADPEER score that follows what was wrong.
``versions.add_ai_draft / mark_opened / save_version / sign`` do the work, so the analytics receiver stores
the metrics exactly as for a real sign-off. Times are those of a simulated clock (django.utils.timezone.now
is patched while each step runs), spread over the last ``days`` days, so turnaround has a shape.

Nothing here is patient data and the dashboard says so (``count_in``). Run through
``manage.py seed_analytics_demo``.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from backend.accounts.roles import RADIOLOGIST
from backend.inference.models import InferenceJob, InferenceResult, ModelVersion
from backend.reports import versions
from backend.studies.models import Study
from spinefm.conditions import CONDITIONS
from spinefm.report import TemplateDrafter
from spinefm.results import AnalysisResult, ConditionPrediction, SeriesUsed

SOURCE = "demo"
UID_ROOT = "2.25.4242"  # our own UID arc for demo studies
# Findings a demo case can have, with the level they are reported at, per region.
COMMON = {"lumbar": [("herniation", "L4-L5"), ("herniation", "L5-S1"), ("canal", "L4-L5"),
                     ("neuroforaminal", "L3-L4"), ("disc_height", "L5-S1"), ("spondylolisthesis", "L4-L5"),
                     ("fracture", "L1"), ("hemangioma", "L2"), ("synovial", "L4-L5")],
          "cervical": [("herniation", "C5-C6"), ("canal", "C5-C6"), ("neuroforaminal", "C6-C7"),
                       ("compression", "C5-C6"), ("disc_height", "C6-C7")],
          "thoracic": [("fracture", "T12"), ("hemangioma", "T8"), ("herniation", "T7-T8"), ("edema", "T12")]}
BODY_PART = {"lumbar": "LSPINE", "cervical": "CSPINE", "thoracic": "TSPINE"}
SERIOUS = {"fracture", "compression", "canal"}  # missing one of these is clinically significant


def count_in(metrics_qs) -> int:
    """How many of these EditMetrics rows belong to demo studies (the dashboard labels them)."""
    return metrics_qs.filter(report__study__source=SOURCE).count()


@contextmanager
def clock(at: datetime):
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


def _readers(n: int) -> list[User]:
    group = Group.objects.get(name=RADIOLOGIST)
    readers = []
    for i in range(1, n + 1):
        user, created = User.objects.get_or_create(username=f"demo-reader-{i}")
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
        readers.append(user)
    return readers


def _models() -> list[ModelVersion]:
    return [ModelVersion.objects.get_or_create(
        name="phantom-demo", version=v, defaults={"path": "builtin:demo", "synthetic_training": True,
                                                  "notes": "demo model version for seed_analytics_demo"})[0]
            for v in ("0.1", "0.2")]


def _predictions(truth: dict[str, str], rng: random.Random, skill: float) -> list[ConditionPrediction]:
    """Simulated probabilities: true findings score high, others low, blurred by (1 - skill)."""
    out = []
    for c in CONDITIONS:
        present = c.key in truth
        p = rng.betavariate(8 * skill, 2) if present else rng.betavariate(1.2, 14 * skill)
        p = round(min(max(p, 0.0), 1.0), 3)
        out.append(ConditionPrediction(c.key, p, p >= 0.5, truth.get(c.key) or _any_level(c.key, rng)))
    return out


def _any_level(key: str, rng: random.Random) -> str | None:
    levels = [lv for k, lv in sum(COMMON.values(), []) if k == key]
    return rng.choice(levels) if levels else None


def _text(preds: list[ConditionPrediction], series: list[SeriesUsed]) -> str:
    result = AnalysisResult("phantom-demo", "demo", True, conditions=preds, series=series)
    return TemplateDrafter().draft(result)


def _score(truth: set[str], predicted: set[str], rng: random.Random) -> tuple[str, str]:
    missed, extra = truth - predicted, predicted - truth
    if not missed and not extra:
        return "1", ""
    if missed & SERIOUS:
        return "3b", f"missed {', '.join(sorted(missed & SERIOUS))}"
    if missed:
        return rng.choice(["2b", "3a"]), f"missed {', '.join(sorted(missed))}"
    return "2a", ""


def seed(n: int = 60, days: int = 30, seed: int = 8) -> int:
    """Sign ``n`` demo cases; returns how many were signed. Idempotent per case number (UIDs)."""
    rng = random.Random(seed)
    readers, models = _readers(3), _models()
    now = timezone.now()
    signed = 0
    for i in range(n):
        uid = f"{UID_ROOT}.{seed}.{i}"
        if Study.objects.filter(study_instance_uid=uid).exists():
            continue
        region = rng.choice(["lumbar", "lumbar", "lumbar", "cervical", "thoracic"])
        truth = dict(rng.sample(COMMON[region], rng.randint(0, 3)))
        model = models[i % 2]
        skill = 0.4 if model.version == "0.1" else 0.75  # the newer demo model errs less
        series = [SeriesUsed(f"{uid}.1", "T1", "sagittal", "t1", 15),
                  SeriesUsed(f"{uid}.2", "T2", "sagittal", "t2", 15)]
        preds = _predictions(truth, rng, skill)
        draft = _text(preds, series)
        final = _text([ConditionPrediction(p.condition, 0.95 if p.condition in truth else 0.02,
                                           p.condition in truth, p.level) for p in preds], series)
        predicted = {p.condition for p in preds if p.present}
        score, comment = _score(set(truth), predicted, rng)
        reader = rng.choice(readers)
        arrival = now - timedelta(days=rng.uniform(0.5, days))
        at_draft = arrival + timedelta(minutes=rng.uniform(2, 12))
        at_open = at_draft + timedelta(hours=rng.lognormvariate(0.7, 0.9))
        at_edit = at_open + timedelta(minutes=rng.uniform(2, 10))
        at_sign = at_edit + timedelta(minutes=rng.uniform(1, 8) + (10 if score != "1" else 0))
        with clock(arrival):
            study = Study.objects.create(
                study_instance_uid=uid, patient_id=f"DEMO{i:03d}", patient_name=f"DEMO^CASE{i:03d}",
                study_description="MRI SPINE (demo)", body_part=BODY_PART[region], modalities="MR",
                source=SOURCE)
        with clock(at_draft), transaction.atomic():
            job = InferenceJob.objects.create(study=study, model_version=model, status=InferenceJob.SUCCEEDED,
                                              trigger=InferenceJob.MANUAL, started_at=arrival, finished_at=at_draft)
            data = AnalysisResult("phantom-demo", model.version, True, conditions=preds, series=series,
                                  draft_text=draft, draft_backend="template").to_dict()
            result = InferenceResult.objects.create(job=job, study=study, model_version=model, data=data)
            versions.add_ai_draft(result)
        with clock(at_open):
            versions.mark_opened(study, reader)
        number = 0
        if final != draft:
            with clock(at_edit):
                number = versions.save_version(study, reader, final, 0).number
        with clock(at_sign):
            versions.sign(study, reader, number, score, comment)
        signed += 1
    return signed
