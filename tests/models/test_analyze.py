import pytest

from spinefm.bundle import load_bundle
from spinefm.results import STATUSES, AnalysisResult, Call, UnsupportedStudy


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


def _check(result: AnalysisResult, bundle, study):
    assert isinstance(result, AnalysisResult)
    assert result.synthetic_training is True and result.model_name == bundle.name
    assert [c.condition for c in result.conditions] == bundle.conditions
    assert all(0.0 <= c.probability <= 1.0 for c in result.conditions)
    assert all(c.status in STATUSES and c.present == (c.status == Call.PRESENT) for c in result.conditions)
    assert len(result.embedding) == bundle.model.cfg.clip.proj_dim
    assert len(result.similar_cases) == 3 and result.similar_cases[0].report.startswith("report")
    sops = {s.series_instance_uid: {str(d.SOPInstanceUID): d for d in s.datasets} for s in study.series}
    assert len(result.key_slices) == len(result.boxes)
    for ks, box in zip(result.key_slices, result.boxes):
        ds = sops[ks.series_instance_uid][ks.sop_instance_uid]
        x0, y0, x1, y1 = box.box
        assert 0 <= x0 <= x1 <= ds.Columns and 0 <= y0 <= y1 <= ds.Rows
        assert box.sop_instance_uid == ks.sop_instance_uid
    assert result.timings["total_s"] > 0
    AnalysisResult.from_dict(result.to_dict())


def test_analyze_full_study(bundle, study_factory):
    study = study_factory(kinds=("T1", "T2", "STIR", "AXT2", "POST"))
    result = bundle.analyze(study, localize_all=True)
    _check(result, bundle, study)
    # as the paper routes: STIR through the T2 encoder, post-contrast through the synthesizer; axial not read
    assert [(s.sequence, s.encoder) for s in result.series] == [("T1", "t1"), ("T2", "t2"), ("STIR", "t2"),
                                                                ("OTHER", "synthesizer")]
    assert [s.label for s in result.series] == ["T1", "T2", "STIR", "post-contrast T1"]
    assert len(result.boxes) == len(bundle.conditions)
    # tags name the lumbar spine; this bundle has no locator, so no coverage and no image region
    assert (result.region, result.region_source, result.region_image, result.coverage) == ("lumbar", "dicom", "", [])


@pytest.mark.parametrize("kinds,encoders", [(("T1",), ["t1"]), (("T2", "AXT2"), ["t2"]), (("STIR",), ["t2"]),
                                            (("DIXON",), ["t2"]), (("POST",), ["synthesizer"])])
def test_analyze_partial_studies(bundle, study_factory, kinds, encoders):
    study = study_factory(kinds=kinds)
    result = bundle.analyze(study, localize_all=True, draft=False)
    _check(result, bundle, study)
    assert [s.encoder for s in result.series] == encoders


def test_unsupported_studies(bundle, study_factory):
    with pytest.raises(UnsupportedStudy, match="not MR"):
        bundle.analyze(study_factory(kinds=("T1",), modality="CT"))
    with pytest.raises(UnsupportedStudy, match="no sagittal MR"):
        bundle.analyze(study_factory(kinds=("AXT2",)))
    with pytest.raises(UnsupportedStudy, match="not a spine MRI: BodyPartExamined 'KNEE'"):
        bundle.analyze(study_factory(kinds=("T1", "T2"), body_part="KNEE"))
    # blank tags: only the images could confirm a spine, and this bundle has no locator
    with pytest.raises(UnsupportedStudy, match="do not name the spine.*no spine locator"):
        bundle.analyze(study_factory(kinds=("T1", "T2"), body_part=""))


def test_report_drafter_is_called_when_available(bundle, study_factory):
    result = bundle.analyze(study_factory(kinds=("T1", "T2")))
    assert result.draft_backend and not result.draft_backend.startswith("error"), result.draft_backend
    assert isinstance(result.draft_text, str) and result.draft_text


def test_analyze_phantom_study(bundle):
    import spine_phantom

    from spinefm.study import StudyInput

    ph = spine_phantom.generate_study(3, 1)
    study = StudyInput.from_datasets([ds for s in ph.series for ds in s.datasets()])
    result = bundle.analyze(study, localize_all=True, draft=False)
    _check(result, bundle, study)
    used = {s.encoder for s in result.series}
    assert {"t1", "t2"} <= used


DEFAULT_BUNDLE = __import__("pathlib").Path(__file__).resolve().parents[2] / "models/bundles/spineagent-phantom-nano"


def test_default_bundle_on_a_held_out_phantom():
    import spine_phantom

    from spinefm.study import StudyInput

    bundle = load_bundle(DEFAULT_BUNDLE)
    assert bundle.synthetic_training is True and bundle.manifest["metrics"]["label"].startswith("SYNTHETIC")
    ph = spine_phantom.generate_study(spine_phantom.EVAL_SEED, 5)
    study = StudyInput.from_datasets([ds for s in ph.series for ds in s.datasets()])
    result = bundle.analyze(study, localize_all=True, draft=False)
    assert len(result.conditions) == 17 and len(result.boxes) == 17
    assert len(result.similar_cases) == 5 and len(result.embedding) == bundle.model.cfg.clip.proj_dim
    sops = {str(d.SOPInstanceUID): d for s in study.series for d in s.datasets}
    for box in result.boxes:
        ds = sops[box.sop_instance_uid]
        assert 0 <= box.box[0] <= box.box[2] <= ds.Columns and 0 <= box.box[1] <= box.box[3] <= ds.Rows
    # every box has a level the registry allows, inside the field of view the images show, or says
    # "level uncertain" (level None) instead of naming one
    from spinefm.heads.level import LEVELS, allowed_levels, level_position

    assert bundle.manifest["metrics"]["level"]["label"].startswith("SYNTHETIC")
    assert result.region == " and ".join(ph.regions) and result.region_source == "dicom"
    if bundle.model.locator.is_fitted:
        assert result.levels_source == "locator" and result.spine_check["is_spine"] and result.coverage
    for box in result.boxes:
        if box.level is None:
            assert box.level_uncertain, box
            continue
        assert box.level in LEVELS and allowed_levels(box.condition)[LEVELS.index(box.level)], box
        if result.coverage:
            first, last = level_position(result.coverage[0]), level_position(result.coverage[-1])
            assert first - 0.5 <= level_position(box.level) <= last + 0.5, (box, result.coverage)
    # operating points from held-out cases: the conditions that failed validation are never called
    points = {p["condition"]: p for p in bundle.manifest["operating_points"]["points"]}
    for c in result.conditions:
        assert (c.status == Call.NOT_ASSESSED) == (not points[c.condition]["validated"]), c


def test_site_drafter_that_cannot_load_leaves_a_template_draft_with_the_fallback_recorded(tiny_bundle, study_factory):
    bundle = load_bundle(tiny_bundle)
    bundle.configure_drafter({"backend": "llava", "lm_path": "/nonexistent/Llama-3.1-8B-Instruct"})
    result = bundle.analyze(study_factory(kinds=("T1", "T2")))
    assert result.draft_backend == "template/1.1 (fallback from llava)"
    assert result.draft_fallback.startswith("llava not loaded: DrafterConfigError: lm_path '/nonexistent/")
    assert result.draft_text.startswith("TECHNIQUE:")
    assert AnalysisResult.from_dict(result.to_dict()).draft_fallback == result.draft_fallback
    bundle.configure_drafter({"backend": "template"})
    result = bundle.analyze(study_factory(kinds=("T1",)))
    assert (result.draft_backend, result.draft_fallback) == ("template/1.1", "")


def _blank_tag_study(datasets):
    from spinefm.study import StudyInput

    for ds in datasets:
        ds.BodyPartExamined = ""
        ds.StudyDescription = "SYNTHETIC PHANTOM MRI"
    return StudyInput.from_datasets(datasets)


@pytest.mark.parametrize("kind", ["knee", "brain"])
def test_default_bundle_refuses_a_sagittal_non_spine_mr_with_blank_tags(kind):
    """Blank BodyPartExamined and generic descriptions: only the images can say spine, and they say no."""
    from spine_phantom.nonspine import generate_nonspine

    bundle = load_bundle(DEFAULT_BUNDLE)
    assert bundle.model.locator.is_fitted
    ph = generate_nonspine(8, 3, kind, body_part="")
    study = _blank_tag_study([ds for s in ph.series for ds in s.datasets()])
    with pytest.raises(UnsupportedStudy, match="do not name the spine and the images do not show one"):
        bundle.analyze(study)


def test_default_bundle_refuses_pydicoms_mr_small_made_sagittal():
    """A real MR image (pydicom's MR_small, 64 x 64) stored as a sagittal stack with no body part."""
    import copy

    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    src = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    series_uid, datasets = generate_uid(), []
    for k in range(5):
        ds = copy.deepcopy(src)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, generate_uid()
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [float(4 * k), 0.0, 0.0]
        ds.SeriesDescription, ds.InstanceNumber = "t2_tse_sag", k + 1
        ds.RepetitionTime, ds.EchoTime = 3000, 100
        datasets.append(ds)
    study = _blank_tag_study(datasets)
    assert np.asarray(datasets[0].pixel_array).shape == (64, 64)
    with pytest.raises(UnsupportedStudy, match="the images do not show one"):
        load_bundle(DEFAULT_BUNDLE).analyze(study)
    from spinefm.study import StudyInput

    # the same head image tagged LSPINE (a mislabelled export): the tags decide the region, the draft says the
    # images did not confirm a spine
    for ds in datasets:
        ds.BodyPartExamined = "LSPINE"
    result = load_bundle(DEFAULT_BUNDLE).analyze(StudyInput.from_datasets(datasets))
    assert result.region == "lumbar" and not result.spine_check["is_spine"]
    assert result.region_disagreement.startswith("DICOM (BodyPartExamined) says lumbar spine; the images did not confirm")
    assert "REGION: DICOM (BodyPartExamined) says lumbar spine; the images did not confirm a spine" in result.draft_text


def test_default_bundle_reads_region_and_levels_from_the_images_when_tags_are_blank():
    import spine_phantom

    bundle = load_bundle(DEFAULT_BUNDLE)
    ph = spine_phantom.generate_study(7, 2, spine_phantom.PhantomConfig(acquisition="varied", regions=("cervical",),
                                                                       region_tags=False))
    study = _blank_tag_study([ds for s in ph.series for ds in s.datasets()])
    result = bundle.analyze(study, localize_all=True)
    assert result.region_source == "image" and result.region_dicom == "unknown" and result.spine_check["is_spine"]
    assert result.region == "cervical", (result.region, result.coverage, ph.truth["anatomy"]["coverage"])
    # every named disc sits where that disc truly is (within 10 mm), and most visible discs are named
    a = ph.truth["anatomy"]
    named = [d for d in result.spine_check["discs"] if d["level"]]
    for d in named:
        r, c = a["discs"][d["level"]]
        assert ((d["row"] - r) ** 2 + (d["col"] - c) ** 2) ** 0.5 * a["pixel_spacing"] <= 10.0, (d, (r, c))
    assert len(named) >= len(a["visible_discs"]) - 1, (named, a["visible_discs"])
    assert result.draft_text.startswith("TECHNIQUE: MRI of the cervical spine.")
    assert result.draft_text.splitlines()[-1].startswith(f"Draft by {bundle.name} version {bundle.version}, a model "
                                                         "trained on synthetic phantom data only")


def test_default_bundle_counts_a_crop_on_the_localizer_and_says_so_in_the_draft():
    """analyze on the whole study (localizer included): the localizer is not read as a sequence, the discs
    of the cropped T2 are named from it, and the technique line names where the levels were counted."""
    import spine_phantom
    from spinefm.study import StudyInput

    ph = spine_phantom.generate_study(7, 45, spine_phantom.PhantomConfig(acquisition="varied", include_axial=False,
                                                                        other_sequence_probability=0.5,
                                                                        localizer_probability=1.0))
    localizer = next(s for s in ph.series if s.sequence == "LOCALIZER")
    result = load_bundle(DEFAULT_BUNDLE).analyze(StudyInput.from_datasets([d for s in ph.series for d in s.datasets()]))
    assert localizer.series_instance_uid not in {s.series_instance_uid for s in result.series}
    assert result.spine_check["counted_on"] == localizer.series_instance_uid
    assert [d["level"] for d in result.spine_check["discs"]] == ph.truth["anatomy"]["visible_discs"]
    technique = result.draft_text.splitlines()[0]
    assert technique.endswith(f"(levels counted on {localizer.description} (series 1)).") and "Levels in view:" in technique
