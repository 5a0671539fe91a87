"""spinefm.intake: region from the DICOM headers, which series the bundle reads, refusals with reasons."""

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from spinefm.intake import (NOT_SPINE, SPINE, UNKNOWN, call_text, check_supported, choose_series, decide_region,
                            region_from_headers, region_name, series_to_fetch)
from spinefm.results import UnsupportedStudy

SAG = [0, 1, 0, 0, 0, -1]
AX = [1, 0, 0, 0, 1, 0]


def h(uid="1", modality="MR", orientation=SAG, **kw) -> dict:
    return {"SeriesInstanceUID": uid, "Modality": modality, "ImageOrientationPatient": orientation, **kw}


@pytest.mark.parametrize("fields, status, regions, source", [
    ({"BodyPartExamined": "CSPINE"}, SPINE, ("cervical",), "BodyPartExamined"),
    ({"BodyPartExamined": "LSSPINE"}, SPINE, ("lumbar",), "BodyPartExamined"),
    ({"BodyPartExamined": "TLSPINE"}, SPINE, ("thoracic", "lumbar"), "BodyPartExamined"),
    ({"BodyPartExamined": "L-SPINE"}, SPINE, ("lumbar",), "BodyPartExamined"),
    ({"BodyPartExamined": "Cervical Spine"}, SPINE, ("cervical",), "BodyPartExamined"),
    ({"BodyPartExamined": "LWS"}, SPINE, ("lumbar",), "BodyPartExamined"),
    ({"BodyPartExamined": "WHOLESPINE"}, SPINE, ("cervical", "thoracic", "lumbar"), "BodyPartExamined"),
    ({"BodyPartExamined": "SPINE", "StudyDescription": "MRI C-SPINE W/O"}, SPINE, ("cervical",), "StudyDescription"),
    ({"BodyPartExamined": "", "StudyDescription": "MR LUMBAR SPINE"}, SPINE, ("lumbar",), "StudyDescription"),
    ({"StudyDescription": "SYNTHETIC PHANTOM MRI CERVICAL THORACIC SPINE"}, SPINE, ("cervical", "thoracic"),
     "StudyDescription"),
    ({"StudyDescription": "MRI T10-L2"}, SPINE, ("thoracic", "lumbar"), "StudyDescription"),
    ({"StudyDescription": "MR Wirbelsaeule", "SeriesDescription": "t2_tse_sag LWS"}, SPINE, ("lumbar",),
     "SeriesDescription"),
    ({"BodyPartExamined": "HEAD", "StudyDescription": "MRI CERVICAL SPINE"}, SPINE, ("cervical",), "StudyDescription"),
    ({"BodyPartExamined": "SPINE"}, SPINE, (), "BodyPartExamined"),
    ({"BodyPartExamined": "KNEE"}, NOT_SPINE, (), "BodyPartExamined"),
    ({"BodyPartExamined": "", "StudyDescription": "MR KNEE LEFT"}, NOT_SPINE, (), "StudyDescription"),
    ({"BodyPartExamined": "BRAIN", "SeriesDescription": "t2_tse_sag"}, NOT_SPINE, (), "BodyPartExamined"),
    ({"BodyPartExamined": ""}, UNKNOWN, (), ""),
    ({"BodyPartExamined": "NECK", "SeriesDescription": "Sag T2 FSE"}, UNKNOWN, (), ""),
    ({"StudyDescription": "MR CERVICAL CANCER STAGING"}, UNKNOWN, (), ""),  # the cervix, not the spine
    ({"SeriesDescription": "sag t1 t2"}, UNKNOWN, (), ""),  # weightings, not a T1-T2 level span
])
def test_region_from_headers(fields, status, regions, source):
    call = region_from_headers([h(**fields)])
    assert (call.status, call.regions, call.source) == (status, regions, source)


def test_coded_anatomic_region_is_the_first_authority():
    ds = Dataset()
    ds.Modality, ds.BodyPartExamined, ds.SeriesInstanceUID = "MR", "SPINE", "1"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "122494005", "SCT", "Cervical spine"
    ds.AnatomicRegionSequence = Sequence([item])
    call = region_from_headers([ds])
    assert (call.status, call.regions, call.source) == (SPINE, ("cervical",), "AnatomicRegionSequence")
    item.CodeValue, item.CodeMeaning = "72696002", "Knee"
    ds.BodyPartExamined = ""
    assert region_from_headers([ds]).status == NOT_SPINE


def test_conflicting_sources_keep_the_higher_one_and_say_so():
    call = region_from_headers([h(BodyPartExamined="LSPINE", StudyDescription="MRI C-SPINE")])
    assert call.regions == ("lumbar",)
    assert call.conflict == "BodyPartExamined 'LSPINE' says lumbar; StudyDescription 'MRI C-SPINE' says cervical"


def test_series_descriptions_of_one_study_add_up():
    call = region_from_headers([h("1", StudyDescription="MRI SPINE", SeriesDescription="sag t2 cervical spine"),
                                h("2", StudyDescription="MRI SPINE", SeriesDescription="sag t2 thoracic spine")])
    assert call.regions == ("cervical", "thoracic") and call.name == "cervical and thoracic"


def test_region_names():
    assert region_name(("lumbar",)) == "lumbar"
    assert region_name(("lumbar", "cervical")) == "cervical and lumbar"
    assert region_name(("cervical", "thoracic", "lumbar")) == "whole"
    assert region_name(()) == "spine"
    assert call_text("x", "MRI brain and spine").status == SPINE


def test_series_the_bundle_reads():
    heads = [
        h("t1", SeriesDescription="t1_tse_sag", BodyPartExamined="LSPINE"),
        h("t2", SeriesDescription="t2_tse_sag"),
        h("stir", SeriesDescription="t2_tirm_sag"),
        h("dixon", SeriesDescription="t2_tse_dixon_sag_W"),
        h("post", SeriesDescription="t1_tse_fs_sag_post", ContrastBolusAgent="Gadovist"),
        h("ax", orientation=AX, SeriesDescription="t2_tse_tra"),
        h("cor", orientation=[1, 0, 0, 0, 0, -1], SeriesDescription="t2_tse_cor"),
        h("loc", SeriesDescription="localizer", ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]),
        h("dwi", SeriesDescription="ep2d_diff_sag"),
        h("brain", SeriesDescription="t2_tse_sag_brain"),
        h("sr", modality="SR", SeriesDescription="SpineAgent report"),
        h("t2", SeriesDescription="t2_tse_sag"),  # a second instance of a series: one choice per series
    ]
    choices = {c.series_instance_uid: c for c in choose_series(heads)}
    assert len(choices) == 11
    assert sorted(series_to_fetch(heads)) == ["dixon", "loc", "post", "stir", "t1", "t2"]
    assert {c.use for c in choices.values() if c.fetch} == {"read", "levels"} and choices["loc"].use == "levels"
    assert choices["post"].label == "post-contrast T1" and choices["dixon"].label == "Dixon water"
    assert choices["ax"].reason == "axial (the model reads sagittal series)"
    assert choices["cor"].reason.startswith("coronal plane")
    assert choices["dwi"].reason.startswith("diffusion") and choices["dwi"].use == ""
    assert "names another body part" in choices["brain"].reason and choices["sr"].reason == "modality SR"


def test_localizers_are_fetched_to_count_levels_only_when_they_hold_a_sagittal_image():
    """A 3-plane localizer is one series of three planes (its first instance often axial): fetched when any
    instance is sagittal, for counting levels, never read by the encoders; an axial-only one is not fetched."""
    loc = dict(SeriesDescription="3-Plane Loc", ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    heads = [h("t2", SeriesDescription="SAG T2 FSE", BodyPartExamined="TSPINE"),
             h("3pl", orientation=AX, **loc), h("3pl", orientation=[1, 0, 0, 0, 0, -1], **loc), h("3pl", **loc),
             h("axloc", orientation=AX, **loc)]
    choices = {c.series_instance_uid: c for c in choose_series(heads)}
    assert (choices["3pl"].fetch, choices["3pl"].use, choices["3pl"].plane) == (True, "levels", "sagittal")
    assert (choices["axloc"].fetch, choices["axloc"].reason) == (False, "localizer without a sagittal image")
    assert sorted(series_to_fetch(heads)) == ["3pl", "t2"]
    with pytest.raises(UnsupportedStudy, match="no sagittal MR series the model reads"):  # a localizer alone is not a study
        check_supported([h("3pl", BodyPartExamined="TSPINE", **loc)])


def test_check_supported_refuses_with_reasons():
    with pytest.raises(UnsupportedStudy, match="modality CT is not MR"):
        check_supported([h(modality="CT")])
    with pytest.raises(UnsupportedStudy, match="not a spine MRI: BodyPartExamined 'KNEE'"):
        check_supported([h(BodyPartExamined="KNEE", SeriesDescription="t2_tse_sag")])
    with pytest.raises(UnsupportedStudy, match="no sagittal MR series the model reads.*AX T2: axial"):
        check_supported([h(orientation=AX, SeriesDescription="AX T2", BodyPartExamined="LSPINE")])
    # a blank body part is not refused here: the images decide (spinefm.vertebrae in analyze)
    assert check_supported([h(BodyPartExamined="", SeriesDescription="t2_tse_sag")]).status == UNKNOWN
    # report objects stored back with the study do not make it non-MR
    assert check_supported([h(BodyPartExamined="LSPINE", SeriesDescription="t2_tse_sag"),
                            h("sr", modality="SR")]).regions == ("lumbar",)


def test_decide_region_dicom_first_images_as_fallback_disagreement_kept():
    lumbar = region_from_headers([h(BodyPartExamined="LSPINE")])
    d = decide_region(lumbar, ("cervical",))
    assert d.regions == ("lumbar",) and d.source == "dicom" and d.image == "cervical"
    assert d.disagreement == "DICOM (BodyPartExamined) says lumbar spine; the images show the cervical spine"
    assert decide_region(lumbar, ("thoracic", "lumbar")).disagreement == ""  # overlap: coverage, not a contradiction
    blank = region_from_headers([h(BodyPartExamined="")])
    d = decide_region(blank, ("cervical",))
    assert (d.regions, d.source, d.dicom, d.name) == (("cervical",), "image", "unknown", "cervical")
    assert decide_region(blank, ()).name == "spine" and decide_region(blank, ()).source == ""
    # tags that call it a spine, images that do not show one: the region stays, the reader is told
    why = "0 intervertebral disc(s) found on the images (a spine shows at least 3)"
    d = decide_region(lumbar, (), why)
    assert d.regions == ("lumbar",) and d.disagreement == f"DICOM (BodyPartExamined) says lumbar spine; the images did not confirm a spine: {why}"
    generic = region_from_headers([h(BodyPartExamined="SPINE")])
    assert decide_region(generic, (), why).disagreement.startswith("DICOM (BodyPartExamined) says spine; the images did not")
    assert decide_region(blank, (), why).disagreement == ""  # blank tags: analyze refuses the study instead
