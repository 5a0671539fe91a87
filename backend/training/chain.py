"""The stage chain of a training run (``chain`` "heads" or "align+heads"), as ``spinefm`` subprocesses.

In the run's work directory: the dataset version's export.json (the same document as the export endpoint)
and reports.json (the label tasks' report texts) -> ``spinefm dataset build`` from Orthanc over DICOMweb
(the backend's Orthanc account; the password only in the child's environment, never on a command line),
restricted to the dataset's studies, at the base bundle's image size -> [``align --init base``] ->
``heads`` -> [``levels --level-fit prior``] -> ``calibrate --splits val`` -> ``compare`` (candidate, base and
the active version on the same test-split images, diagnoses and levels) -> ``build-bundle``. Each stage is a
child process whose output lines go into the run's log; a stage that exits non-zero fails the run with its
last lines. The finished bundle is written inside the work directory and only moved to its final place by
the caller after it loads (runs.py), so a failed run never leaves a half-written candidate.

The verified per-level labels travel in export.json; the dataset build turns each present spinal level into
a finding without a box, and when the training split has any (:func:`datasets.present_levels`), the
``levels`` stage refits the level head's per-condition prior on them, each placed at the segmentation
agent's box on its study (why only the prior: spinefm.train.levels). Without per-level labels the chain is
the one it was (no levels stage; the level head is the base's).
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from backend.annotations.models import LabelTask
from backend.inference import jobs
from backend.inference.models import ModelVersion

from . import datasets
from .models import TrainingRun

CHAINS = ("probes", "heads", "align+heads")
PASSWORD_ENV = "SPINEAGENT_DICOMWEB_PASSWORD"
LINE_MAX = 400  # one log line (tables and tracebacks stay readable, a runaway line does not flood the log)
TAIL = 12  # last output lines quoted in a failed stage's error
LOG_LINES = 300  # output lines per stage in the run's log (each is one UPDATE of a growing text)


class StageFailed(RuntimeError):
    pass


def work_dir(run: TrainingRun) -> Path:
    return Path(settings.DATA_DIR) / "training-runs" / f"run-{run.pk}"


def _child_env() -> dict:
    """The worker's environment and import path (spinefm, spine_labels), plus the DICOMweb password."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env[PASSWORD_ENV] = settings.ORTHANC_PASSWORD
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_stage(name: str, argv: list[str], say_line: Callable[[str], None], cwd: Path) -> float:
    """``python -m spinefm.cli <argv>``; its output lines to ``say_line`` (the first LOG_LINES; all of them in
    ``<cwd>/<name>.log``, per-request DICOMweb chatter only there); StageFailed on a non-zero exit."""
    command = [sys.executable, "-m", "spinefm.cli", *argv]
    say_line(f"$ spinefm {shlex.join(argv)}")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL)
    started, shown = time.monotonic(), 0
    with subprocess.Popen(command, cwd=cwd, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", bufsize=1) as proc, \
            (cwd / f"{name}.log").open("w", encoding="utf-8") as full:
        for raw in proc.stdout:
            full.write(raw)
            line = raw.rstrip()
            if not line.strip():
                continue
            line = line if len(line) <= LINE_MAX else line[:LINE_MAX] + " ..."
            tail.append(line)
            if " INFO dicomweb_client." in line:
                continue
            shown += 1
            if shown <= LOG_LINES:
                say_line(f"  {name}: {line}")
            elif shown == LOG_LINES + 1:
                say_line(f"  {name}: ... (further output in {cwd / f'{name}.log'})")
        code = proc.wait()
    if code != 0:
        raise StageFailed(f"stage {name} exited with status {code}; last output:\n" + "\n".join(tail))
    return round(time.monotonic() - started, 1)


def export(run: TrainingRun, work: Path) -> list[str]:
    """export.json (datasets.json_chunks, as the endpoint) and reports.json (each item's label-task text:
    the report the labels were verified on, which align pairs with the images); the StudyInstanceUIDs."""
    with (work / "export.json").open("w", encoding="utf-8") as f:
        for chunk in datasets.json_chunks(run.dataset):
            f.write(chunk)
    texts = dict(LabelTask.objects.filter(pk__in=[i["task_id"] for i in run.dataset.items]).values_list("pk", "text"))
    reports = [{"study_instance_uid": i["study_instance_uid"], "report": texts[i["task_id"]], "split": i["split"]}
               for i in run.dataset.items if (texts.get(i["task_id"]) or "").strip()]
    (work / "reports.json").write_text(json.dumps(reports), encoding="utf-8")
    return sorted({item["study_instance_uid"] for item in run.dataset.items})


def check_built(dataset_dir: Path, uids: list[str], label: str) -> dict:
    """Every study of the dataset version must be in the built dataset; else StageFailed naming the missing."""
    from spinefm.dataset import Dataset

    ds = Dataset(dataset_dir)
    built = {e.key for e in ds.entries}
    errors = json.loads((dataset_dir / "errors.json").read_text()) if (dataset_dir / "errors.json").is_file() else []
    missing = [u for u in uids if u not in built]
    if missing:
        # a study the server listed but could not deliver has its own error; an absent one only a table note
        why = {e.get("key"): e["error"] for e in errors
               if isinstance(e, dict) and e.get("error") and str(e.get("source", "")).startswith("dicomweb")}
        shown = "; ".join(f"{u}: {why.get(u) or 'not found on the DICOMweb server'}" for u in missing[:5])
        raise StageFailed(f"{len(missing)} of {len(uids)} studies of dataset {label} could "
                          f"not be built from Orthanc ({shown}{' ...' if len(missing) > 5 else ''})")
    splits = collections.Counter(e.split for e in ds.entries)
    return {"studies": len(built), "splits": dict(splits)}


def image_size(model: ModelVersion) -> int:
    from spinefm.bundle import read_manifest

    return int(read_manifest(model.path)["configs"]["preprocess"]["crop"])


def threads() -> str:
    return str(settings.SPINEAGENT_TORCH_THREADS)


def execute(run: TrainingRun, out: Path, set_stage: Callable[[str, int], None], say_line: Callable[[str], None],
            version: str) -> dict:
    """Run the chain; the candidate bundle is written to ``out`` (inside the work directory). Returns metrics."""
    from spinefm.train.retrain import SYNTHETIC_LABEL

    o, chain = run.options, run.options["chain"]
    work = work_dir(run)
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    common = ["--seed", str(o["seed"]), "--threads", threads(), "--no-progress"]

    set_stage("exporting the dataset version", 5)
    uids = export(run, work)

    set_stage("building the dataset from Orthanc (DICOMweb)", 8)
    dataset = work / "dataset"
    build = ["dataset", "build", "--dicomweb", settings.ORTHANC_URL + settings.ORTHANC_DICOMWEB_ROOT,
             "--user", settings.ORTHANC_USERNAME, "--password-env", PASSWORD_ENV,
             "--platform-export", str(work / "export.json"), "--reports", str(work / "reports.json"),
             "--no-label-reports", "--img-size", str(image_size(run.base_model)),
             "--split-seed", str(run.dataset.split_seed), "--out", str(dataset), "--no-progress"]
    for uid in uids:
        build.append(f"--study={uid}")  # one argv element: a value can never read as an option
    seconds["dataset"] = run_stage("dataset", build, say_line, work)
    built = check_built(dataset, uids, f"{run.dataset.name} v{run.dataset.version}")
    say_line(f"dataset: {built['studies']} studies, splits {built['splits']}")
    if not built["splits"].get("val"):
        raise StageFailed("the dataset version's val split is empty: calibrate needs held-out val cases for the "
                          "operating points (snapshot a version with a val ratio)")
    if not built["splits"].get("test"):
        raise StageFailed("the dataset version's test split is empty: nothing to evaluate the candidate on")

    init = Path(run.base_model.path)
    if chain == "align+heads":
        set_stage("align (tri-modal CLIP) from the base bundle", 15)
        seconds["align"] = run_stage("align", ["align", "--init", str(init), "--dataset", str(dataset),
                                               "--out", str(work / "align"), "--max-steps", str(o["align_steps"]),
                                               "--lr", str(o["align_lr"]), "--batch-size", "4", *common],
                                     say_line, work)
        init = work / "align"
    set_stage("heads (diagnosis and segmentation)", 35)
    seconds["heads"] = run_stage("heads", ["heads", "--init", str(init), "--dataset", str(dataset),
                                           "--out", str(work / "heads"), "--diag-steps", str(o["steps"]),
                                           "--seg-steps", str(o["seg_steps"]),
                                           "--diag-weight-decay", str(o["weight_decay"]), *common],
                                 say_line, work)
    trained, level_record = work / "heads", None
    if any(datasets.present_levels(i) for i in run.dataset.items if i["split"] == "train"):
        set_stage("levels (the level prior on the verified levels)", 48)
        seconds["levels"] = run_stage("levels", ["levels", "--init", str(trained), "--dataset", str(dataset),
                                                 "--out", str(work / "levels"), "--level-fit", "prior",
                                                 "--level-centres", "predicted", "--level-steps", str(o["steps"]),
                                                 *common], say_line, work)
        trained = work / "levels"
        level_record = json.loads((trained / "manifest.json").read_text())["level_training"]
    set_stage("calibrate (operating points on the val split)", 55)
    seconds["calibrate"] = run_stage("calibrate", ["calibrate", "--init", str(trained), "--dataset",
                                                   str(dataset), "--out", str(work / "calibrated"),
                                                   "--splits", "val", *common], say_line, work)

    set_stage("evaluating candidate and active model on the test split images", 65)
    refs = ["--reference", f"base={run.base_model.path}"]
    active = jobs.active_model_version()
    other = active is not None and active.pk != run.base_model_id and not active.path.startswith("builtin:")
    if other:
        refs += ["--reference", f"active={active.path}"]
    seconds["compare"] = run_stage("compare", ["compare", "--candidate", str(work / "calibrated"), *refs,
                                               "--dataset", str(dataset), "--split", "test",
                                               "--n-boot", str(o["n_boot"]), "--seed", str(o["seed"]),
                                               "--out", str(work / "compare.json"), "--threads", threads()],
                                   say_line, work)
    cmp = json.loads((work / "compare.json").read_text())
    synthetic = run.base_model.synthetic_training or run.dataset.synthetic
    metrics = {
        "label": SYNTHETIC_LABEL if synthetic else "retrained on verified labels", "split": "test",
        "chain": chain, "evaluated_on": "the images of the dataset's test split, embedded by each model",
        "candidate": cmp["candidate"], "base": cmp["references"].get("base"),
        "reference_errors": cmp["reference_errors"], "n_test": cmp["n_test"],
        "n_train": built["splits"].get("train", 0), "n_val": built["splits"].get("val", 0),
        "operating_points_test": cmp["operating_points_test"], "test_case_ids": cmp["case_ids"],
    }
    if level_record is not None:  # what the levels stage learnt from (build-bundle writes a manifest of its own)
        metrics["level_training"] = {k: v for k, v in level_record.items() if k != "command"}
    if other:
        metrics["active_at_run"] = {"id": active.pk, "name": active.name, "version": active.version,
                                    "metrics": cmp["references"].get("active")}
    (work / "metrics.json").write_text(json.dumps(metrics, indent=1))

    set_stage("build-bundle (weights, retrieval index, manifest)", 78)
    shutil.rmtree(out, ignore_errors=True)  # an earlier attempt's unfinished bundle (never registered)
    seconds["build-bundle"] = run_stage("build-bundle", [
        "build-bundle", "--init", str(work / "calibrated"), "--dataset", str(dataset), "--out", str(out),
        "--name", run.base_model.name, "--version", version, "--metrics", str(work / "metrics.json"),
        "--encoder-init", (f"{run.base_model.name} {run.base_model.version}"
                           + (", CLIP fine-tuned (align)" if chain == "align+heads" else "")),
        "--training-command", f"SpineAgent training run {run.pk} (chain {chain})", *common], say_line, work)
    metrics["stage_seconds"] = seconds
    return metrics
