import numpy as np
import torch

from spinefm.data import record_from_study_input, route
from spinefm.preprocess import Geometry, PreprocessConfig, geometry_for, pixels_from_dataset, prepare_series, window


def test_rescale_slope_intercept(study_factory):
    study = study_factory(kinds=("T1",), slope=2.0, intercept=-100.0)
    ds = study.series[0].datasets[0]
    raw = ds.pixel_array.astype(np.float32)
    assert np.allclose(pixels_from_dataset(ds), raw * 2.0 - 100.0)


def test_window_is_robust_to_outliers():
    v = np.random.default_rng(0).normal(1000, 100, size=(4, 32, 32)).astype(np.float32)
    v[0, 0, 0] = 60000  # a single hot pixel must not squash the window
    w = window(v, 0.5, 99.5)
    assert w.min() == 0.0 and w.max() == 1.0
    assert 0.3 < float(np.median(w)) < 0.7


def test_prepare_series_shapes_and_normalisation(study_factory):
    cfg = PreprocessConfig(resize=40, crop=32)
    study = study_factory(kinds=("T2",))
    prep = prepare_series(study.series[0].datasets, cfg)
    assert prep.pixels.shape == (5, 32, 32)
    assert 0.0 <= float(prep.pixels.min()) and float(prep.pixels.max()) <= 1.0
    from spinefm.preprocess import normalize

    x = normalize(prep.pixels, cfg)
    assert x.shape == (5, 3, 32, 32)
    assert torch.allclose(x[:, 0] * cfg.std[0] + cfg.mean[0], prep.pixels, atol=1e-5)


def test_geometry_round_trip():
    cfg = PreprocessConfig(resize=128, crop=112)
    geo = geometry_for(256, 320, cfg)
    box = [100.0, 90.0, 160.0, 150.0]
    back = geo.to_pixels(geo.to_normalized(box))
    assert np.allclose(back, box, atol=1e-3)
    assert Geometry(**geo.to_dict()) == geo


def test_routing_uses_the_shared_rule_table(study_factory):
    study = study_factory(kinds=("T1", "T2", "STIR", "AXT2", "DIXON"))
    rec = record_from_study_input(study, PreprocessConfig(resize=32, crop=32))
    assert sorted(s.stream for s in rec.series) == ["t1", "t2", "t2", "t2"]  # STIR, Dixon: T2 encoder; axial dropped
    assert route("T1", "axial") is None and route("STIR", "sagittal") == "t2" and route("OTHER", "sagittal") == "synthesizer"
    assert rec.first("t2").sequence == "T2"  # the plain T2 stands for the stream, not the STIR or Dixon
