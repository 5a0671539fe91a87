"""Published-checkpoint conversion: transformers' DINOv3/DINOv2 and timm's Eva/ViT models, built with a
random initialisation and a small config, saved to disk, converted, and compared feature by feature
with the original on the same input. Bad checkpoints end in one line naming the key, exit code 2."""

import importlib.abc
import importlib.machinery
import json
import sys
import types

import pytest
import torch
from safetensors.torch import save_file

from spinefm.cli import main
from spinefm.convert import CheckpointError, convert_checkpoint
from spinefm.train.ssl.checkpoint import load_encoder

TOL = 1e-5


def tokens(model, x):
    f = model.forward_features(x)
    return torch.cat([f["cls"][:, None], f["registers"], f["patches"]], 1)


def saved(model, tmp_path, name="ckpt"):
    d = tmp_path / name
    model.save_pretrained(d)
    return d


def same_as_transformers(hf_model, path, x):
    ours, info = convert_checkpoint(path)
    with torch.no_grad():
        ref = hf_model.eval()(pixel_values=x).last_hidden_state
        got = tokens(ours, x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < TOL * max(1.0, ref.abs().max())
    return ours, info


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def dinov3(gated=False, registers=4, layers=2):
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    return DINOv3ViTModel(DINOv3ViTConfig(
        hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=96, image_size=64,
        num_register_tokens=registers, use_gated_mlp=gated, hidden_act="silu" if gated else "gelu",
        layerscale_value=0.7))


@pytest.mark.parametrize("gated", [False, True], ids=["gelu", "swiglu"])
def test_dinov3_features_equal_after_conversion(tmp_path, gated):
    hf = dinov3(gated)
    path = saved(hf, tmp_path)
    ours, info = same_as_transformers(hf, path, torch.randn(2, 3, 64, 64))
    assert info["architecture"] == "DINOv3ViTModel" and ours.config.pos_embed == "rope"
    assert ours.config.ffn == ("swiglu" if gated else "gelu") and ours.config.norm_eps == 1e-5
    # RoPE has no weights: another crop size (non-square) gives the same features as transformers too
    same_as_transformers(hf, path, torch.randn(2, 3, 96, 80))


@pytest.mark.parametrize("swiglu", [False, True], ids=["gelu", "swiglu"])
def test_dinov2_features_equal_after_conversion(tmp_path, swiglu):
    from transformers import Dinov2Config, Dinov2Model

    hf = Dinov2Model(Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=56,
                                  patch_size=14, use_swiglu_ffn=swiglu, layerscale_value=0.5))
    path = saved(hf, tmp_path)
    ours, _ = same_as_transformers(hf, path, torch.randn(2, 3, 56, 56))
    assert ours.config.pos_embed == "learnt" and ours.patch_size == 14
    same_as_transformers(hf, path, torch.randn(2, 3, 84, 84))  # interpolated positions: same bicubic as transformers


def test_dinov2_with_registers_features_equal_after_conversion(tmp_path):
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    hf = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                            image_size=56, patch_size=14, num_register_tokens=4))
    ours, _ = same_as_transformers(hf, saved(hf, tmp_path), torch.randn(2, 3, 56, 56))
    assert ours.num_registers == 4


def test_cli_writes_an_encoder_file_that_loads_with_the_same_features(tmp_path, capsys):
    hf = dinov3(gated=True)
    out = tmp_path / "encoder.safetensors"
    assert main(["convert-encoder", str(saved(hf, tmp_path)), "--out", str(out)]) == 0
    assert "DINOv3ViTModel -> ViT dim 64, depth 2, heads 4" in capsys.readouterr().out
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (tokens(load_encoder(out).eval(), x) - hf.eval()(pixel_values=x).last_hidden_state).abs().max() < TOL * 10
    again, info = convert_checkpoint(out)  # our own file converts to itself
    assert info["format"] == "spinefm" and again.config.ffn == "swiglu"


# -- bad checkpoints: one line naming the first offending key, exit code 2 ---------------------------------
def _convert_fails(capsys, source, *extra):
    capsys.readouterr()  # save_pretrained's progress bar is not ours
    with pytest.raises(SystemExit) as exc:
        main(["convert-encoder", str(source), "--out", str(source) + ".out.safetensors", *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _rewrite(path, edit):
    from safetensors.torch import load_file

    state = load_file(str(path / "model.safetensors"))
    edit(state)
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})


def test_missing_unexpected_and_misshapen_keys_are_named(tmp_path, capsys):
    path = saved(dinov3(), tmp_path)
    _rewrite(path, lambda s: s.pop("layer.1.attention.v_proj.weight"))
    assert "missing key 'layer.1.attention.v_proj.weight'" in _convert_fails(capsys, path)

    path = saved(dinov3(), tmp_path, "extra")
    _rewrite(path, lambda s: s.update({"layer.0.attention.q_norm.weight": torch.ones(16)}))
    assert "unexpected key 'layer.0.attention.q_norm.weight' (1 unused" in _convert_fails(capsys, path)

    path = saved(dinov3(), tmp_path, "shape")
    _rewrite(path, lambda s: s.update({"layer.0.mlp.up_proj.weight": torch.zeros(80, 64)}))
    err = _convert_fails(capsys, path)
    assert "wrong shape for 'layer.0.mlp.up_proj.weight'" in err or "wrong shape for 'layer.0.mlp.fc1" in err, err


def test_mismatched_architecture_and_corrupt_files_are_refused(tmp_path, capsys):
    path = saved(dinov3(layers=2), tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    assert "missing key 'layer.2.norm1.weight'" in _convert_fails(capsys, path)
    (path / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 1}))
    assert "unexpected key 'layer.1." in _convert_fails(capsys, path)
    (path / "config.json").write_text(json.dumps({**cfg, "use_gated_mlp": True, "hidden_act": "silu"}))
    assert "missing key 'layer.0.mlp.gate_proj.weight'" in _convert_fails(capsys, path)
    (path / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    assert "model_type 'bert' is not a ViT we can convert" in _convert_fails(capsys, path)

    (path / "config.json").write_text(json.dumps(cfg))
    (path / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    assert "not a readable safetensors file" in _convert_fails(capsys, path)
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"PK\x03\x04 not a checkpoint")
    assert "not a readable PyTorch checkpoint" in _convert_fails(capsys, bad)
    assert "no such file or directory" in _convert_fails(capsys, tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    assert "no weights here" in _convert_fails(capsys, tmp_path / "empty")


# -- timm ------------------------------------------------------------------------------------------------
class _StubModule(types.ModuleType):
    """Any attribute is a new, inert class: enough for timm's module-level imports of torchvision."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _StubMeta(name, (torch.nn.Module,), {})
        setattr(self, name, value)
        return value


class _StubMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _StubMeta(name, (torch.nn.Module,), {})
        setattr(cls, name, value)
        return value


class _TorchvisionStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


@pytest.fixture(scope="module")
def timm():
    """timm's real model code. The PyPI torchvision wheel does not load beside our CPU torch, and timm imports
    it at module level for data transforms and BatchNorm freezing, which no ViT here calls: where torchvision
    is absent it is replaced, for the import only, by inert stubs, then removed from sys.modules again."""
    try:
        import timm as mod
        return mod
    except ModuleNotFoundError as exc:
        if exc.name != "torchvision":  # timm itself is installed by scripts/setup.sh
            raise
    stub = _TorchvisionStub()
    sys.meta_path.insert(0, stub)
    try:
        import timm as mod
    finally:
        sys.meta_path.remove(stub)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    return mod


def timm_saved(timm, name, tmp_path, with_config=True, **kw):
    model = timm.create_model(name, pretrained=False, num_classes=0, embed_dim=64, depth=2, num_heads=4, **kw).eval()
    with torch.no_grad():  # timm initialises layer scale at 1e-5: make the blocks matter for the comparison
        for n, p in model.named_parameters():
            if "gamma" in n:
                p.fill_(0.5)
    d = tmp_path / name
    d.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "model.safetensors"))
    if with_config:
        (d / "config.json").write_text(json.dumps({"architecture": f"{name}.test", "num_features": 64,
                                                   "model_args": {"embed_dim": 64, "depth": 2, "num_heads": 4}}))
    return model, d


def same_as_timm(model, path, x, **kw):
    ours, info = convert_checkpoint(path, **kw)
    with torch.no_grad():
        ref, got = model.forward_features(x), tokens(ours, x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < TOL * max(1.0, ref.abs().max())
    return ours, info


@pytest.mark.parametrize("name", ["vit_base_patch16_dinov3", "vit_small_plus_patch16_dinov3_qkvb"])
def test_timm_dinov3_features_equal_after_conversion(timm, tmp_path, name):
    model, path = timm_saved(timm, name, tmp_path, img_size=64)
    ours, info = same_as_timm(model, path, torch.randn(2, 3, 64, 64))
    assert ours.config.pos_embed == "rope" and info["format"] == "timm"
    assert ours.config.ffn == ("swiglu" if "plus" in name else "gelu")
    same_as_timm(model, path, torch.randn(2, 3, 80, 96))  # timm's dynamic_img_size: RoPE at another grid


@pytest.mark.parametrize("name,kw", [("vit_small_patch14_reg4_dinov2", {}),  # positions on patches only
                                     ("vit_small_patch14_dinov2", {}),       # positions on [CLS] + patches
                                     ("vit_base_patch16_224", {"reg_tokens": 4})])  # on [CLS], registers, patches
def test_timm_vit_features_equal_after_conversion(timm, tmp_path, name, kw):
    model, path = timm_saved(timm, name, tmp_path, img_size=56 if "patch14" in name else 64, **kw)
    size = 56 if "patch14" in name else 64
    same_as_timm(model, path, torch.randn(2, 3, size, size))


def test_bare_timm_state_dict_needs_its_head_count(timm, tmp_path, capsys):
    model, path = timm_saved(timm, "vit_base_patch16_dinov3", tmp_path, with_config=False, img_size=64)
    err = _convert_fails(capsys, path / "model.safetensors")
    assert "does not say its number of attention heads" in err and "--num-heads" in err
    same_as_timm(model, path / "model.safetensors", torch.randn(1, 3, 64, 64), num_heads=4)


# -- spinefm align --init-encoder ------------------------------------------------------------------------
ALIGN = ["--data", "random", "--n-cases", "8", "--img-size", "32", "--proj-dim", "16", "--max-slices", "3",
         "--batch-size", "4", "--no-progress", "--max-steps", "1", "--threads", "1"]


def test_align_starts_from_converted_weights(tmp_path):
    from spinefm.bundle import load_bundle

    hf = dinov3(gated=True)
    enc = tmp_path / "encoder.safetensors"
    assert main(["convert-encoder", str(saved(hf, tmp_path)), "--out", str(enc)]) == 0
    for source in (enc, tmp_path / "ckpt"):  # the converted file, or the transformers directory itself
        out = tmp_path / f"align-{source.name}"
        assert main(["align", "--init-encoder", str(source), "--out", str(out), "--freeze-encoders",
                     "--cache-dir", str(tmp_path / "cache"), *ALIGN]) == 0
        bundle = load_bundle(out)
        assert bundle.manifest["encoder_init"]["architecture"] == "DINOv3ViTModel"
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():  # frozen encoders: still DINOv3's features after the step, in the bundle
            ref = hf.eval()(pixel_values=x).last_hidden_state
            for stream in (bundle.model.t1, bundle.model.t2):
                assert stream.config.pos_embed == "rope" and stream.config.ffn == "swiglu"
                assert (tokens(stream, x) - ref).abs().max() < TOL * 10


def test_align_init_encoder_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "encoder.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(SystemExit) as exc:
        main(["align", "--init-encoder", str(bad), "--out", str(tmp_path / "a"), *ALIGN])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "not a readable safetensors file" in err
