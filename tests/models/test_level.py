"""Level agent: head shapes and masks, learning, the ``levels`` stage, analyze() levels, drafts, bundle files."""

import json
import shutil

import pytest
import torch

from spinefm.bundle import BundleError, load_bundle, save_bundle
from spinefm.cli import main
from spinefm.conditions import DISC_LEVELS, VERTEBRAE
from spinefm.heads.level import LEVELS, LevelHead, allowed_levels, level_position
from spinefm.train.level_agent import fit_level
from spinefm.model import SpineFM


CONDS = ("herniation", "fracture", "par")
COMMON = ["--data", "random", "--n-cases", "8", "--img-size", "32", "--depth", "2", "--proj-dim", "16",
          "--max-slices", "3", "--batch-size", "4", "--no-progress"]


def test_registry_masks_and_positions():
    assert len(LEVELS) == len(VERTEBRAE) + len(DISC_LEVELS)
    disc = allowed_levels("herniation")
    assert all(ok == ("-" in lv) for lv, ok in zip(LEVELS, disc))
    par = [lv for lv, ok in zip(LEVELS, allowed_levels("par")) if ok]
    assert set(par) == {"L1", "L2", "L3", "L4", "L5", "S1"}  # lumbar only (sacrum with lumbar)
    assert level_position("L4-L5") == level_position("L4") + 0.5 < level_position("L5")


def test_head_shapes_loss_and_masks():
    head = LevelHead(16, CONDS)
    case, centre = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1), torch.rand(5, 2)
    cond = torch.tensor([0, 1, 2, 0, 1])
    logits = head(case, centre, cond)
    assert logits.shape == (5, len(LEVELS))
    assert torch.isinf(logits[0, LEVELS.index("L4")]) and torch.isfinite(logits[0, LEVELS.index("L4-L5")])
    assert torch.isinf(logits[1, LEVELS.index("L4-L5")]) and torch.isfinite(logits[1, LEVELS.index("L1")])
    target = torch.tensor([LEVELS.index(x) for x in ("L4-L5", "L1", "L5", "C5-C6", "T12")])
    loss = head.loss(case, centre, cond, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert head.net[0].weight.grad is not None and head.prior.grad is not None
    assert not head.is_fitted


def _toy_data(n=300, seed=0):
    """Disc level is a function of the vertical centre: five lumbar discs stacked top to bottom."""
    g = torch.Generator().manual_seed(seed)
    discs = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    y = torch.rand(n, generator=g)
    k = (y * 5).long().clamp(max=4)
    centre = torch.stack([torch.full((n,), 0.5), y], 1)
    case = torch.nn.functional.normalize(torch.ones(n, 16), dim=-1)
    return {"case": case, "centre": centre, "cond": torch.zeros(n, dtype=torch.long),
            "target": torch.tensor([LEVELS.index(discs[i]) for i in k])}


def test_head_learns_level_from_position():
    train, test = _toy_data(seed=0), _toy_data(seed=1)
    torch.manual_seed(0)
    head = LevelHead(16, CONDS)
    fit_level(head, train, steps=300, jitter=0.0)
    assert head.is_fitted
    with torch.no_grad():
        pred = head(test["case"], test["centre"], test["cond"]).argmax(-1)
    acc = (pred == test["target"]).float().mean().item()
    assert acc > 0.8, acc  # chance is 1/22 over disc levels, 0.2 over the five used
    # without the position the same head cannot do it
    torch.manual_seed(0)
    blind = LevelHead(16, CONDS)
    fit_level(blind, train, steps=300, jitter=0.0, use_position=False)
    with torch.no_grad():
        pred = blind(test["case"], torch.zeros_like(test["centre"]), test["cond"]).argmax(-1)
    assert (pred == test["target"]).float().mean().item() < 0.4


@pytest.fixture(scope="module")
def level_bundle(tiny_bundle, tmp_path_factory):
    """The tiny bundle after two steps of the ``levels`` stage on random toy cases (with the level table)."""
    root = tmp_path_factory.mktemp("levels")
    out = root / "with-levels"
    assert main(["levels", "--init", str(tiny_bundle), "--out", str(out), "--level-steps", "2", "--version", "0.0.2",
                 "--eval-seed", "0", "--n-boot", "5", "--cache-dir", str(root / "cache"), "--report", str(root / "eval"),
                 *COMMON]) == 0
    return out, root / "eval"


def test_levels_stage_adds_a_fitted_head_and_keeps_the_rest(level_bundle, tiny_bundle):
    out, report = level_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    old = json.loads((tiny_bundle / "manifest.json").read_text())
    assert "level.safetensors" in manifest["files"] and manifest["version"] == "0.0.2"
    for f in ("encoders.safetensors", "diagnosis.safetensors", "segmentation.safetensors", "index.safetensors"):
        assert manifest["files"][f] == old["files"][f], f  # untouched parts are byte-identical
    assert manifest["level_training"]["level_examples"] > 0
    level = manifest["metrics"]["level"]
    assert level["label"].startswith("SYNTHETIC") and "chance (uniform over allowed levels)" in level
    assert (report / "level_metrics.md").read_text().startswith("**Level of findings truly present")
    bundle = load_bundle(out)
    assert bundle.model.level.is_fitted and len(bundle.index) == 3


def test_evaluate_adds_the_level_table_when_the_head_is_fitted(level_bundle, tmp_path):
    out, _ = level_bundle
    assert main(["evaluate", "--bundle", str(out), "--out", str(tmp_path / "eval"), "--n-boot", "5", "--kfold", "0",
                 "--diag-steps", "2", "--baselines", "", "--cache-dir", str(tmp_path / "cache"), *COMMON]) == 0
    res = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    rows = {r["name"] for r in res["variants"]["spinefm"]["level"]["rows"]}
    assert {"level head, predicted box (analyze)", "most frequent level per condition (training)"} <= rows
    assert "**Level of findings truly present" in (tmp_path / "eval" / "metrics.md").read_text()


def test_bundle_round_trip_and_old_bundles(level_bundle, tmp_path):
    out, _ = level_bundle
    a = load_bundle(out).model.level.state_dict()
    b = load_bundle(out).model.level.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a bundle written before the level head existed: no level file, loads, predicts no level
    old = tmp_path / "old"
    shutil.copytree(out, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["files"]["level.safetensors"]
    (old / "level.safetensors").unlink()
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert not load_bundle(old).model.level.is_fitted


def test_corrupt_or_missing_level_file_fails_with_its_name(level_bundle, tmp_path):
    out, _ = level_bundle
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    data = bytearray((bad / "level.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (bad / "level.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="level.safetensors.*sha256 mismatch"):
        load_bundle(bad)
    (bad / "level.safetensors").unlink()
    with pytest.raises(BundleError, match="level.safetensors.*missing"):
        load_bundle(bad)


def test_level_file_from_another_model_fails(level_bundle, tmp_path, tiny_cfg):
    import copy as _copy

    from spinefm.bundle import sha256_file

    out, _ = level_bundle
    other_cfg = _copy.deepcopy(tiny_cfg)
    other_cfg.clip.proj_dim = 8
    save_bundle(SpineFM(other_cfg), tmp_path / "other")
    dst = tmp_path / "swapped"
    shutil.copytree(out, dst)
    shutil.copy(tmp_path / "other" / "level.safetensors", dst / "level.safetensors")
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"]["level.safetensors"] = sha256_file(dst / "level.safetensors")
    (dst / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="level.safetensors.*do not match"):
        load_bundle(dst)


def test_analyze_phantom_study_gives_a_valid_level_per_localised_condition(level_bundle, tiny_bundle):
    import spine_phantom

    from spinefm.study import StudyInput

    ph = spine_phantom.generate_study(3, 1)
    study = StudyInput.from_datasets([ds for s in ph.series for ds in s.datasets()])
    bundle = load_bundle(level_bundle[0])
    result = bundle.analyze(study, localize_all=True)
    assert len(result.boxes) == 17
    preds = {c.condition: c for c in result.conditions}
    assert result.levels_source == "level_head" and result.regions == list(ph.regions)
    named = 0
    for box in result.boxes:
        assert preds[box.condition].level == box.level
        if box.level is None:  # the level head put it outside the study's region: not named
            assert box.level_uncertain and preds[box.condition].level_note.startswith("the level model placed it outside")
            continue
        named += 1
        assert box.level in LEVELS and allowed_levels(box.condition)[LEVELS.index(box.level)], box
        region = box.level[0]
        assert {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "lumbar"}[region] in ph.regions, box
    assert named
    # the template draft says where, or says the level is uncertain
    assert result.draft_backend.startswith("template"), result.draft_backend
    assert "(level not localised)" not in result.draft_text and "Level not localised" not in result.draft_text
    shown = [c for c in result.conditions if c.present or abs(c.probability - 0.5) < 0.1]
    assert shown
    for c in shown:
        assert (c.level or "level uncertain") in result.draft_text.replace("Level uncertain", "level uncertain"), (c, result.draft_text)
    # a bundle without a trained level head (the untrained tiny one) predicts no levels
    plain = load_bundle(tiny_bundle).analyze(study, localize_all=True, draft=False)
    assert all(b.level is None for b in plain.boxes) and all(c.level is None for c in plain.conditions)
