"""Same seed -> byte-identical output; different index -> a different patient."""

import hashlib
import json

import numpy as np

from spine_phantom import PhantomConfig, generate_study, write_study


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path):
    cfg = PhantomConfig(image_size=(128, 128))
    a = write_study(generate_study(4, 2, cfg), tmp_path / "a")
    b = write_study(generate_study(4, 2, cfg), tmp_path / "b")
    assert _digest(a) == _digest(b)


def test_in_memory_determinism(lumbar_study):
    again = generate_study(3, 5, PhantomConfig(regions=("lumbar",)))
    assert json.dumps(again.truth) == json.dumps(lumbar_study.truth)
    for s1, s2 in zip(again.series, lumbar_study.series):
        assert s1.series_instance_uid == s2.series_instance_uid
        assert np.array_equal(s1.pixels, s2.pixels)


def test_other_index_differs(lumbar_study):
    other = generate_study(3, 6, PhantomConfig(regions=("lumbar",)))
    assert other.study_instance_uid != lumbar_study.study_instance_uid
    assert other.patient_id != lumbar_study.patient_id
    assert not np.array_equal(other.series[0].pixels, lumbar_study.series[0].pixels)


def test_normal_twin_shares_patient_and_noise():
    """The normal twin (no findings) has the same UIDs, geometry and noise stream."""
    cfg = PhantomConfig(regions=("lumbar",), prevalence={"hemangioma": 1.0}, uncertain_fraction=0.0, image_size=(128, 128))
    a = generate_study(9, 1, cfg)
    b = generate_study(9, 1, PhantomConfig(regions=("lumbar",), normal=True, image_size=(128, 128)))
    assert a.study_instance_uid == b.study_instance_uid
    assert [s.series_instance_uid for s in a.series] == [s.series_instance_uid for s in b.series]
    assert not b.truth["findings"]
    assert set(b.truth["labels"].values()) == {0}
