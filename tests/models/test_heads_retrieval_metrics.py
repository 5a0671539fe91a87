import numpy as np
import pytest
import torch

from spinefm.train import metrics as M
from spinefm.heads import DiagnosisHead, SegmentationHead, StreamSegmentation, masked_bce, segmentation_loss
from spinefm.retrieval import EmbeddingIndex, ranks
from spinefm.train.heads import fit_diagnosis

CONDS = ("canal", "herniation", "fracture")


def test_masked_bce_ignores_uncertain():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    full = masked_bce(logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    masked = masked_bce(logits, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    ref = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 1.0]))
    assert torch.isclose(masked, ref) and not torch.isclose(full, masked)
    assert masked_bce(logits, torch.full((2, 2), -1.0)) == 0


def test_diagnosis_probes_learn_and_set_thresholds():
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(60, 8), dim=-1)
    labels = torch.stack([(emb[:, 0] > 0).float(), (emb[:, 1] > 0).float(), torch.full((60,), -1.0)], 1)
    head = DiagnosisHead(8, CONDS)
    assert head(emb).shape == (60, 3) and set(head.probes) == set(CONDS)
    before = head.loss(emb, labels).item()
    after = fit_diagnosis(head, emb, labels, steps=100)
    assert after < before
    p = torch.sigmoid(head(emb)).detach()
    assert M.auroc(labels[:, 0].numpy(), p[:, 0].numpy()) > 0.9
    assert head.thresholds.shape == (3,) and head.thresholds[2] == 0.5  # no labels: default kept


def test_segmentation_head_shapes_loss_and_training():
    torch.manual_seed(0)
    seg = StreamSegmentation(16, CONDS)
    cls, patches = torch.randn(6, 16), torch.randn(6, 16, 16)
    out = seg("t2", cls, patches)
    assert out["slice_logit"].shape == (6, 3) and out["box"].shape == (6, 3, 4)
    assert out["box"].min() >= 0 and out["box"].max() <= 1
    assert torch.all(out["box"][..., 2] >= out["box"][..., 0])
    one = seg("t2", cls, patches, "herniation")
    assert one["slice_logit"].shape == (6,) and one["box"].shape == (6, 4)
    labels = torch.tensor([[1, 0, -1]] * 3 + [[0, 0, -1]] * 3).float()
    targets = torch.rand(6, 3, 4).sort(-1).values
    mask = labels == 1
    head: SegmentationHead = seg.heads["t2"]
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = segmentation_loss(head(cls, patches), labels, targets, mask)
        first = first if first is not None else loss["loss"].item()
        opt.zero_grad()
        loss["loss"].backward()
        opt.step()
    assert loss["loss"].item() < first and torch.isfinite(loss["box"])


def test_retrieval_topk_and_ranks():
    torch.manual_seed(0)
    img = torch.randn(5, 8)
    idx = EmbeddingIndex(img, img + 0.01 * torch.randn(5, 8), [f"c{i}" for i in range(5)], [f"r{i}" for i in range(5)])
    hits = idx.image_to_report(img[2], k=3)
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].case_id == "c2" and hits[0].report == "r2"
    assert hits[0].score >= hits[1].score
    assert idx.report_to_image(idx.text[4], k=1)[0].case_id == "c4"
    assert all(h.case_id != "c2" for h in idx.image_to_report(img[2], k=4, exclude="c2"))
    assert torch.all(ranks(img, idx.text) == 1)
    with pytest.raises(ValueError):
        EmbeddingIndex(img, img[:3], ["a"], ["b"])


def test_metrics_exclude_uncertain_and_bootstrap():
    y = np.array([1, 0, 1, 0, -1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.1, 0.8, 0.3, 0.99, 0.7, 0.2, 0.6, 0.4, 0.5])
    assert M.auroc(y, p) == 1.0 and M.auprc(y, p) == 1.0
    assert M.auroc(np.array([1, 1, -1]), np.array([0.2, 0.3, 0.1])) is None
    r = M.with_ci(M.auroc, y, p, n_boot=50)
    assert r["n"] == 9 and r["n_pos"] == 4 and r["ci95"][0] <= r["value"] <= r["ci95"][1]
    rec = M.recall_at_k([1, 2, 7, 20], ks=(1, 5, 10))
    assert rec == {"R@1": 0.25, "R@5": 0.5, "R@10": 0.75} and M.median_rank([1, 2, 7, 20]) == 4.5
    assert M.box_error([[0, 0, 1, 1]], [[0, 0, 0.5, 1]]) == pytest.approx(0.125)
    assert M.box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    folds = M.kfold_groups(["a", "a", "b", "c", "c", "d"], k=2)
    for tr, te in folds:
        groups = np.array(["a", "a", "b", "c", "c", "d"])
        assert not set(groups[tr]) & set(groups[te])


def test_mean_boxes_average_each_conditions_training_boxes_and_fall_back_to_all():
    from types import SimpleNamespace

    from spinefm.train.evaluate import mean_boxes

    class Geometry:
        def to_normalized(self, box):
            return [v / 100 for v in box]

    def case(condition, box):
        series = SimpleNamespace(series_instance_uid="s", sop_instance_uids=["a", "b"], geometry=Geometry(), stream="t1")
        finding = {"condition": condition, "key_slices": [{"series_instance_uid": "s", "sop_instance_uid": "b"}],
                   "boxes": [{"series_instance_uid": "s", "sop_instance_uid": "b", "box": box}]}
        return SimpleNamespace(labels={condition: 1}, findings=[finding], by_stream=lambda s: [series] if s == "t1" else [])

    cases = [case("canal", [10, 10, 20, 20]), case("canal", [30, 30, 40, 40]), case("fracture", [0, 0, 10, 10])]
    boxes = mean_boxes(cases, "t1", CONDS)
    assert torch.allclose(boxes[0], torch.tensor([0.2, 0.2, 0.3, 0.3]))           # canal: mean of its two boxes
    assert torch.allclose(boxes[2], torch.tensor([0.0, 0.0, 0.1, 0.1]))           # fracture: its one box
    assert torch.allclose(boxes[1], torch.tensor([40, 40, 70, 70]) / 300)          # herniation: none -> mean of all
