"""The align stage's auxiliary patch-level box loss: targets, masking, learning, checkpointing."""

import json

import pytest
import torch

from spinefm.bundle import load_bundle
from spinefm.cli import main
from spinefm.data import random_cases
from spinefm.model import SpineFM, nano_config
from spinefm.train.align import AlignStep
from spinefm.train.box_supervision import IGNORE, balanced_bce, cell_overlap_targets, series_patch_targets

COMMON = ["--data", "random", "--n-cases", "8", "--img-size", "32", "--depth", "2", "--proj-dim", "16",
          "--max-slices", "3", "--batch-size", "4", "--no-progress"]


def _targets(label: float, box=None):
    labels = torch.tensor([[label]])
    boxes = torch.tensor([[box or [0.0, 0.0, 0.0, 0.0]]])
    return cell_overlap_targets(labels, boxes, torch.tensor([[box is not None]]), side=4)[0, :, 0].reshape(4, 4)


def test_box_marks_the_cells_it_overlaps_and_nothing_else():
    inside_one = _targets(1.0, [0.55, 0.30, 0.60, 0.35])          # within cell (row 1, col 2)
    assert inside_one.sum() == 1 and inside_one[1, 2] == 1
    straddling = _targets(1.0, [0.45, 0.45, 0.55, 0.55])          # across the centre: four cells
    assert straddling.sum() == 4 and straddling[1:3, 1:3].all()
    assert (straddling >= 0).all()                                # annotated slice: the rest is negative


def test_absent_slices_are_negative_and_unknown_slices_ignored():
    assert (_targets(0.0) == 0).all()
    assert (_targets(-1.0) == IGNORE).all()
    assert (_targets(1.0) == IGNORE).all()                        # a key slice without a box: nowhere to point


def test_ignored_cells_do_not_change_the_loss_and_classes_are_balanced():
    targets = torch.tensor([1.0, 0.0, 0.0, 0.0, IGNORE])
    logits = torch.tensor([0.0, 0.0, 0.0, 0.0, 5.0])
    base = balanced_bce(logits, targets)
    assert torch.allclose(base, balanced_bce(logits.clone().index_fill_(0, torch.tensor([4]), -9.0), targets))
    assert torch.allclose(base, torch.tensor(2 * 0.6931), atol=1e-3)  # one positive weighs as much as three negatives


def test_phantom_like_targets_follow_the_case_boxes():
    cfg = nano_config(img_size=32, text_dim=8, proj_dim=16, depth=2)
    case = next(c for c in random_cases(4, cfg.preprocess, n_slices=3, seed=0) if c.findings)
    series = case.first("t1")
    t = series_patch_targets(case, series, cfg.conditions, side=2)
    assert t.shape == (3, 4, len(cfg.conditions))
    k = case.findings[0]["key_slices"][0]["slice_index"]
    assert t[k, :, 0].max() == 1 and (t[k, :, 0] >= 0).all()     # the blob's slice: positive cells + negatives
    others = [i for i in range(3) if i != k]
    assert (t[others, :, 0] == 0).all()                           # other slices of a positive case: known negative


def test_box_loss_falls_when_training_on_a_learnable_blob(train_align):
    torch.manual_seed(0)
    cfg = nano_config(img_size=32, text_dim=8, proj_dim=16, depth=2)
    model = SpineFM(cfg)
    cases = random_cases(8, cfg.preprocess, n_slices=3, seed=0)
    step = AlignStep(model, k=3, box_weight=1.0)
    text = torch.randn(len(cases), 8)
    first, last, out = train_align(step, cases, text, "boxes")
    assert last < 0.5 * first


def test_align_cli_checkpoints_the_patch_probes_and_saves_the_plain_model(tmp_path):
    out = tmp_path / "align"
    assert main(["align", "--out", str(out), "--max-steps", "2", "--box-weight", "1.0", "--label-weight", "1.0",
                 *COMMON, "--cache-dir", str(tmp_path / "cache")]) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert any(k.startswith("patch_probes.") for k in ckpt["model"])
    assert any(k.startswith("label_probe.") for k in ckpt["model"])
    assert json.loads((out / "manifest.json").read_text())["steps"] == 2
    assert not any(k.startswith(("patch_probes", "label_probe")) for k in load_bundle(out).model.state_dict())


def test_probe_report_reads_the_probes_of_an_align_run(tmp_path, capsys):
    from spinefm.train.box_supervision import main as report_main

    out = tmp_path / "align"
    assert main(["align", "--out", str(out), "--max-steps", "2", "--box-weight", "1.0", *COMMON,
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert report_main(["--align-dir", str(out), "--data", "random", "--n-cases", "8", "--splits", "all"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_cases"] == 8 and 0 <= report["patch_auroc"] <= 1 and 0 <= report["study_auroc_from_max_patch"] <= 1


def test_probe_report_refuses_an_align_run_without_probes(tmp_path):
    from spinefm.train.box_supervision import main as report_main

    out = tmp_path / "align"
    assert main(["align", "--out", str(out), "--max-steps", "1", *COMMON, "--cache-dir", str(tmp_path / "cache")]) == 0
    with pytest.raises(SystemExit, match="no patch probes"):
        report_main(["--align-dir", str(out), "--data", "random", "--n-cases", "8", "--splits", "all"])
