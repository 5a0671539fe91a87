"""Multi-crop MR augmentation, iBOT masking and schedules (spinefm.train.ssl)."""

import random

import pytest
import torch

from spinefm.train.ssl import AugmentConfig, MaskingGenerator, MultiCropAugmentation, sample_masks
from spinefm.train.ssl.augment import IMAGENET_MEAN, IMAGENET_STD
from spinefm.train.schedules import cosine, linear_warmup, scaled_lr


def _grey(x):
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x * std + mean


def test_multicrop_shapes_dtype_and_seeding():
    aug = MultiCropAugmentation(AugmentConfig(global_size=64, local_size=32, n_local=3))
    x = torch.randn(5, 3, 80, 72)
    out = aug(x, torch.Generator().manual_seed(1))
    assert out["global_crops"].shape == (10, 3, 64, 64)
    assert out["local_crops"].shape == (15, 3, 32, 32)
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())
    again = aug(x, torch.Generator().manual_seed(1))
    other = aug(x, torch.Generator().manual_seed(2))
    assert all(torch.equal(out[k], again[k]) for k in out)
    assert not torch.equal(out["global_crops"], other["global_crops"])
    single = aug(x[0], torch.Generator().manual_seed(1))
    assert single["global_crops"].shape == (2, 3, 64, 64) and single["local_crops"].shape == (3, 3, 32, 32)
    # magnitude images stay non-negative (Rician noise, bias field and gamma all keep them so)
    grey = _grey(out["global_crops"])
    assert grey.min() > -1e-4
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-5)  # still replicated grey


def _geometry_only(flip_p):
    return AugmentConfig(
        global_size=32, local_size=16, n_local=0, global_scale=(1.0, 1.0), aspect=(1.0, 1.0), rotation_deg=0.0,
        flip_p=flip_p, bias_p=0.0, gain_range=(1.0, 1.0), gamma_p=0.0, blur_p=(0.0, 0.0, 0.0), noise_p=0.0,
    )


def test_left_right_flip_only_for_axial_slices_never_head_feet():
    grey = torch.zeros(2, 1, 32, 32)
    grey[:, :, 4:12, 2:10] = 0.9  # off-centre block: any flip moves it
    x = ((grey.expand(-1, 3, -1, -1) - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
         / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
    aug = MultiCropAugmentation(_geometry_only(flip_p=1.0))
    out = _grey(aug(x, torch.Generator().manual_seed(0), axial=torch.tensor([False, True]))["global_crops"])[:, :1]
    sagittal, axial = out[0::2], out[1::2]  # crop-major: [crop1 img0, crop1 img1, crop2 img0, crop2 img1]
    assert torch.allclose(sagittal, grey[:1].expand(2, -1, -1, -1), atol=1e-4)
    assert torch.allclose(axial, grey[:1].flip(-1).expand(2, -1, -1, -1), atol=1e-4)


def test_masking_generator_gives_exact_counts_in_blocks():
    gen = MaskingGenerator((14, 14), max_num_patches=98)
    rng = random.Random(0)
    for n in (0, 1, 20, 60, 98):
        m = gen(n, rng)
        assert m.shape == (14, 14) and int(m.sum()) == n
    m = gen(40, rng)
    assert (m[:, :-1] & m[:, 1:]).any() and (m[:-1] & m[1:]).any()  # contiguous blocks, not salt-and-pepper


@pytest.mark.parametrize("grid", [(4, 4), (14, 14)])
def test_sample_masks_ratio_bounds_and_probability(grid):
    n = grid[0] * grid[1]
    for seed in range(20):
        masks = sample_masks(16, grid, (0.1, 0.5), 0.5, random.Random(seed))
        counts = masks.sum(dim=1)
        assert masks.shape == (16, n) and masks.dtype == torch.bool
        assert int((counts > 0).sum()) <= 8 and int((counts == 0).sum()) >= 8
        masked = counts[counts > 0]
        assert (masked >= int(0.1 * n)).all() and (masked <= 0.5 * n).all()
    a = sample_masks(8, grid, (0.1, 0.5), 0.5, random.Random(3))
    assert torch.equal(a, sample_masks(8, grid, (0.1, 0.5), 0.5, random.Random(3)))
    assert not sample_masks(8, grid, (0.1, 0.5), 0.0, random.Random(3)).any()


def test_schedules():
    assert cosine(0, 100, 1.0, 0.0) == pytest.approx(1.0)
    assert cosine(50, 100, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine(100, 100, 1.0, 0.0) == pytest.approx(0.0)
    assert cosine(5, 100, 1.0, 0.0, warmup=10) == pytest.approx(0.5)  # linear warmup from 0
    assert cosine(10, 100, 1.0, 0.1, warmup=10) == pytest.approx(1.0)
    assert linear_warmup(0, 30, 0.04, 0.07) == pytest.approx(0.04)
    assert linear_warmup(15, 30, 0.04, 0.07) == pytest.approx(0.055)
    assert linear_warmup(99, 30, 0.04, 0.07) == pytest.approx(0.07)
    assert scaled_lr(4e-3, 256) == pytest.approx(2e-3)


def test_slice_file_dataset_reads_pt_npy_npz(tmp_path):
    import numpy as np

    from spinefm.train.ssl.data import SliceFileDataset

    norm = torch.randn(3, 3, 40, 40)
    torch.save({"slices": norm, "axial": torch.tensor([True, False, True])}, tmp_path / "a.pt")
    np.save(tmp_path / "b.npy", norm[:2].numpy())
    raw = np.random.default_rng(0).integers(0, 4000, size=(2, 50, 60), dtype=np.uint16)
    np.savez(tmp_path / "c.npz", slices=raw)
    ds = SliceFileDataset(tmp_path, size=40, cache_files=1)
    assert len(ds) == 7
    x, axial = ds[0]
    assert torch.equal(x, norm[0]) and bool(axial)
    assert not bool(ds[1][1]) and torch.equal(ds[4][0], norm[1])
    windowed = _grey(torch.stack([ds[5][0], ds[6][0]]))  # raw magnitudes are windowed to [0, 1]
    assert windowed.shape == (2, 3, 40, 40)
    assert windowed.min() > -1e-4 and windowed.max() < 1 + 1e-4 and windowed.max() > 0.9


def test_capped_momentum_keeps_short_runs_moving():
    from spinefm.train.schedules import capped_momentum

    assert capped_momentum(0.992, 30) == pytest.approx(0.9)
    assert capped_momentum(0.992, 300) == pytest.approx(0.99)
    assert capped_momentum(0.992, 187_500) == 0.992


def test_config_json_round_trip_and_full_scale_recipe():
    import json

    from spinefm.train.ssl import SSLConfig

    full = SSLConfig.full_scale()
    assert SSLConfig.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    assert (full.vit_size, full.img_size, full.local_size, full.gram_weight) == ("large", 224, 96, 2.0)
    assert full.steps == 150 * 1250 and full.total_steps == 210 * 1250
    assert full.augment_config().global_size == 224 and full.augment_config().n_local == 8
