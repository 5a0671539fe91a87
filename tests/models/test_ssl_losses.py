"""SSL losses and head against hand-computed values (spinefm.train.ssl.losses, spinefm.train.ssl.heads)."""

import math

import torch
import torch.nn.functional as F

from spinefm.train.ssl import DINOHead, DINOLoss, GramLoss, KoLeoLoss, iBOTPatchLoss
from spinefm.train.ssl.losses import TeacherCentering


def test_dino_head_gives_cosine_logits_to_unit_prototypes():
    torch.manual_seed(0)
    head = DINOHead(16, out_dim=50, hidden_dim=32, bottleneck_dim=8, nlayers=3)
    out = head(torch.randn(7, 16) * 100)
    assert out.shape == (7, 50)
    assert out.abs().max() <= 1.0 + 1e-5  # cosine similarities
    assert torch.allclose(head.prototypes().norm(dim=-1), torch.ones(50))
    # scaling the raw prototype weights changes nothing (weight normalisation, gain fixed at 1)
    x = torch.randn(3, 16)
    before = head(x)
    with torch.no_grad():
        head.last_layer.mul_(7.0)
    assert torch.allclose(head(x), before, atol=1e-6)


def test_dino_loss_is_cross_entropy_over_cross_view_pairs():
    torch.manual_seed(0)
    b, k, temp = 3, 5, 0.1
    student = [torch.randn(b, k) for _ in range(3)]  # global 0, global 1, local 0
    teacher = [torch.softmax(torch.randn(b, k), dim=-1) for _ in range(2)]
    loss = DINOLoss(k, student_temp=temp)(student, teacher)

    def ce(s, t):
        total = 0.0
        for i in range(b):
            logq = [s[i, j].item() / temp for j in range(k)]
            lse = math.log(sum(math.exp(v) for v in logq))
            total += -sum(t[i, j].item() * (logq[j] - lse) for j in range(k))
        return total / b

    # student global 0 vs teacher 1, global 1 vs teacher 0, the local crop vs both; never a view vs itself
    pairs = [(0, 1), (1, 0), (2, 0), (2, 1)]
    expected = sum(ce(student[s], teacher[t]) for s, t in pairs) / len(pairs)
    assert abs(loss.item() - expected) < 1e-5


def test_centering_softmax_and_ema_update():
    c = TeacherCentering(4, "centering", momentum=0.9)
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 2.0, 1.0, 0.0]])
    assert torch.allclose(c.probs(logits, 0.5), torch.softmax(logits / 0.5, dim=-1))
    c.update(logits)
    assert torch.allclose(c.center, 0.1 * torch.tensor([[2.0, 2.0, 2.0, 2.0]]))
    assert torch.allclose(c.probs(logits, 0.5), torch.softmax((logits - c.center) / 0.5, dim=-1))


def test_sinkhorn_knopp_targets_are_distributions_with_equal_prototype_mass():
    torch.manual_seed(0)
    c = TeacherCentering(8, "sinkhorn_knopp", sk_iterations=50)
    logits = torch.randn(64, 8) + torch.tensor([5.0, 0, 0, 0, 0, 0, 0, 0])  # prototype 0 dominates
    q = c.probs(logits, 0.1)
    assert torch.allclose(q.sum(dim=1), torch.ones(64), atol=1e-5)
    assert torch.allclose(q.sum(dim=0), torch.full((8,), 64 / 8), atol=1e-2)  # equipartition
    plain = torch.softmax(logits / 0.1, dim=-1)
    assert plain.sum(dim=0)[0] > 40  # without it prototype 0 takes almost everything
    c.update(logits)
    assert torch.count_nonzero(c.center) == 0  # no EMA centre in Sinkhorn mode


def test_ibot_loss_counts_only_masked_tokens_with_per_image_weights():
    torch.manual_seed(0)
    b, n, k, temp = 3, 4, 6, 0.1
    s_full = torch.randn(b, n, k)
    t_full = torch.softmax(torch.randn(b, n, k), dim=-1)
    masks = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    loss_fn = iBOTPatchLoss(k, student_temp=temp)
    loss = loss_fn(s_full[masks], t_full[masks], masks)
    ce = -(t_full * F.log_softmax(s_full / temp, dim=-1)).sum(-1)  # (b, n)
    expected = (ce[0, 0] + ce[1, :3].mean()) / 3  # each image weighs 1/B; image 2 (no mask) adds 0
    assert abs(loss.item() - expected.item()) < 1e-5
    # changing unmasked positions changes nothing
    s2 = s_full.clone()
    s2[~masks] = 100.0
    assert abs(loss_fn(s2[masks], t_full[masks], masks).item() - loss.item()) < 1e-6
    none = torch.zeros(b, n, dtype=torch.bool)
    assert loss_fn(s_full[none], t_full[none], none).item() == 0.0


def test_koleo_on_known_points():
    koleo = KoLeoLoss()
    square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]) * 3.0  # scale is normalised away
    assert abs(koleo(square).item() - (-math.log(math.sqrt(2)))) < 1e-5
    a = [0.0, 10.0, 180.0]
    pts = torch.tensor([[math.cos(math.radians(t)), math.sin(math.radians(t))] for t in a])
    d_close, d_far = 2 * math.sin(math.radians(5)), 2 * math.sin(math.radians(85))
    expected = -(2 * math.log(d_close) + math.log(d_far)) / 3
    assert abs(koleo(pts).item() - expected) < 1e-5
    # its gradient spreads the clump: one descent step increases the nearest-neighbour distance
    x = pts.clone().requires_grad_(True)
    koleo(x).backward()
    y = F.normalize(pts - 0.01 * x.grad, dim=-1)
    assert (y[0] - y[1]).norm() > d_close
    assert koleo(torch.randn(1, 4)).item() == 0.0


def test_gram_loss_zero_for_same_similarities_positive_otherwise():
    torch.manual_seed(0)
    gram = GramLoss()
    f = torch.randn(2, 9, 16)
    assert gram(f, f.clone()).item() < 1e-10
    # invariant to a rotation of feature space and to token norms: it anchors similarities, not features
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    scaled = (f @ q) * torch.rand(2, 9, 1).add(0.5)
    assert gram(scaled, f).item() < 1e-10
    assert gram(torch.randn(2, 9, 16), f).item() > 0.01
    # hand value: orthogonal tokens vs identical tokens -> off-diagonal entries 0 vs 1 -> MSE 2/4
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    t = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert abs(gram(s, t).item() - 0.5) < 1e-6
    # the target is detached: only the student receives a gradient
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    gram(s, t).backward()
    assert s.grad is not None and t.grad is None
