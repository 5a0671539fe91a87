"""SSL meta-architecture, trainer, checkpoints, CLI and a short pretraining (spinefm.train.ssl)."""

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spinefm.train.ssl import SSLConfig, SSLMetaArch, Trainer, load_encoder, pretrain_encoder
from spinefm.train.ssl import train as ssl_train
from spinefm.train.ssl.augment import IMAGENET_MEAN, IMAGENET_STD
from spinefm.train.ssl.data import SliceTensorDataset
from spinefm.vit import VisionTransformer, ViTConfig

TINY_HEAD = dict(head_prototypes=64, head_hidden=32, head_bottleneck=16)


@pytest.fixture
def one_thread():
    """2 shared cores: one intra-op thread is faster and steadier than oversubscribing."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(**kw):
    base = dict(steps=2, gram_steps=0, batch_size=8, n_local=2, local_size=32, warmup_steps=1,
                warmup_teacher_temp_steps=2, checkpoint_every=0, **TINY_HEAD)
    base.update(kw)
    return SSLConfig(**base)


def test_ema_update_math_and_frozen_teacher():
    arch = SSLMetaArch(_cfg())
    with torch.no_grad():
        for p in arch.student.parameters():
            p.fill_(1.0)
        for p in arch.teacher.parameters():
            p.fill_(3.0)
    arch.update_teacher(0.9)
    for p in arch.teacher.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.9 * 3.0 + 0.1 * 1.0))
        assert not p.requires_grad
    assert all(p.requires_grad for p in arch.student.parameters())
    arch.train()
    assert not arch.teacher.training and arch.student.training


def test_param_groups_cover_student_once_without_decay_on_norms_and_tokens():
    arch = SSLMetaArch(_cfg(layerwise_decay=0.5))
    groups = arch.param_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in arch.student.parameters()) and len(ids) == len(set(ids))
    by_id = {id(p): g for g in groups for p in g["params"]}
    bb = arch.student["backbone"]
    assert by_id[id(bb.cls_token)]["wd_mult"] == 0.0 and by_id[id(bb.norm.weight)]["wd_mult"] == 0.0
    assert by_id[id(bb.blocks[0].attn.qkv.weight)]["wd_mult"] == 1.0
    assert by_id[id(bb.blocks[0].attn.qkv.weight)]["lr_mult"] < by_id[id(bb.blocks[-1].attn.qkv.weight)]["lr_mult"]
    assert by_id[id(arch.student["dino_head"].last_layer)]["is_last_layer"]


def _data(n=40, size=72, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def test_training_steps_and_resume_reproduce_the_uninterrupted_run(tmp_path, one_thread):
    """4 steps straight vs 2 steps + checkpoint + resume: identical weights, centres and optimiser.
    The cut falls mid-epoch (3 batches per epoch) and inside the Gram phase (starts at step 1)."""
    data = SliceTensorDataset(_data(12, size=64))
    cfg = _cfg(steps=1, gram_steps=3, batch_size=4, n_local=1)
    straight = Trainer(cfg, data, tmp_path / "a", device="cpu", progress=False)
    hist = straight.train()
    assert [h["step"] for h in hist] == [0, 1, 2, 3]
    assert all(np.isfinite(h["loss"]) for h in hist)
    assert "gram" not in hist[0] and "gram" in hist[1]

    first = Trainer(cfg, data, tmp_path / "b", device="cpu", progress=False)
    first.train(until=2)
    ckpt = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 2 and ckpt["has_gram_teacher"]
    resumed = Trainer(cfg, data, tmp_path / "b", device="cpu", progress=False)
    assert resumed.step == 2 and resumed.arch.gram_teacher is not None
    resumed.train()

    a, b = straight.arch.state_dict(), resumed.arch.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    # the student actually moved and the teacher followed
    init = SSLMetaArch(cfg)
    assert not torch.equal(init.student["backbone"].blocks[0].mlp.fc1.weight, straight.arch.student["backbone"].blocks[0].mlp.fc1.weight)
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3]

    path = resumed.export()
    enc = load_encoder(path)
    assert isinstance(enc, VisionTransformer)
    teacher = resumed.arch.teacher["backbone"]
    for k, v in teacher.state_dict().items():
        assert torch.equal(enc.state_dict()[k], v)


def test_losses_under_bf16_autocast_stay_fp32_and_backpropagate():
    """The CUDA path runs the step under bf16 autocast; CPU autocast exercises the same dtype plumbing."""
    import random

    from spinefm.train.ssl import MultiCropAugmentation, sample_masks

    cfg = _cfg(gram_teacher_scale=2.0)
    arch = SSLMetaArch(cfg).train()
    arch.start_gram_phase()
    crops = MultiCropAugmentation(cfg.augment_config())(_data(4), torch.Generator().manual_seed(0))
    masks = sample_masks(8, (4, 4), rng=random.Random(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = arch.compute_losses(crops["global_crops"], crops["local_crops"], masks, 0.04, use_gram=True)
    loss.backward()
    assert loss.dtype == torch.float32 and np.isfinite(logs["loss"]) and logs["gram"] > 0
    assert arch.dino_loss.centering.center.dtype == torch.float32
    assert all(p.grad is not None for p in arch.student["backbone"].blocks[0].parameters())


def test_sinkhorn_centering_and_shared_ibot_head_train(one_thread):
    cfg = _cfg(centering="sinkhorn_knopp", ibot_separate_head=False, n_local=0)
    trainer = Trainer(cfg, SliceTensorDataset(_data(16)), None, device="cpu", progress=False)
    hist = trainer.train()
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
    assert "ibot_head" not in trainer.arch.student


def test_pretrain_encoder_trains_in_place_to_the_teacher(one_thread):
    torch.manual_seed(0)
    enc = VisionTransformer(ViTConfig(size="nano", img_size=64))
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    out = pretrain_encoder(enc, _data(16), steps=2, gram_steps=1, batch_size=8, gram_teacher_scale=2.0, **TINY_HEAD)
    assert len(out["history"]) == 3 and "gram" in out["history"][-1]
    assert any(not torch.equal(before[k], v) for k, v in enc.state_dict().items())
    assert all(p.requires_grad for p in enc.parameters())


def _two_class_slices(n, seed, size=72):
    """Horizontal vs vertical bright bars at random places and intensities, with noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    imgs = []
    for i in range(n):
        cy, cx = ((torch.rand(2, generator=g) * 0.4 + 0.3) * size).tolist()
        amp = 0.5 + 0.5 * torch.rand(1, generator=g).item()
        a, b = (yy, xx) if i % 2 == 0 else (xx, yy)
        c1, c2 = (cy, cx) if i % 2 == 0 else (cx, cy)
        img = ((a - c1).abs() < 4).float() * ((b - c2).abs() < 20).float()
        imgs.append((amp * img + 0.05 * torch.randn(size, size, generator=g)).clamp(0, 1))
    x = torch.stack(imgs).unsqueeze(1).expand(-1, 3, -1, -1)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x.contiguous(), torch.arange(n) % 2


@torch.no_grad()
def _knn_accuracy(enc, xtr, ytr, xte, yte, k=5):
    enc.eval()
    f = lambda x: F.normalize(enc(F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)), dim=-1)  # noqa: E731
    idx = (f(xte) @ f(xtr).t()).topk(k, dim=1).indices
    return ((ytr[idx].float().mean(1) > 0.5).long() == yte).float().mean().item()


def test_short_pretraining_makes_cls_features_separate_classes(one_thread):
    """30 steps of SSL on unlabeled bars: kNN on teacher CLS goes from about chance
    (LayerScale 1e-5 makes a fresh ViT's CLS nearly image-independent) to near perfect."""
    torch.manual_seed(0)
    enc = VisionTransformer(ViTConfig(size="nano", img_size=64))
    xtr, ytr = _two_class_slices(128, 100)
    xte, yte = _two_class_slices(64, 200)
    random_acc = _knn_accuracy(enc, xtr, ytr, xte, yte)
    out = pretrain_encoder(enc, xtr, steps=30, batch_size=16, n_local=2, head_prototypes=256, head_hidden=128,
                           head_bottleneck=32)
    assert out["config"]["momentum_teacher"] == pytest.approx(0.9)  # short-run cap, default lr
    ssl_acc = _knn_accuracy(enc, xtr, ytr, xte, yte)
    # 10 seeds measured: random 0.34-0.63, after SSL 0.98-1.0; this seed: 0.34 -> 1.0
    assert ssl_acc >= 0.9 and ssl_acc >= random_acc + 0.3, (random_acc, ssl_acc)


def test_cli_trains_from_a_directory_of_tensor_files(tmp_path, one_thread):
    """.pt (normalised, axial), .npz (raw uint16 magnitudes) and .npy files in one directory."""
    d = tmp_path / "slices"
    d.mkdir()
    torch.save({"slices": _data(10, seed=1), "axial": torch.ones(10, dtype=torch.bool)}, d / "a.pt")
    raw = np.random.default_rng(0).integers(0, 4000, size=(8, 90, 80), dtype=np.uint16)  # raw magnitudes
    np.savez(d / "b.npz", slices=raw)
    np.save(d / "c.npy", _data(4, seed=2).numpy())
    parser = ssl_train.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--data", str(d), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "8",
                              "--n-local", "1", "--head-prototypes", "32", "--no-progress", "--device", "cpu"])
    path = ssl_train.run(args)
    assert path.name == "encoder.safetensors" and path.exists()
    enc = load_encoder(path)
    assert enc.config.size == "nano" and enc.config.img_size == 64
    assert enc(torch.randn(1, 3, 64, 64)).shape == (1, 64)
    # a second run with the same --out resumes at the end and does no more steps
    assert ssl_train.run(args) == path
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2


def test_cli_phantom_path(tmp_path, one_thread):
    parser = ssl_train.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--phantom-studies", "1", "--sequence-group", "t2", "--out", str(tmp_path / "run"),
                              "--steps", "1", "--batch-size", "4", "--n-local", "1", "--head-prototypes", "32",
                              "--no-progress", "--device", "cpu"])
    assert load_encoder(ssl_train.run(args)).config.img_size == 64
