"""Varied acquisitions (coverage, FOV, spacing, rotation, intensity, transitional vertebrae), the anatomy
truth behind level labelling, blank region tags, and the knee / brain phantoms."""

import hashlib

import numpy as np
import pytest

from spine_phantom import PhantomConfig, generate_study
from spine_phantom.anatomy import apply_variant, make_spine
from spine_phantom.nonspine import generate_nonspine
from spine_phantom.tissues import T

VARIED = PhantomConfig(acquisition="varied", include_axial=False)
DISC_TISSUES = {T.ANNULUS, T.NUCLEUS, T.NUCLEUS_DRY, T.SCLEROSIS}


@pytest.fixture(scope="module")
def varied_studies():
    """Normal twins (no findings), so the label maps at the landmarks are plain anatomy."""
    return [generate_study(21, i, PhantomConfig(acquisition="varied", include_axial=False, normal=True))
            for i in range(14)]


def test_fixed_acquisition_keeps_the_bytes_of_generator_0_1():
    """Existing seeds are unchanged by the varied option (digest of generator 0.1.0's pixels, numpy 2 RNG)."""
    st = generate_study(4, 2, PhantomConfig(image_size=(96, 96)))
    h = hashlib.sha256()
    for s in st.series:
        h.update(s.pixels.tobytes())
    assert h.hexdigest() == "bc2f386078a7b866a79ab6d14595600abe3fe0587bb95fb14366612d0db8e040"


def test_varied_is_deterministic():
    a, b = generate_study(21, 3, VARIED), generate_study(21, 3, VARIED)
    assert a.truth == b.truth
    assert all(np.array_equal(x.pixels, y.pixels) for x, y in zip(a.series, b.series))


def test_varied_draws_what_protocols_vary(varied_studies):
    modes, spacings, shapes, rotations = set(), [], set(), []
    for st in varied_studies:
        sag = [s for s in st.series if s.plane == "sagittal"]
        g = sag[0].geometry[0]
        spacings.append(sag[0].pixel_spacing[0])
        shapes.add(sag[0].pixels.shape)
        rotations.append(np.degrees(np.arctan2(g.orientation[2], g.orientation[1])))
        modes.add(st.truth["anatomy"]["coverage_mode"])
        assert 128 <= sag[0].pixels.shape[1] <= 512 and sag[0].pixels.shape[0] in (11, 13, 15, 17, 19)
        assert len({s.pixels.shape for s in sag}) == 1  # one plan for every sagittal series
    assert modes == {"planned", "partial", "crop"}
    assert min(spacings) >= 0.39 and max(spacings) <= 1.21 and max(spacings) - min(spacings) > 0.3
    assert len(shapes) >= 8 and max(abs(r) for r in rotations) <= 12.01 and max(abs(r) for r in rotations) > 3


def test_anatomy_truth_lands_on_discs_and_bodies(varied_studies):
    """Every visible disc centre of the truth is disc tissue in the mid-slice label map, every body centre bone."""
    checked = 0
    for st in varied_studies:
        a = st.truth["anatomy"]
        labels = st.label_maps["sagittal"]
        mid = labels[len(labels) // 2]
        for lv in a["visible_discs"]:
            r, c = (int(round(v)) for v in a["discs"][lv])
            assert mid[r, c] in DISC_TISSUES, (st.index, lv, mid[r, c])
            checked += 1
        for lv in a["visible_vertebrae"]:
            r, c = (int(round(v)) for v in a["vertebrae"][lv])
            assert mid[r, c] in (T.MARROW, T.CORTEX, T.FAT), (st.index, lv, mid[r, c])
        assert a["coverage"] == (f"{a['visible_vertebrae'][0]}-{a['visible_vertebrae'][-1]}" if a["visible_vertebrae"] else "")
    assert checked > 50


def test_crops_show_few_discs_and_partial_coverage_misses_the_region_ends(varied_studies):
    crops = [st for st in varied_studies if st.truth["anatomy"]["coverage_mode"] == "crop"]
    assert crops and all(len(st.truth["anatomy"]["visible_discs"]) <= 4 for st in crops)
    assert all(st.truth["anatomy"]["fov_mm"][0] < 100 for st in crops)


def test_transitional_vertebrae():
    spine = make_spine(np.random.default_rng(0))
    disc_l5 = spine.disc[23]
    sac = apply_variant(spine.copy(), "sacralised_L5")
    assert sac.disc[23] < 0.4 * disc_l5 and sac.variant == "sacralised_L5"
    lum = apply_variant(spine.copy(), "lumbarised_S1")
    assert not lum.fused[24] and lum.disc[24] > 3 * spine.disc[24]
    with pytest.raises(ValueError, match="unknown variant"):
        apply_variant(spine.copy(), "T13")
    # in a study: the mobile S1-S2 disc is in the truth and drawn as a disc
    for i in range(200):
        st = generate_study(33, i, PhantomConfig(acquisition="varied", include_axial=False, variant_probability=1.0,
                                                 regions=("lumbar",), image_size=(64, 64)))
        a = st.truth["anatomy"]
        if a["variant"] == "lumbarised_S1" and "S1-S2" in a["visible_discs"]:
            mid = st.label_maps["sagittal"][len(st.label_maps["sagittal"]) // 2]
            r, c = (int(round(v)) for v in a["discs"]["S1-S2"])
            assert mid[r, c] in DISC_TISSUES
            break
    else:
        pytest.fail("no lumbarised S1 in view among 200 studies")


def test_intensity_scaling_may_use_16_bits(varied_studies):
    bits = {s.datasets()[0].BitsStored for st in varied_studies for s in st.series[:1]}
    assert bits == {12, 16}
    for st in varied_studies:
        ds = st.series[0].datasets()[0]
        assert int(st.series[0].pixels.max()) < 2 ** ds.BitsStored


def test_blank_region_tags():
    st = generate_study(21, 1, PhantomConfig(acquisition="varied", include_axial=False, region_tags=False))
    ds = st.series[0].datasets()[0]
    assert ds.BodyPartExamined == "" and ds.StudyDescription == "SYNTHETIC PHANTOM MRI"
    tagged = generate_study(21, 1, VARIED).series[0].datasets()[0]
    assert tagged.BodyPartExamined in ("CSPINE", "TSPINE", "LSPINE", "SPINE") and "SPINE" in tagged.StudyDescription


@pytest.mark.parametrize("kind, part, word", [("knee", "KNEE", "KNEE"), ("brain", "HEAD", "BRAIN")])
def test_nonspine_phantoms(kind, part, word):
    a, b = generate_nonspine(2, 1, kind), generate_nonspine(2, 1, kind)
    assert all(np.array_equal(x.pixels, y.pixels) for x, y in zip(a.series, b.series))
    ds = a.series[0].datasets()[0]
    assert ds.BodyPartExamined == part and word in ds.StudyDescription and "SYNTHETIC" in ds.StudyDescription
    assert [s.sequence for s in a.series] == ["T1", "T2"] and all(s.plane == "sagittal" for s in a.series)
    blank = generate_nonspine(2, 1, kind, body_part="").series[0].datasets()[0]
    assert blank.BodyPartExamined == "" and blank.StudyDescription == "SYNTHETIC PHANTOM MRI"
    with pytest.raises(ValueError, match="kind must be"):
        generate_nonspine(2, 1, "elbow")


def test_cli_writes_varied_studies_with_blank_region_tags(tmp_path):
    import json

    import pydicom

    from spine_phantom.cli import main

    assert main(["generate", "--studies", "1", "--seed", "21", "--start", "1", "--out", str(tmp_path),
                 "--acquisition", "varied", "--no-region-tags", "--quiet"]) == 0
    truth = json.loads(next(tmp_path.rglob("truth.json")).read_text())
    assert truth["region_tags"] is False and truth["anatomy"]["coverage_mode"] in ("planned", "partial", "crop")
    ds = pydicom.dcmread(next(tmp_path.rglob("*.dcm")))
    assert ds.BodyPartExamined == "" and ds.StudyDescription == "SYNTHETIC PHANTOM MRI"


def test_a_localizer_is_kept_as_archives_keep_it_without_changing_the_other_series():
    """Series 1: a sagittal localizer with a large field of view and coarse pixels (what a cropped stack is
    counted from), typed as a localizer from its ImageType; the study's other series keep their bytes."""
    from spinefm.sequences import describe_sequence, plane_from_orientation

    plain = generate_study(21, 5, VARIED)
    with_loc = generate_study(21, 5, PhantomConfig(acquisition="varied", include_axial=False, localizer_probability=1.0))
    loc = with_loc.series[-1]
    assert [s.sequence for s in with_loc.series[:-1]] == [s.sequence for s in plain.series] and loc.sequence == "LOCALIZER"
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(plain.series, with_loc.series))
    ds = loc.datasets()
    assert loc.number == 1 and 1 <= len(ds) <= 5 and list(ds[0].ImageType)[-1] == "LOCALIZER"
    assert describe_sequence(ds[0]).detail == "localizer" and plane_from_orientation(ds[0].ImageOrientationPatient) == "sagittal"
    assert ds[0].Rows * float(ds[0].PixelSpacing[0]) >= 340 and float(ds[0].PixelSpacing[0]) > 1.0
    assert ds[0].FrameOfReferenceUID == with_loc.series[0].datasets()[0].FrameOfReferenceUID
    assert any(s["series_number"] == 1 for s in with_loc.truth["series"])
    assert generate_study(21, 5, PhantomConfig(localizer_probability=1.0)).series[-1].sequence != "LOCALIZER"  # varied only
