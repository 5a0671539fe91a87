"""spinefm.train.retrain: new diagnosis heads from stored embeddings, written as a bundle that load_bundle verifies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spinefm.bundle import BundleError, embedding_key, load_bundle, read_manifest, sha256_file
from spinefm.train.retrain import (Example, RetrainError, evaluate_head, label_matrix, load_diagnosis_head,
                                   retrain_bundle)

BASE = Path(__file__).resolve().parents[2] / "models" / "bundles" / "spineagent-phantom-nano"
DATASET = {"name": "unit", "version": 1, "sha256": "0" * 64, "synthetic": False}


def separable(n: int, conditions: list[str], dim: int = 128, seed: int = 0) -> list[Example]:
    """Unit-norm embeddings; each condition is present iff the embedding points along its own direction.

    Every tenth example of the first condition is labelled uncertain (-1), which training must ignore.
    """
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(99).standard_normal((len(conditions), dim))
    out = []
    for i in range(n):
        z = rng.standard_normal(dim)
        z /= np.linalg.norm(z)
        labels = {c: int(z @ directions[j] > 0) for j, c in enumerate(conditions)}
        if i % 10 == 0:
            labels[conditions[0]] = -1
        out.append(Example(z.tolist(), labels, f"case-{seed}-{i}"))
    return out


@pytest.fixture(scope="module")
def conditions():
    return list(read_manifest(BASE)["conditions"])


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, conditions):
    out = tmp_path_factory.mktemp("retrain") / "bundle"
    seen = []
    result = retrain_bundle(BASE, out, separable(240, conditions, seed=1), separable(120, conditions, seed=3),
                            separable(60, conditions, seed=2), version="0.1.0-test1", dataset=DATASET,
                            steps=200, n_boot=20, progress=lambda stage, pct: seen.append((stage, pct)))
    return result, seen


def test_training_reduces_loss_and_beats_chance_on_separable_data(retrained, conditions):
    result, _ = retrained
    assert result.losses["final"] < 0.5 * result.losses["initial"]
    per = result.metrics["candidate"]["per_condition"]
    assert set(per) == set(conditions)
    assert all(per[c]["auroc"] > 0.8 for c in conditions), {c: per[c]["auroc"] for c in conditions}
    # The base heads never saw these directions: evaluated on the same test cases, they are near chance.
    assert result.metrics["base"]["n_cases"] == result.metrics["candidate"]["n_cases"] == 120
    assert result.metrics["candidate"]["mean_auroc"] > result.metrics["base"]["mean_auroc"] + 0.2
    # Uncertain labels are excluded from the metric's n.
    assert per[conditions[0]]["n"] == 120 - 12


def test_new_bundle_loads_verified_and_records_lineage(retrained):
    result, seen = retrained
    bundle = load_bundle(result.path)  # verifies every sha256
    manifest = bundle.manifest
    base = read_manifest(BASE)
    assert manifest["version"] == "0.1.0-test1" and manifest["name"] == base["name"]
    assert manifest["derived_from"]["version"] == base["version"]
    assert manifest["derived_from"]["manifest_sha256"] == sha256_file(BASE / "manifest.json")
    assert manifest["dataset"] == DATASET
    assert manifest["synthetic_training"] is True  # base is phantom-trained: stays synthetic
    assert manifest["metrics"]["label"].startswith("SYNTHETIC")
    assert manifest["files"]["diagnosis.safetensors"] != base["files"]["diagnosis.safetensors"]
    assert manifest["files"]["encoders.safetensors"] == base["files"]["encoders.safetensors"]
    assert embedding_key(manifest) == embedding_key(base)
    # operating points from the verified val split: separable data validate every condition
    points = manifest["operating_points"]
    assert points["splits"] == "val" and points["n_cases"] == 60
    assert all(p["validated"] for p in points["points"]) and manifest["retrain"]["thresholds"].startswith("operating")
    assert bundle.model.diagnosis.validated.all()
    counts = manifest["metrics"]["operating_points_test"]
    assert counts["n_cases"] == 120 and counts["sensitivity_asserted_or_hedged"] > 0.5
    assert [s for s, _ in seen][-1] == "bundle written"
    # The written head is the trained one: reloading it reproduces the candidate's test metrics.
    head = load_diagnosis_head(result.path)
    x, y = label_matrix(separable(120, list(head.conditions), seed=3), list(head.conditions), 128)
    again = evaluate_head(head, x, y, n_boot=20)
    assert again["mean_auroc"] == pytest.approx(result.metrics["candidate"]["mean_auroc"])
    # The analyzer uses the new probes on the same embedding it stored.
    emb = x[:4]
    assert torch.allclose(bundle.model.diagnosis(emb), head(emb))


def test_existing_output_is_never_overwritten(retrained, conditions):
    result, _ = retrained
    before = sha256_file(result.path / "manifest.json")
    with pytest.raises(RetrainError, match="already exists"):
        retrain_bundle(BASE, result.path, separable(20, conditions), separable(10, conditions, seed=5),
                       version="x", steps=5, n_boot=5)
    assert sha256_file(result.path / "manifest.json") == before


def test_bad_inputs_are_refused_and_leave_nothing(tmp_path, conditions):
    out = tmp_path / "b"
    with pytest.raises(RetrainError, match="test split"):
        retrain_bundle(BASE, out, separable(20, conditions), [], version="x", steps=5)
    wrong_dim = [Example([0.1] * 64, {c: 1 for c in conditions})]
    with pytest.raises(RetrainError, match="expects"):
        retrain_bundle(BASE, out, wrong_dim, wrong_dim, version="x", steps=5)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_corrupt_base_bundle_is_refused(tmp_path, conditions):
    base = tmp_path / "base"
    shutil.copytree(BASE, base)
    (base / "clip.safetensors").write_bytes(b"corrupt")
    with pytest.raises(BundleError, match="clip.safetensors"):
        retrain_bundle(base, tmp_path / "out", separable(20, conditions), separable(10, conditions, seed=4),
                       version="x", steps=5)


def test_non_synthetic_base_and_dataset_give_a_non_synthetic_bundle(tmp_path, conditions):
    base = tmp_path / "base"
    shutil.copytree(BASE, base)
    manifest = json.loads((base / "manifest.json").read_text())
    manifest["synthetic_training"] = False
    (base / "manifest.json").write_text(json.dumps(manifest))
    result = retrain_bundle(base, tmp_path / "real", separable(40, conditions), separable(20, conditions, seed=6),
                            version="2", dataset=DATASET, steps=20, n_boot=5)
    assert result.manifest["synthetic_training"] is False
    phantom = retrain_bundle(base, tmp_path / "phantom", separable(40, conditions), separable(20, conditions, seed=6),
                             version="3", dataset={**DATASET, "synthetic": True}, steps=20, n_boot=5)
    assert phantom.manifest["synthetic_training"] is True
    assert phantom.manifest["metrics"]["label"].startswith("SYNTHETIC")
