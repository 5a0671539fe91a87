import json
import shutil

import pytest
import torch

from spinefm.bundle import BundleError, load_bundle, save_bundle
from spinefm.model import SpineFM


def test_round_trip_gives_identical_outputs(tiny_bundle, tiny_cfg):
    bundle = load_bundle(tiny_bundle)
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["synthetic_training"] is True and manifest["conditions"] == list(tiny_cfg.conditions)
    assert set(manifest["files"]) >= {"encoders.safetensors", "diagnosis.safetensors", "index.safetensors"}
    assert all(len(h) == 64 for h in manifest["files"].values())
    again = load_bundle(tiny_bundle)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for stream in ("t1", "t2", "synthesizer"):
            assert torch.equal(bundle.model.encode_slices(stream, x)["cls"], again.model.encode_slices(stream, x)["cls"])
    assert len(bundle.index) == 3 and bundle.index.case_ids == ["a", "b", "c"]


def test_save_load_preserves_trained_weights(tmp_path, tiny_cfg):
    torch.manual_seed(1)
    model = SpineFM(tiny_cfg)
    with torch.no_grad():
        model.synthesizer.logits.fill_(1.25)
        model.diagnosis.thresholds.fill_(0.3)
    save_bundle(model, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b").model
    assert torch.allclose(loaded.synthesizer.logits, torch.full_like(loaded.synthesizer.logits, 1.25))
    assert torch.allclose(loaded.diagnosis.thresholds, torch.full((len(tiny_cfg.conditions),), 0.3))
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


@pytest.fixture
def copy(tiny_bundle, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(tiny_bundle, dst)
    return dst


def test_corrupt_file_fails_with_its_name(copy):
    path = copy / "clip.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="clip.safetensors.*sha256 mismatch"):
        load_bundle(copy)


def test_missing_file_and_bad_manifest(copy):
    (copy / "segmentation.safetensors").unlink()
    with pytest.raises(BundleError, match="segmentation.safetensors.*missing"):
        load_bundle(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="manifest.json"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="not a directory"):
        load_bundle(copy / "nope")


def test_weights_that_do_not_match_the_configs(copy, tmp_path, tiny_cfg):
    """A file swapped in from another bundle (hash updated) still fails, naming the file."""
    import copy as _copy

    from spinefm.bundle import sha256_file

    other_cfg = _copy.deepcopy(tiny_cfg)
    other_cfg.clip.proj_dim = 8
    save_bundle(SpineFM(other_cfg), tmp_path / "other")
    shutil.copy(tmp_path / "other" / "diagnosis.safetensors", copy / "diagnosis.safetensors")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["diagnosis.safetensors"] = sha256_file(copy / "diagnosis.safetensors")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="diagnosis.safetensors.*do not match"):
        load_bundle(copy)


def test_cli_reports_a_bad_bundle_in_one_line(tmp_path, capsys):
    from spinefm.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--bundle", str(tmp_path / "missing"), "--out", str(tmp_path / "eval")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("spinefm evaluate: ") and "not a directory" in err and "Traceback" not in err
