import pytest
import torch

from spinefm.synthesizer import LayerwiseSynthesizer
from spinefm.vit import ViTConfig, VisionTransformer


def _encoders(**arch):
    torch.manual_seed(0)
    cfg = ViTConfig(size="nano", img_size=32, depth=2, layerscale_init=0.5, **arch)
    return VisionTransformer(cfg).eval(), VisionTransformer(cfg).eval()


def test_alphas_start_at_half_and_encoders_are_frozen():
    t1, t2 = _encoders()
    synth = LayerwiseSynthesizer(t1, t2)
    assert torch.allclose(synth.alphas(), torch.full((3,), 0.5))
    x = torch.randn(2, 3, 32, 32)
    synth.train()
    assert not t1.training and not t2.training
    synth(x).pow(2).sum().backward()  # (a plain sum of a LayerNorm output is constant)
    assert synth.logits.grad is not None and synth.logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in list(t1.parameters()) + list(t2.parameters()))


@pytest.mark.parametrize("arch", [{}, {"pos_embed": "rope", "ffn": "swiglu", "norm_eps": 1e-5}],
                         ids=["learnt-gelu", "rope-swiglu"])
def test_alpha_one_reproduces_the_t1_encoder_and_zero_mixes_t2_blocks(arch):
    t1, t2 = _encoders(**arch)
    synth = LayerwiseSynthesizer(t1, t2).eval()
    with torch.no_grad():
        synth.logits.fill_(30.0)  # sigmoid -> 1: pure T1 path
        x = torch.randn(2, 3, 32, 32)
        assert torch.allclose(synth(x), t1(x), atol=1e-5)
        synth.logits.fill_(-30.0)  # pure T2 blocks, but T1's final norm
        f, rope = t2.prepare_tokens(x), t2.rope_for(x)
        for b in t2.blocks:
            f = b(f, rope)
        assert torch.allclose(synth(x), t1.norm(f)[:, 0], atol=1e-5)


def test_input_dependent_gate_ablation():
    t1, t2 = _encoders()
    synth = LayerwiseSynthesizer(t1, t2, gate="input")
    x = torch.randn(3, 3, 32, 32)
    a = synth.alphas(t1.prepare_tokens(x))
    assert a.shape == (3, 3) and torch.allclose(a, torch.full_like(a, 0.5))  # starts as the scalar model
    synth.train()
    out = synth.forward_features(x)
    assert out["cls"].shape == (3, 64) and out["patches"].shape == (3, 4, 64)
    out["cls"].pow(2).sum().backward()
    assert synth.gate_net[-1].weight.grad.abs().sum() > 0
