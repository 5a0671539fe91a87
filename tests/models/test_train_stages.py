"""Two optimizer steps of every stage through the CLI, on random toy cases, plus resume and bundling."""

import json
import shutil

import pytest
import torch

from spinefm.bundle import load_bundle
from spinefm.cli import main

COMMON = ["--data", "random", "--n-cases", "8", "--img-size", "32", "--depth", "2", "--proj-dim", "16",
          "--max-slices", "3", "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    cache = ["--cache-dir", str(root / "cache")]
    assert main(["align", "--out", str(root / "align"), "--max-steps", "2", *COMMON, *cache]) == 0
    assert main(["synth", "--init", str(root / "align"), "--out", str(root / "synth"), "--max-steps", "2", *COMMON, *cache]) == 0
    assert main(["heads", "--init", str(root / "synth"), "--out", str(root / "heads"), "--diag-steps", "2",
                 "--seg-steps", "2", *COMMON, *cache]) == 0
    return root, cache


def test_align_trains_and_writes_a_model_dir(runs):
    root, _ = runs
    manifest = json.loads((root / "align" / "manifest.json").read_text())
    assert manifest["stage"] == "align" and manifest["steps"] == 2
    ckpt = torch.load(root / "align" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2
    fresh = load_bundle(root / "align").model
    # the encoders moved away from their init (trained end to end when not frozen)
    assert fresh.t1.patch_embed.proj.weight.abs().sum() > 0


def test_align_resumes_from_its_checkpoint(runs, caplog):
    root, cache = runs
    shutil.copytree(root / "align", root / "align_resume")
    caplog.set_level("INFO")
    assert main(["align", "--out", str(root / "align_resume"), "--max-steps", "3", *COMMON, *cache]) == 0
    assert "resumed" in caplog.text
    assert json.loads((root / "align_resume" / "manifest.json").read_text())["steps"] == 3


def test_synth_moves_only_the_mixing_weights(runs):
    root, _ = runs
    a, s = load_bundle(root / "align").model, load_bundle(root / "synth").model
    assert not torch.allclose(s.synthesizer.logits, torch.zeros_like(s.synthesizer.logits))
    for k, v in a.t1.state_dict().items():
        assert torch.equal(v, s.t1.state_dict()[k]), k  # encoders frozen
    assert torch.equal(a.clip.text_proj.weight, s.clip.text_proj.weight)


def test_synth_input_gate_ablation(runs):
    root, cache = runs
    assert main(["synth", "--init", str(root / "align"), "--out", str(root / "synth_gate"), "--gate", "input",
                 "--max-steps", "2", *COMMON, *cache]) == 0
    m = load_bundle(root / "synth_gate").model
    assert m.cfg.synth_gate == "input" and m.synthesizer.gate_net is not None


def test_heads_and_build_bundle(runs):
    root, cache = runs
    heads = load_bundle(root / "heads").model
    assert any(p.abs().sum() > 0 for p in heads.diagnosis.parameters())
    assert main(["build-bundle", "--init", str(root / "heads"), "--out", str(root / "bundle"), *COMMON, *cache]) == 0
    b = load_bundle(root / "bundle")
    assert b.index is not None and len(b.index) > 0 and b.manifest["synthetic_training"] is True


def test_evaluate_writes_json_and_markdown(runs):
    root, cache = runs
    out = root / "eval"
    assert main(["evaluate", "--bundle", str(root / "heads"), "--out", str(out), "--n-boot", "5", "--kfold", "2",
                 "--diag-steps", "5", "--baselines", "random_encoder,no_synthesizer", "--random-inits", "2",
                 *COMMON, *cache]) == 0
    res = json.loads((out / "metrics.json").read_text())
    assert set(res["variants"]) == {"spinefm", "random_encoder", "no_synthesizer"}
    inits = res["random_inits"]["views"]["all"]
    assert res["random_inits"]["seeds"] == [0, 1] and len(inits["per_init"]) == 2
    assert inits["per_init"][0] == res["variants"]["random_encoder"]["diagnosis"]["all"]["mean_auroc"]
    # Another init is another baseline. On 2 test cases the "all" view's probes can tie for both inits (0.5 each:
    # seen on this machine's CPU for the unchanged code of 9ace845), so the claim is checked over every view.
    views = res["random_inits"]["views"].values()
    assert any(v["per_init"][0] != v["per_init"][1] for v in views), res["random_inits"]
    assert "over 2 initialisations" in (out / "metrics.md").read_text()
    assert "all" in res["variants"]["spinefm"]["diagnosis"] and "segmentation" in res["variants"]["spinefm"]
    seg = res["variants"]["spinefm"]["segmentation"]["t1"]
    # the toy blob sits at the same place in every case: the constant mean box is exact
    assert seg["mean_box_error"] == pytest.approx(0.0, abs=1e-6) and seg["mean_box_iou"] == pytest.approx(1.0)
    assert "mean-box baseline" in (out / "metrics.md").read_text()
    assert "SYNTHETIC" in (out / "metrics.md").read_text()


def test_evaluate_records_into_the_manifest(runs):
    import shutil

    root, cache = runs
    bundle, out = root / "record-bundle", root / "eval-record"
    shutil.copytree(root / "heads", bundle)
    before = load_bundle(bundle).manifest["files"]
    assert main(["evaluate", "--bundle", str(bundle), "--out", str(out), "--n-boot", "5", "--kfold", "0",
                 "--diag-steps", "5", "--baselines", "random_encoder", "--no-segmentation", "--record-as", "held_out",
                 *COMMON, *cache]) == 0
    res = json.loads((out / "metrics.json").read_text())
    after = load_bundle(bundle).manifest
    assert after["files"] == before  # weights untouched
    rec = after["metrics"]["held_out"]
    assert rec["spinefm"]["mean_auroc_all"] == res["variants"]["spinefm"]["diagnosis"]["all"]["mean_auroc"]
    assert rec["command"].startswith("spinefm evaluate") and rec["label"].startswith("SYNTHETIC")
    # an earlier run's results can be recorded without recomputing; alone, --from-json is refused
    assert main(["evaluate", "--bundle", str(bundle), "--from-json", str(out / "metrics.json"), "--record-as", "again",
                 *COMMON, *cache]) == 0
    assert load_bundle(bundle).manifest["metrics"]["again"]["spinefm"] == rec["spinefm"]
    with pytest.raises(SystemExit):
        main(["evaluate", "--bundle", str(bundle), "--from-json", str(out / "metrics.json"), *COMMON, *cache])


def test_train_default_pipeline_with_ssl(tmp_path):
    """The documented pipeline end to end (tiny, random data), SSL pretraining included."""
    args = ["train-default", "--data", "random", "--n-cases", "8", "--img-size", "32", "--depth", "2", "--proj-dim", "16",
            "--max-slices", "3", "--batch-size", "4", "--ssl-steps", "1", "--max-steps", "1", "--diag-steps", "2",
            "--seg-steps", "1", "--level-steps", "2", "--skip-eval", "--out", str(tmp_path / "bundle"), "--work", str(tmp_path / "work"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(args) == 0
    b = load_bundle(tmp_path / "bundle")
    assert b.manifest["encoder_init"].startswith("spinefm.train.ssl") and b.manifest["synthetic_training"] is True
    assert "train-default" in b.manifest["training"]["command"]
    assert b.model.level.is_fitted and "level.safetensors" in b.manifest["files"]  # the levels stage ran


def test_torchrun_ddp_gathers_negatives(tmp_path):
    """Two CPU ranks (gloo) through torchrun: process group from env, DistributedSampler, gathered InfoNCE."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "spinefm.cli",
           "align", "--out", str(tmp_path / "align"), "--max-steps", "1", "--threads", "1", *COMMON,
           "--batch-size", "2", "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_bundle(tmp_path / "align").manifest["steps"] == 1
