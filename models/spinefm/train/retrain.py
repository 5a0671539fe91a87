"""Retrain a bundle's diagnosis heads on stored case embeddings and write a new, verifiable bundle.

The platform stores, for every analysed study, the case embedding the
diagnosis probes consume (``AnalysisResult.embedding``: ``case_vector`` in
``analyze.py``, fed as ``model.diagnosis(case[None])``). Encoders, poolers and
the synthesizer are frozen, so retraining the probes needs no pixels: given
(embedding, labels) examples for train / val / test splits of a dataset
version, :func:`retrain_bundle`

1. fits a fresh :class:`~spinefm.heads.diagnosis.DiagnosisHead` with the very
   routine the bundle's own ``heads`` stage uses (full-batch Adam on the masked
   BCE: ``spinefm.train.heads.fit_diagnosis``); its operating points come from
   the val split when there is one (``spinefm.train.operating_points``: a
   condition is called only where the verified val labels validate it), else
   Youden's J on the training data;
2. evaluates AUROC/AUPRC per condition (``spinefm.train.metrics``, uncertain labels
   excluded) on the held-out test split for the new heads *and* for the base
   bundle's heads, on exactly the same examples, so the two are comparable;
3. copies the base bundle to a new directory, replaces ``diagnosis.safetensors``,
   recomputes every file's sha256 and writes a manifest with the new version,
   ``derived_from``, the dataset's name/version/sha256, the metrics, and
   ``synthetic_training`` = base flag OR dataset is phantom-derived. The copy is
   made in a temporary sibling directory and renamed into place, so a failure
   never leaves half a bundle behind.

Importable without Django; the backend's Celery task (``backend.training``)
gathers the examples and registers the result.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..bundle import (FORMAT, PART_FILES, BundleError, manifest_sha256, read_manifest, sha256_file, verify_files,
                     write_manifest)
from ..conditions import LabelValue
from ..heads.diagnosis import DiagnosisHead
from . import metrics as M

DIAGNOSIS_FILE = PART_FILES["diagnosis"]
SYNTHETIC_LABEL = "SYNTHETIC phantom data; not a clinical result"


class RetrainError(ValueError):
    """The inputs cannot give a meaningful retraining (empty split, wrong embedding size, ...)."""


@dataclass
class Example:
    """One labelled case: its stored case embedding and its ternary labels {condition: 1|0|-1}."""

    embedding: Sequence[float]
    labels: Mapping[str, int]
    case_id: str = ""


@dataclass
class RetrainResult:
    path: Path
    manifest: dict
    metrics: dict
    losses: dict = field(default_factory=dict)


def label_matrix(examples: Sequence[Example], conditions: Sequence[str], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, dim) float32 embeddings and (n, C) labels in ``conditions`` order; absent conditions are -1."""
    if not examples:
        return torch.zeros(0, dim), torch.zeros(0, len(conditions))
    x = torch.tensor(np.asarray([list(e.embedding) for e in examples], dtype=np.float32))
    if x.ndim != 2 or x.shape[1] != dim:
        raise RetrainError(f"embeddings have shape {tuple(x.shape)}; the diagnosis head expects (n, {dim})")
    if not torch.isfinite(x).all():
        raise RetrainError("embeddings contain NaN or infinite values")
    y = torch.tensor([[float(e.labels.get(c, LabelValue.UNCERTAIN)) for c in conditions] for e in examples])
    return x, y


def load_diagnosis_head(bundle_dir: str | Path, manifest: Mapping | None = None) -> DiagnosisHead:
    """The bundle's diagnosis head alone (no encoders loaded): probes + thresholds."""
    from safetensors.torch import load_file

    from ..model import SpineFMConfig

    bundle_dir = Path(bundle_dir)
    manifest = manifest or read_manifest(bundle_dir)
    cfg = SpineFMConfig.from_dict(manifest["configs"])
    head = DiagnosisHead(cfg.clip.proj_dim, cfg.conditions)
    try:
        head.load_state_dict(load_file(str(bundle_dir / DIAGNOSIS_FILE)), strict=True)
    except Exception as exc:
        raise BundleError(f"{bundle_dir / DIAGNOSIS_FILE}: cannot load diagnosis head ({exc})") from None
    return head.eval()


@torch.no_grad()
def evaluate_head(head: DiagnosisHead, x: torch.Tensor, y: torch.Tensor, n_boot: int = 200, seed: int = 0) -> dict:
    """Per condition AUROC (with bootstrap CI), AUPRC, n, n_pos; mean AUROC over defined conditions."""
    per: dict[str, dict] = {}
    if x.shape[0]:
        probs = torch.sigmoid(head(x)).numpy()
    for j, c in enumerate(head.conditions):
        if not x.shape[0]:
            per[c] = {"auroc": None, "auroc_ci95": [None, None], "auprc": None, "n": 0, "n_pos": 0}
            continue
        yj, pj = y[:, j].numpy(), probs[:, j]
        ci = M.with_ci(M.auroc, yj, pj, n_boot=n_boot, seed=seed)
        per[c] = {"auroc": ci["value"], "auroc_ci95": ci["ci95"], "auprc": M.auprc(yj, pj),
                  "n": ci["n"], "n_pos": ci["n_pos"]}
    return {"per_condition": per, "mean_auroc": M.mean_defined(v["auroc"] for v in per.values()),
            "n_cases": int(x.shape[0])}


def _write_state(head: DiagnosisHead, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(path), metadata={"part": "diagnosis", "format": FORMAT})


def _copy_bundle(base_dir: Path, out_dir: Path) -> Path:
    """Copy the base into a temporary sibling of ``out_dir`` (renamed into place by the caller)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    shutil.copytree(base_dir, tmp, dirs_exist_ok=True)
    return tmp


def retrain_bundle(base_dir: str | Path, out_dir: str | Path, train: Sequence[Example], test: Sequence[Example],
                   val: Sequence[Example] = (), *, version: str, name: str | None = None,
                   dataset: Mapping | None = None, steps: int = 300, lr: float = 0.05, weight_decay: float = 1e-2,
                   seed: int = 0, n_boot: int = 200,
                   progress: Callable[[str, int], None] | None = None) -> RetrainResult:
    """Train new diagnosis heads on ``train``, compare them with the base heads on ``test``, write a bundle.

    ``dataset``: {"name", "version", "sha256", "synthetic": bool, ...}, recorded in the manifest.
    ``progress(stage, percent)`` is called between steps (the Celery task shows it).
    """
    say = progress or (lambda stage, pct: None)
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    if out_dir.exists():
        raise RetrainError(f"{out_dir} already exists; a bundle is never overwritten")
    say("verifying base bundle", 5)
    base_manifest = read_manifest(base_dir)
    verify_files(base_dir, base_manifest)
    base_head = load_diagnosis_head(base_dir, base_manifest)
    conditions, dim = list(base_head.conditions), base_head.probes[base_head.conditions[0]].in_features

    x_tr, y_tr = label_matrix(train, conditions, dim)
    x_va, y_va = label_matrix(val, conditions, dim)
    x_te, y_te = label_matrix(test, conditions, dim)
    if not x_tr.shape[0]:
        raise RetrainError("the training split has no cases with a stored embedding")
    if not x_te.shape[0]:
        raise RetrainError("the test split has no cases with a stored embedding; nothing to evaluate on")
    if not ((y_tr == 0) | (y_tr == 1)).any():
        raise RetrainError("the training split has only uncertain labels")

    say("training diagnosis heads", 20)
    from .heads import fit_diagnosis
    from .operating_points import apply_operating_points, fit_operating_points, held_out_counts

    torch.manual_seed(seed)
    head = DiagnosisHead(dim, conditions, input_scale=base_head.input_scale)
    head.train()
    with torch.no_grad():
        initial_loss = float(head.loss(x_tr, y_tr))
    final_loss = fit_diagnosis(head, x_tr, y_tr, steps=steps, lr=lr, weight_decay=weight_decay)
    head.eval()
    losses = {"initial": initial_loss, "final": final_loss}
    points = None
    if x_va.shape[0]:
        say("operating points on the val split", 50)
        with torch.no_grad():
            points = fit_operating_points(torch.sigmoid(head(x_va)), y_va, conditions)
        apply_operating_points(head, points)

    say("evaluating on the test split", 60)
    synthetic = bool(base_manifest.get("synthetic_training", True)) or bool((dataset or {}).get("synthetic", False))
    metrics = {
        "label": SYNTHETIC_LABEL if synthetic else "retrained on verified labels",
        "split": "test",
        "candidate": evaluate_head(head, x_te, y_te, n_boot, seed),
        "base": evaluate_head(base_head, x_te, y_te, n_boot, seed),
        "val": {"candidate": evaluate_head(head, x_va, y_va, n_boot, seed),
                "base": evaluate_head(base_head, x_va, y_va, n_boot, seed)},
        "n_train": int(x_tr.shape[0]), "n_val": int(x_va.shape[0]), "n_test": int(x_te.shape[0]),
        "train_loss": losses,
    }
    if x_te.shape[0]:
        with torch.no_grad():
            metrics["operating_points_test"] = held_out_counts(torch.sigmoid(head(x_te)), y_te, head)

    say("writing bundle", 80)
    tmp = _copy_bundle(base_dir, out_dir)
    try:
        _write_state(head, tmp / DIAGNOSIS_FILE)
        files = {fname: sha256_file(tmp / fname) for fname in base_manifest["files"]}
        manifest = dict(base_manifest)
        manifest.update({
            "name": name or base_manifest["name"], "version": str(version),
            "metrics": metrics, "synthetic_training": synthetic,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files,
            "derived_from": {"name": base_manifest["name"], "version": str(base_manifest["version"]),
                             "manifest_sha256": manifest_sha256(base_dir)},
            "dataset": dict(dataset or {}),
            "retrain": {"parts": ["diagnosis"], "steps": steps, "lr": lr, "weight_decay": weight_decay,
                        "seed": seed, "losses": losses,
                        "thresholds": ("operating points on the val split" if points is not None
                                       else "Youden's J on the training split")},
        })
        if points is not None:
            manifest["operating_points"] = {"splits": "val", "n_cases": int(x_va.shape[0]),
                                            "points": [p.to_dict() for p in points]}
        else:
            manifest.pop("operating_points", None)  # the base bundle's points describe the base heads
        if synthetic:
            manifest["data"] = "SYNTHETIC: " + str(base_manifest.get("data", "phantom-derived labels"))
        write_manifest(tmp, manifest)
        for f in tmp.iterdir():
            if f.is_file():
                f.chmod(0o644)
        verify_files(tmp, read_manifest(tmp))
        os.chmod(tmp, 0o755)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say("bundle written", 90)
    return RetrainResult(out_dir, manifest, metrics, losses)
