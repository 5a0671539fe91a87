"""The align stage's auxiliary report-label loss: masking, learning, checkpointing."""

import json

import pytest
import torch

from spinefm.bundle import load_bundle
from spinefm.cli import main
from spinefm.conditions import CONDITION_KEYS
from spinefm.data import random_cases
from spinefm.heads.diagnosis import DiagnosisHead
from spinefm.model import SpineFM, nano_config
from spinefm.train.align import AlignStep, report_label_loss

COMMON = ["--data", "random", "--n-cases", "8", "--img-size", "32", "--depth", "2", "--proj-dim", "16",
          "--max-slices", "3", "--batch-size", "4", "--no-progress"]


def test_uncertain_labels_and_missing_streams_do_not_count():
    probe = DiagnosisHead(4, ("a", "b"))
    torch.nn.init.normal_(probe.probes["a"].weight)
    z = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    out = {"z_case": z, "z_t1": z, "z_t2": z, "has_t1": torch.tensor([True, True, True]),
           "has_t2": torch.tensor([False, False, False])}
    certain = torch.tensor([[1.0, -1.0], [0.0, -1.0], [1.0, -1.0]])
    flipped_uncertain = certain.clone()
    flipped_uncertain[:, 1] = -1.0
    base = report_label_loss(probe, out, certain, 0.5)
    # only condition "a" is labelled; the T1 term adds half of the same loss, the absent T2 term nothing
    assert torch.allclose(base, 1.5 * probe.loss(z, certain))
    assert torch.allclose(base, report_label_loss(probe, out, flipped_uncertain, 0.5))


def test_label_loss_falls_when_training_on_a_learnable_label(train_align):
    torch.manual_seed(0)
    cfg = nano_config(img_size=32, text_dim=8, proj_dim=16, depth=2)
    model = SpineFM(cfg)
    cases = random_cases(8, cfg.preprocess, n_slices=3, seed=0)
    step = AlignStep(model, k=3, label_weight=1.0)
    text = torch.randn(len(cases), 8)
    first, last, out = train_align(step, cases, text, "labels")
    assert last < 0.8 * first
    assert torch.allclose(out["loss"], sum(out[k] * w for k, w in (("case", 1), ("labels", 1)))
                          + 0.5 * (out.get("t1", 0) + out.get("t2", 0)), atol=1e-5)


def test_align_cli_checkpoints_the_label_probe_and_records_nothing_of_it_in_the_model(tmp_path, caplog):
    out = tmp_path / "align"
    assert main(["align", "--out", str(out), "--max-steps", "2", "--label-weight", "1.0", *COMMON,
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert any(k.startswith("label_probe.") for k in ckpt["model"])
    assert json.loads((out / "manifest.json").read_text())["steps"] == 2
    model = load_bundle(out).model  # the saved model is the plain SpineFM: the probe is not part of it
    assert model.diagnosis.probes[CONDITION_KEYS[0]].weight.abs().sum() == 0
    caplog.set_level("INFO")
    assert main(["align", "--out", str(out), "--max-steps", "3", "--label-weight", "1.0", *COMMON,
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "resumed" in caplog.text
    assert json.loads((out / "manifest.json").read_text())["steps"] == 3


def test_resuming_with_another_label_weight_is_refused_clearly(tmp_path):
    out = tmp_path / "align"
    assert main(["align", "--out", str(out), "--max-steps", "1", *COMMON, "--cache-dir", str(tmp_path / "cache")]) == 0
    with pytest.raises(SystemExit, match="different configuration.*--no-resume"):
        main(["align", "--out", str(out), "--max-steps", "2", "--label-weight", "1.0", *COMMON,
              "--cache-dir", str(tmp_path / "cache")])
    assert main(["align", "--out", str(out), "--max-steps", "2", "--label-weight", "1.0", "--no-resume", *COMMON,
                 "--cache-dir", str(tmp_path / "cache")]) == 0
