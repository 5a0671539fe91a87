"""The label verification workflow: tasks in, extractions, annotations, verified labels out.

Public API (the training/datasets app calls these; keep the signatures):
``create_task``, ``extract``, ``submit_annotation``, ``adjudicate``, ``import_reports``; and for the
page, ``reveal`` (blind mode: fix the first pass, then show the extraction) and ``revision``.
Views and receivers stay thin and call these with typed arguments (the API's serializers check shapes
and types); the rules about what labels say are checked here. Refusals are ``backend.errors`` kinds:
``Invalid`` (HTTP 400, naming the field) and ``Conflict`` subclasses with their own codes (HTTP 409).

Only :class:`VerifiedLabels` are ground truth. A task with
``required_annotations = 1`` is verified by its one annotation (method
``single``); with 2 or more, identical annotations are verified as
``agreement`` and any difference sends the task to adjudication.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from backend import celery
from backend.errors import Conflict, Invalid, Stale
from spine_labels.schema import VALID_VALUES, condition_keys

from backend.studies.models import Study

from . import labelers, levels, modes, priority
from .models import Annotation, Extraction, LabelTask, Reveal, VerifiedLabels

log = logging.getLogger(__name__)

MAX_REQUIRED_ANNOTATIONS = 5
UID_MAX = 64


# ---- errors -----------------------------------------------------------------------------------------------------

class AlreadyAnnotated(Conflict):
    code = "already_annotated"


class WrongStatus(Conflict):
    code = "wrong_status"


class AlreadyRevealed(Conflict):
    code = "already_revealed"


class NotBlind(Conflict):
    code = "not_blind"


class ModeChanged(Conflict):
    code = "mode_changed"


# ---- validation -------------------------------------------------------------------------------------------------

def validate_labels(labels: Any) -> dict[str, int]:
    """{condition: 1|0|-1} for exactly the registry's conditions, or Invalid naming every problem."""
    if not isinstance(labels, Mapping):
        raise Invalid("labels must be an object {condition: 1 | 0 | -1}", field="labels")
    keys = condition_keys()
    unknown = sorted(str(k) for k in labels if k not in keys)
    missing = [k for k in keys if k not in labels]
    bad = {k: labels[k] for k in keys if k in labels
           and (isinstance(labels[k], bool) or not isinstance(labels[k], int) or labels[k] not in VALID_VALUES)}
    if unknown or missing or bad:
        parts = []
        if unknown:
            parts.append(f"unknown condition(s): {', '.join(unknown)}")
        if missing:
            parts.append(f"missing condition(s): {', '.join(missing)}")
        if bad:
            parts.append("values must be 1 (present), 0 (absent) or -1 (uncertain): "
                         + ", ".join(f"{k}={v!r}" for k, v in bad.items()))
        raise Invalid("; ".join(parts), field="labels", unknown=unknown, missing=missing,
                      bad_values={k: repr(v) for k, v in bad.items()})
    return {k: int(labels[k]) for k in keys}


def validate_level_labels(labels: Any, level_labels: Any) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(labels, level_labels) for every condition, from per-level labels and/or per-condition ones.

    Conditions without per-level labels are "study"-level; per-condition labels are derived from the levels
    (``levels.validate``), so a client may send either or both (consistent) forms.
    """
    if labels is None and level_labels is None:
        raise Invalid("labels must be an object {condition: 1 | 0 | -1} "
                      "(or send level_labels {condition: {level: 1 | 0 | -1}})", field="labels")
    composed, by_level = levels.validate(level_labels, labels, Invalid)
    clean = validate_labels(composed)
    return clean, {k: by_level.get(k) or {levels.STUDY_LEVEL: v} for k, v in clean.items()}


def _required(value: Any) -> int:
    if value is None:
        value = settings.SPINEAGENT_REQUIRED_ANNOTATIONS
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise Invalid("required_annotations must be an integer", field="required_annotations") from None
    if isinstance(value, bool) or not 1 <= n <= MAX_REQUIRED_ANNOTATIONS:
        raise Invalid(f"required_annotations must be between 1 and {MAX_REQUIRED_ANNOTATIONS}",
                      field="required_annotations")
    return n


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# ---- tasks and extraction ---------------------------------------------------------------------------------------

def create_task(*, study_instance_uid: str, text: str, source: str, patient_id: str = "", report=None,
                external_id: str = "", required_annotations: int | None = None,
                defer_llm: bool = False) -> tuple[LabelTask, bool]:
    """The task for this report text, made once per (study UID, text).

    Links the Study when it is indexed (copying its patient id when none is
    given), runs the rule labeler and, when configured, the LLM labeler
    (``defer_llm=True`` queues the LLM on Celery instead, so a sign-off or a
    bulk upload never waits on a model), and computes the priority signals.
    Returns (task, created).
    """
    uid = study_instance_uid.strip() if isinstance(study_instance_uid, str) else ""
    if not uid or len(uid) > UID_MAX:
        raise Invalid(f"study_instance_uid must be 1-{UID_MAX} characters", field="study_instance_uid")
    if not isinstance(text, str) or not text.strip():
        raise Invalid("report text is empty", field="text")
    if source not in dict(LabelTask.SOURCES):
        raise Invalid(f"source must be one of {', '.join(dict(LabelTask.SOURCES))}", field="source")
    required = _required(required_annotations)
    study = Study.objects.filter(study_instance_uid=uid).first()
    patient = (patient_id or "").strip()[:64] or (study.patient_id if study else "")
    digest = text_sha256(text)
    defaults = {"study": study, "patient_id": patient, "source": source, "report": report,
                "external_id": (external_id or "")[:128], "text": text, "required_annotations": required}
    try:
        with transaction.atomic():
            task, created = LabelTask.objects.get_or_create(study_instance_uid=uid, text_sha256=digest,
                                                            defaults=defaults)
    except IntegrityError:  # a concurrent import of the same report won the race
        task, created = LabelTask.objects.get(study_instance_uid=uid, text_sha256=digest), False
    if not created and report is not None and task.report_id is None:
        task.report = report  # an imported report later signed here with the same text: keep the link
        task.save(update_fields=["report", "updated_at"])
    if created or not task.extractions.exists():
        run_extractions(task, defer_llm=defer_llm)
    return task, created


def run_extractions(task: LabelTask, defer_llm: bool = False) -> None:
    """Rules always; the LLM too when configured. A misconfigured LLM is logged, the rules still stand."""
    extract(task, labelers.RULES)
    try:
        wants_llm = labelers.configured_name() == labelers.LLM
    except labelers.LabelerNotConfigured:
        log.exception("labeler configuration")
        return
    if not wants_llm:
        return
    if defer_llm:
        transaction.on_commit(lambda: _queue_llm(task.pk))
        return
    try:
        extract(task, labelers.LLM)
    except labelers.LabelerNotConfigured:
        log.exception("LLM labeler not configured; task %s keeps the rules extraction", task.pk)


def _queue_llm(task_id: int) -> None:
    try:
        celery.enqueue("backend.annotations.tasks.llm_extract", task_id, retry=True,
                       retry_policy={"max_retries": 1, "interval_start": 0.2})
    except Exception:
        log.exception("could not queue the LLM extraction of label task %s", task_id)


def extract(task: LabelTask, labeler=None) -> Extraction:
    """Run one labeler on the task's text and store its labels with evidence and provenance.

    ``labeler``: None (the configured one), "rules", "llm", or any object with
    ``label(text) -> LabelSet``. Re-running the same labeler version replaces
    its row. The stored ``labeler`` is what actually produced the labels
    ("llm-fallback-rules" when the LLM could not be trusted).
    """
    if labeler is None or isinstance(labeler, str):
        labeler = labelers.get_labeler(labeler)
    labels = labeler.label(task.text)
    extraction, _ = Extraction.objects.update_or_create(
        task=task, labeler=labels.source[:32], labeler_version=(labels.labeler_version or "")[:64],
        defaults={"labels": labels.to_dict()})
    priority.refresh(task)
    return extraction


def link_study(study: Study) -> int:
    """Attach tasks imported before their images to the now indexed study; refresh their signals."""
    n = 0
    for task in LabelTask.objects.filter(study_instance_uid=study.study_instance_uid):
        changed = []
        if task.study_id != study.pk:
            task.study, changed = study, changed + ["study"]
        if not task.patient_id and study.patient_id:
            task.patient_id, changed = study.patient_id[:64], changed + ["patient_id"]
        if changed:
            task.save(update_fields=changed + ["updated_at"])
        priority.refresh(task)
        n += 1
    return n


# ---- verification -----------------------------------------------------------------------------------------------

def _locked(task: LabelTask) -> LabelTask:
    return LabelTask.objects.select_for_update().get(pk=task.pk)


def _open_for(task: LabelTask, user) -> None:
    if task.status != LabelTask.OPEN:
        raise WrongStatus(f"task {task.pk} is {task.get_status_display()}, not open for annotation",
                          status=task.status)
    if task.annotations.filter(annotator=user).exists():
        raise AlreadyAnnotated(f"you already annotated task {task.pk}; one annotation per annotator")


@transaction.atomic
def reveal(task: LabelTask, user, labels: dict[str, int] | None, level_labels: dict | None = None) -> Reveal:
    """Blind mode: fix the annotator's complete first pass, after which the extraction is shown to them.

    The first pass is fixed once: the same labels again answer the same Reveal (a reloaded page),
    different ones are a 409 (the annotator changes their mind in the final labels, not the record).
    """
    # every row decided: the first pass is complete before anything is shown
    clean, by_level = validate_level_labels(labels, level_labels)
    task = _locked(task)
    if modes.current() != modes.BLIND:
        raise NotBlind("annotation is in assisted mode: the suggestions are already shown, there is nothing to reveal",
                       mode=modes.current())
    _open_for(task, user)
    existing = Reveal.objects.filter(task=task, annotator=user).first()
    if existing is not None:
        if existing.labels == clean and levels.of_annotation(existing) == by_level:
            return existing
        raise AlreadyRevealed(f"your first pass of task {task.pk} was fixed when the suggestions were revealed; "
                              "change the labels you submit instead")
    return Reveal.objects.create(task=task, annotator=user, labels=clean, level_labels=by_level,
                                 extraction=priority.preferred(list(task.extractions.all())))


@transaction.atomic
def submit_annotation(task: LabelTask, user, labels: dict[str, int] | None, comment: str | None = "", *,
                      mode: str | None = None, level_labels: dict | None = None) -> Annotation:
    """One annotator's labels for an open task; verifies or escalates once enough are in.

    Records whether the labels could have been anchored: ``mode`` blind with ``extraction_seen``
    false (never revealed), blind and seen (revealed after a first pass, kept in ``blind_labels``),
    or assisted (preset, seen). ``mode`` is what the page was opened in: if the setting changed
    since, the page's labels are refused (409 ``mode_changed``) rather than recorded under the
    wrong mode. Annotations agree when their per-level labels say the same (``levels.same``: a level not
    listed is absent), so two annotators who put a finding at different levels go to adjudication.
    """
    clean, by_level = validate_level_labels(labels, level_labels)
    task = _locked(task)
    _open_for(task, user)
    first_pass = Reveal.objects.filter(task=task, annotator=user).select_related("extraction").first()
    if first_pass is not None:
        actual, seen, shown = modes.BLIND, True, first_pass.extraction
    else:
        actual = modes.current()
        seen = actual == modes.ASSISTED
        shown = priority.preferred(list(task.extractions.all())) if seen else None
    if mode is not None and mode != actual:
        raise ModeChanged(f"task {task.pk} was opened in {mode} mode, but annotation is now {actual}; "
                          "reload the task", mode=actual)
    annotation = Annotation.objects.create(
        task=task, annotator=user, labels=clean, level_labels=by_level, comment=(comment or "").strip(), mode=actual,
        extraction_seen=seen,
        extraction=shown, blind_labels=first_pass.labels if first_pass else None,
        revealed_at=first_pass.created_at if first_pass else None)
    submitted = list(task.annotations.all())
    if len(submitted) >= task.required_annotations:
        per_level = [levels.of_annotation(a) for a in submitted]
        if all(a.labels == submitted[0].labels for a in submitted) and all(
                levels.same(p.get(k, {}), per_level[0].get(k, {})) for p in per_level for k in clean):
            single = len(submitted) == 1
            merged = {k: levels.merge([p.get(k, {}) for p in per_level]) for k in clean}
            VerifiedLabels.objects.create(task=task, labels=clean, level_labels=merged,
                                          method=VerifiedLabels.SINGLE if single else VerifiedLabels.AGREEMENT,
                                          decided_by=user if single else None)
            task.status = LabelTask.DONE
        else:
            task.status = LabelTask.ADJUDICATION
        task.save(update_fields=["status", "updated_at"])
    annotation.task = task
    return annotation


def revision(task: LabelTask) -> str:
    """A token of what an adjudicator decides on: status, annotations, extractions, verified labels.

    The page sends it back; a different token at decision time means the task changed meanwhile.
    (Priority signals are left out: a new model result re-sorts the queue but changes no label.)
    """
    state = {
        "status": task.status,
        "annotations": [[a.pk, a.annotator_id, a.labels, a.level_labels, a.comment]
                        for a in task.annotations.order_by("pk")],
        "extractions": [[e.pk, e.labeler, e.labeler_version, e.labels.get("labels")]
                        for e in task.extractions.order_by("pk")],
        "verified": VerifiedLabels.objects.filter(task=task).values_list("pk", flat=True).first(),
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


@transaction.atomic
def adjudicate(task: LabelTask, user, labels: dict[str, int] | None, *, revision_seen: str | None = None,
               level_labels: dict | None = None) -> VerifiedLabels:
    """The adjudicator's final labels for a task whose annotators disagreed.

    ``revision_seen`` (the page sends it): the :func:`revision` the adjudicator decided on; if the
    task changed since, nothing is written and the answer is 409 ``stale``.
    """
    clean, by_level = validate_level_labels(labels, level_labels)
    task = _locked(task)
    if task.status != LabelTask.ADJUDICATION:
        raise WrongStatus(f"task {task.pk} is {task.get_status_display()}, not awaiting adjudication",
                          status=task.status)
    current = revision(task)
    if revision_seen is not None and revision_seen != current:
        raise Stale(f"task {task.pk} changed since you opened it; reload it and decide again", revision=current)
    verified = VerifiedLabels.objects.create(task=task, labels=clean, level_labels=by_level,
                                             method=VerifiedLabels.ADJUDICATED,
                                             decided_by=user)
    task.status = LabelTask.DONE
    task.save(update_fields=["status", "updated_at"])
    return verified


# ---- bulk import ------------------------------------------------------------------------------------------------

@dataclass
class ImportSummary:
    rows: int = 0
    created: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "created": len(self.created), "existing": len(self.existing),
                "failed": len({e["row"] for e in self.errors if e["row"]}),
                "task_ids": self.created + self.existing, "errors": self.errors}


def _get(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def import_reports(rows: Iterable[Any], *, errors: Iterable[Any] = (), required_annotations: int | None = None,
                   defer_llm: bool = False) -> ImportSummary:
    """Tasks (source imported) from report rows: ``spine_labels`` ReportRows or mappings.

    Each row needs ``study_instance_uid`` and ``text``; ``patient_id`` and
    ``accession`` (kept as the task's external id) are optional. ``errors``
    are the parser's RowErrors, carried into the summary so one answer lists
    every problem by row number. A row that fails does not stop the others.
    """
    required = _required(required_annotations)
    summary = ImportSummary(errors=[{"row": e.row, "field": e.field, "message": e.message} for e in errors])
    for i, row in enumerate(rows, start=1):
        summary.rows += 1
        number = _get(row, "row") or i
        try:
            with transaction.atomic():
                task, created = create_task(
                    study_instance_uid=_get(row, "study_instance_uid") or "", text=_get(row, "text") or "",
                    source=LabelTask.IMPORTED, patient_id=str(_get(row, "patient_id") or ""),
                    external_id=str(_get(row, "accession") or ""), required_annotations=required,
                    defer_llm=defer_llm)
        except Invalid as exc:
            summary.errors.append({"row": number, "field": exc.extra.get("field"), "message": exc.detail})
            continue
        (summary.created if created else summary.existing).append(task.pk)
    return summary
