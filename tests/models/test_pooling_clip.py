import math

import torch

from spinefm.clip import ClipConfig, TriModalCLIP, case_embedding, info_nce
from spinefm.pooling import GatedAttentionPooler, masked_softmax, pad_bags


def test_masked_softmax_ignores_padding_and_handles_empty_rows():
    s = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    m = torch.tensor([[True, True, False], [False, False, False]])
    p = masked_softmax(s, m)
    assert p[0, 2] == 0 and torch.isclose(p[0].sum(), torch.tensor(1.0))
    assert torch.all(p[1] == 0)


def test_pooler_is_invariant_to_padding():
    torch.manual_seed(0)
    pool = GatedAttentionPooler(8, hidden=16).eval()
    a, b = torch.randn(3, 8), torch.randn(5, 8)
    padded, mask = pad_bags([a, b])
    out, attn = pool(padded, mask)
    alone, _ = pool(a[None])
    assert torch.allclose(out[0], alone[0], atol=1e-6)
    assert attn.shape == (2, 5) and torch.all(attn[0, 3:] == 0)
    assert torch.allclose(attn.sum(1), torch.ones(2))


def test_info_nce_symmetric_and_low_when_aligned():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    scale = torch.tensor(math.log(1 / 0.07))
    aligned = info_nce(x, x, scale)
    shuffled = info_nce(x, x.roll(1, 0), scale)
    assert aligned < shuffled
    assert torch.isclose(info_nce(x, x.roll(1, 0), scale), info_nce(x.roll(1, 0), x, scale))


def test_case_embedding_is_mean_of_available():
    a = torch.nn.functional.normalize(torch.randn(2, 4), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(2, 4), dim=-1)
    both = case_embedding(a, b)
    assert torch.allclose(both, torch.nn.functional.normalize(a + b, dim=-1), atol=1e-6)
    only_a = case_embedding(a, b, torch.tensor([True, True]), torch.tensor([False, False]))
    assert torch.allclose(only_a, a, atol=1e-6)


def test_trimodal_loss_with_missing_sequences_and_gradients():
    torch.manual_seed(0)
    clip = TriModalCLIP(8, 8, ClipConfig(hidden=8, proj_dim=6, text_dim=5))
    assert math.isclose(clip.logit_scale.exp().item(), 1 / 0.07, rel_tol=1e-5)
    t1, t2, text = torch.randn(4, 3, 8), torch.randn(4, 2, 8), torch.randn(4, 5)
    m1 = torch.ones(4, 3, dtype=torch.bool)
    m1[0] = False  # case 0 has no T1
    m2 = torch.ones(4, 2, dtype=torch.bool)
    out = clip.loss(t1, m1, t2, m2, text)
    assert set(out) >= {"loss", "case", "t1", "t2"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert clip.logit_scale.grad is not None and clip.t1.proj.weight.grad.abs().sum() > 0
