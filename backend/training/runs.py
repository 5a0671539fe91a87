"""Training runs: start one on a dataset version, execute it on a worker, register the candidate.

A run is ``queued -> running -> succeeded | failed``. :func:`execute` (the body of the Celery task on the
``training`` queue) runs the chosen ``chain``: "probes" gathers the stored embeddings of the dataset's
studies and calls ``spinefm.train.retrain.retrain_bundle`` (new diagnosis heads, evaluated against the base heads
on the same test split); "heads" / "align+heads" run the spinefm stages on the studies' images (chain.py).
It then checks the new bundle loads and registers it as a *candidate* ModelVersion. Promotion stays a
separate, deliberate admin step behind a gate (promotion.py). Each stage is appended to the run's ``log``.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from backend import celery
from backend.errors import Conflict, Invalid
from backend.inference import jobs, registry
from backend.inference.analyzers import NO_FINDINGS
from backend.inference.models import ModelVersion

from . import chain as chain_mod
from . import embeddings
from .models import DatasetVersion, TrainingRun

log = logging.getLogger(__name__)

# name -> (default, minimum, maximum, type)
OPTIONS: dict[str, tuple[Any, Any, Any, type]] = {
    "steps": (300, 1, 20_000, int),
    "lr": (0.05, 1e-6, 10.0, float),
    "weight_decay": (1e-2, 0.0, 10.0, float),
    "seed": (0, 0, 2**31 - 1, int),
    "n_boot": (200, 0, 2000, int),
    # the stage chains (chain.py) only: segmentation-head steps, align steps and learning rate
    "seg_steps": (300, 1, 20_000, int),
    "align_steps": (200, 1, 20_000, int),
    "align_lr": (1e-4, 1e-7, 1.0, float),
}
CHAINS = chain_mod.CHAINS  # "probes": the diagnosis probes on stored embeddings (retrain.py); else chain.py


def parse_options(raw: Any) -> dict:
    if raw in (None, ""):
        raw = {}
    if not isinstance(raw, dict):
        raise Invalid("options must be an object", field="options")
    if unknown := sorted(str(k) for k in raw if k not in OPTIONS and k != "chain"):
        raise Invalid(f"unknown option(s): {', '.join(unknown)}; known: chain, {', '.join(OPTIONS)}",
                      field="options")
    chain = raw.get("chain", CHAINS[0])
    if not isinstance(chain, str) or chain not in CHAINS:
        raise Invalid(f"options.chain must be one of {', '.join(CHAINS)}", field="options.chain")
    clean: dict[str, Any] = {"chain": chain}
    for name, (default, lo, hi, kind) in OPTIONS.items():
        value = raw.get(name, default)
        ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
              and (kind is float or value == int(value)))
        if not ok or not lo <= value <= hi:
            raise Invalid(f"options.{name} must be a {kind.__name__} in [{lo}, {hi}]", field=f"options.{name}")
        clean[name] = kind(value)
    return clean


def _instance(model, raw: Any, field: str):
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not re.fullmatch(r"[0-9]{1,18}", str(raw)):
        raise Invalid(f"{field} must be the id of a {model._meta.verbose_name}", field=field)
    obj = model.objects.filter(pk=int(raw)).first()
    if obj is None:
        raise Invalid(f"no {model._meta.verbose_name} with id {raw}", field=field)
    return obj


def start(dataset: Any, user=None, base_model: Any = None, options: Any = None) -> TrainingRun:
    """Create a queued run and send it to the ``training`` queue once the transaction commits."""
    dataset = dataset if isinstance(dataset, DatasetVersion) else _instance(DatasetVersion, dataset, "dataset")
    if base_model in (None, ""):
        base = jobs.active_model_version()
        if base is None:
            raise Conflict("no active model version to retrain from; promote one or name base_model")
    else:
        base = base_model if isinstance(base_model, ModelVersion) else _instance(ModelVersion, base_model,
                                                                                 "base_model")
    if base.path == NO_FINDINGS or embeddings.key_of(base) is None:
        raise Conflict(f"{base.name} {base.version} is not a model bundle on disk; cannot retrain from it",
                       field="base_model")
    options = parse_options(options)
    celery.require_broker()
    with transaction.atomic():
        run = TrainingRun.objects.create(dataset=dataset, base_model=base, options=options, started_by=user)
        transaction.on_commit(lambda: dispatch(run.pk))
    return run


def dispatch(run_id: int) -> None:
    try:
        celery.enqueue("backend.training.tasks.run_training", run_id, retry=True,
                       retry_policy=settings.CELERY_TASK_PUBLISH_RETRY_POLICY)
    except Exception as exc:  # the broker went away between celery.require_broker() and commit
        fail(run_id, f"could not queue the run: the job queue is unavailable ({exc}); start it again")


def _log_line(progress: int, text: str):
    """An expression appending one line to the run's log in the same UPDATE (no read-modify-write race)."""
    line = f"{timezone.now().isoformat(timespec='seconds')} {progress:3d}% {text}\n"
    return Concat(F("log"), Value(line), output_field=TextField())


def set_stage(run_id: int, stage: str, progress: int) -> None:
    TrainingRun.objects.filter(pk=run_id, status=TrainingRun.RUNNING).update(
        stage=stage[:64], progress=progress, log=_log_line(progress, stage))


def fail(run_id: int, error: str) -> None:
    TrainingRun.objects.filter(pk=run_id).exclude(status=TrainingRun.SUCCEEDED).update(
        status=TrainingRun.FAILED, stage="failed", error=error, finished_at=timezone.now(),
        log=_log_line(0, f"failed: {error}"))


@transaction.atomic
def _claim(run_id: int, worker: str) -> TrainingRun | None:
    run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None or run.status in (TrainingRun.SUCCEEDED, TrainingRun.FAILED):
        return None  # deleted, or a redelivered message of a finished run
    if run.status == TrainingRun.RUNNING:
        log.warning("training run %s was running when its worker stopped; running it again", run_id)
    run.status, run.stage, run.progress, run.error = TrainingRun.RUNNING, "starting", 0, ""
    run.started_at = timezone.now()
    run.save(update_fields=["status", "stage", "progress", "error", "started_at"])
    TrainingRun.objects.filter(pk=run.pk).update(log=_log_line(0, f"started on {worker or 'a worker'}"))
    return run


def candidate_version(run: TrainingRun) -> str:
    return f"{run.base_model.version}-r{run.pk}"[:64]


def bundle_dir(run: TrainingRun) -> Path:
    return Path(settings.DATA_DIR) / "bundles" / f"{run.base_model.name}-{candidate_version(run)}"


def _dataset_record(ds: DatasetVersion) -> dict:
    return {"id": ds.pk, "name": ds.name, "version": ds.version, "sha256": ds.sha256, "synthetic": ds.synthetic,
            "items": len(ds.items), "split_seed": ds.split_seed}


def _retrain(run: TrainingRun, examples: dict, out: Path):
    import torch

    from spinefm.train.retrain import retrain_bundle

    torch.set_num_threads(settings.SPINEAGENT_TORCH_THREADS)
    o = run.options or parse_options({})

    def progress(stage: str, pct: int) -> None:  # retrain's 0-100 mapped into this run's 20-85
        set_stage(run.pk, stage, 20 + pct * 65 // 100)

    return retrain_bundle(run.base_model.path, out, examples["train"], examples["test"], examples["val"],
                          version=candidate_version(run), name=run.base_model.name,
                          dataset=_dataset_record(run.dataset), steps=o["steps"], lr=o["lr"],
                          weight_decay=o["weight_decay"], seed=o["seed"], n_boot=o["n_boot"], progress=progress)


def log_line(run_id: int, text: str) -> None:
    """One output line of a stage into the run's log (progress unchanged)."""
    TrainingRun.objects.filter(pk=run_id, status=TrainingRun.RUNNING).update(
        log=Concat(F("log"), Value(f"{timezone.now().isoformat(timespec='seconds')} {text}\n"),
                   output_field=TextField()))


def _run_chain(run: TrainingRun, out: Path) -> tuple[dict, str]:
    """heads / align+heads (chain.py): the bundle is built in the work directory, checked, then moved to
    ``out``. Returns (metrics, notes)."""
    from spinefm.bundle import load_bundle

    staged = chain_mod.work_dir(run) / "bundle"
    metrics = chain_mod.execute(run, staged, lambda stage, pct: set_stage(run.pk, stage, pct),
                                lambda text: log_line(run.pk, text), candidate_version(run))
    set_stage(run.pk, "checking the new bundle loads", 88)
    load_bundle(staged)  # every hash and every weight shape, exactly as a worker will load it
    out.parent.mkdir(parents=True, exist_ok=True)
    staged.rename(out)
    return ({**metrics, "skipped": [], "n_skipped": 0},
            f"retrained ({run.options['chain']}) from {run.base_model.name} {run.base_model.version} on images of "
            f"dataset {run.dataset.name} v{run.dataset.version} (training run {run.pk})")


def _run_probes(run: TrainingRun, out: Path) -> tuple[dict, str]:
    """The diagnosis probes on the stored case embeddings (retrain.py). Returns (metrics, notes)."""
    set_stage(run.pk, "gathering embeddings", 5)
    examples, skipped = embeddings.gather(run.dataset.items, run.base_model)
    result = _retrain(run, examples, out)
    set_stage(run.pk, "checking the new bundle loads", 88)
    from spinefm.bundle import load_bundle

    load_bundle(out)  # every hash and every weight shape, exactly as a worker will load it
    return ({**result.metrics, "skipped": skipped, "n_skipped": len(skipped)},
            f"retrained diagnosis heads of {run.base_model.name} {run.base_model.version} on dataset "
            f"{run.dataset.name} v{run.dataset.version} (training run {run.pk})")


def execute(run_id: int, worker: str = "") -> str:
    """The Celery task's body. Returns the final status; every failure is recorded on the run."""
    run = _claim(run_id, worker)
    if run is None:
        return "nothing to do"
    try:
        out = bundle_dir(run)
        if out.exists():
            raise RuntimeError(f"{out} already exists (an earlier attempt of this run?); a bundle is never "
                               "overwritten: remove it or start a new run")
        if (run.options or {}).get("chain", "probes") != "probes":
            metrics, notes = _run_chain(run, out)
        else:
            metrics, notes = _run_probes(run, out)
        set_stage(run.pk, "registering candidate", 95)
        with transaction.atomic():
            candidate = registry.register_bundle(out, state=ModelVersion.CANDIDATE)
            ModelVersion.objects.filter(pk=candidate.pk).update(notes=notes)
            TrainingRun.objects.filter(pk=run.pk).update(
                status=TrainingRun.SUCCEEDED, stage="succeeded", progress=100, candidate=candidate,
                metrics=metrics,
                finished_at=timezone.now(),
                log=_log_line(100, f"succeeded: candidate {candidate.name} {candidate.version}"))
    except Exception as exc:
        log.exception("training run %s failed", run_id)
        fail(run_id, f"{exc.__class__.__name__}: {exc}")
        return TrainingRun.FAILED
    return TrainingRun.SUCCEEDED


def payload(run: TrainingRun) -> dict:
    def mv(m: ModelVersion | None):
        return None if m is None else {"id": m.pk, "name": m.name, "version": m.version, "state": m.state,
                                       "synthetic_training": m.synthetic_training, "label": m.label}

    return {
        "id": run.pk, "status": run.status, "stage": run.stage, "progress": run.progress, "error": run.error,
        "dataset": {"id": run.dataset_id, "name": run.dataset.name, "version": run.dataset.version,
                    "synthetic": run.dataset.synthetic},
        "chain": (run.options or {}).get("chain", "probes"),
        "base_model": mv(run.base_model), "candidate": mv(run.candidate), "options": run.options,
        "metrics": run.metrics, "started_by": run.started_by.username if run.started_by else None,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "log": run.log,
        "decision": None if not run.decision else {
            "decision": run.decision, "reason": run.decision_reason, "gate": run.gate,
            "by": run.decided_by.username if run.decided_by else None,
            "at": run.decided_at.isoformat() if run.decided_at else None},
    }
