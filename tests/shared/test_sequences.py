"""The sequence rule table and plane detection shared by backend and models.

One case per rule of the table (docs/sequences.md), then the vendor naming conventions
(Siemens, GE, Philips, Canon, Hitachi) with and without their physics tags.
"""

from pathlib import Path

import pytest
from pydicom import Dataset

from spinefm.data import ROUTES, route
from spinefm.sequences import RULES, classify_sequence, describe_sequence, plane_from_orientation

SAG = [0, 1, 0, 0, 0, -1]
AX = [1, 0, 0, 0, 1, 0]
COR = [1, 0, 0, 0, 0, -1]


def header(**kw) -> Dataset:
    ds = Dataset()
    ds.Modality = kw.pop("Modality", "MR")
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


# one row per rule, in table order: (fields, type, rule, label)
RULE_ROWS = [
    ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"], "SeriesDescription": "t2_tse_sag", "RepetitionTime": 3000,
      "EchoTime": 100}, "OTHER", "localizer", "localizer"),
    ({"SeriesDescription": "sag t2", "DiffusionBValue": 800, "RepetitionTime": 3000, "EchoTime": 70},
     "OTHER", "diffusion", "diffusion"),
    ({"SeriesDescription": "SAG T1 FSE", "ContrastBolusAgent": "Gadavist", "RepetitionTime": 600, "EchoTime": 10},
     "OTHER", "contrast_agent", "post-contrast T1"),
    ({"SeriesDescription": "sag t1", "ImageType": ["DERIVED", "PRIMARY", "DIXON", "WATER"]},
     "DIXON", "dixon_image_type", "Dixon water"),
    ({"ScanningSequence": ["SE", "IR"], "InversionTime": 160, "SeriesDescription": "SAG 3", "RepetitionTime": 4000,
      "EchoTime": 50}, "STIR", "stir_inversion", "STIR"),
    ({"ScanningSequence": ["SE", "IR"], "InversionTime": 860, "RepetitionTime": 2200, "EchoTime": 9,
      "SeriesDescription": "Sag FLAIR"}, "T1", "t1_inversion", "T1"),
    ({"ScanningSequence": "IR", "InversionTime": 2500, "RepetitionTime": 9000, "EchoTime": 100,
      "SeriesDescription": "sag 5"}, "OTHER", "flair_inversion", "flair"),
    ({"ScanningSequence": "GR", "RepetitionTime": 600, "EchoTime": 18, "SeriesDescription": "sag 6"},
     "OTHER", "gradient_echo", "gradient echo"),
    ({"SeriesDescription": "3-PL LOC"}, "OTHER", "localizer_name", "localizer"),
    ({"SeriesDescription": "SAG T1 +C", "RepetitionTime": 550, "EchoTime": 12}, "OTHER", "post_contrast_name",
     "post-contrast T1"),
    ({"SeriesDescription": "ep2d_diff_sag"}, "OTHER", "diffusion_name", "diffusion"),
    ({"SeriesDescription": "SAG T2 FLEX WATER", "RepetitionTime": 3500, "EchoTime": 90}, "DIXON", "dixon_name",
     "Dixon water"),
    ({"SeriesDescription": "sag t2 tirm", "RepetitionTime": 4000, "EchoTime": 60}, "STIR", "stir_name", "STIR"),
    ({"SeriesDescription": "SAG T2 FLAIR"}, "OTHER", "flair_name", "flair"),
    ({"SeriesDescription": "t2_me2d_sag"}, "OTHER", "gradient_echo_name", "gradient echo"),
    ({"SeriesDescription": "sag 4", "RepetitionTime": 3500, "EchoTime": 100}, "T2", "t2_timing", "T2"),
    ({"SeriesDescription": "sag 3", "RepetitionTime": 550, "EchoTime": 12}, "T1", "t1_timing", "T1"),
    ({"SeriesDescription": "sag 7", "RepetitionTime": 2500, "EchoTime": 25}, "OTHER", "pd_timing", "proton density"),
    ({"SeriesDescription": "SAG PD FSE"}, "OTHER", "pd_name", "proton density"),
    ({"SeriesDescription": "Sag T2 FSE"}, "T2", "t2_name", "T2"),
    ({"SeriesDescription": "SAG T1 TSE"}, "T1", "t1_name", "T1"),
]


@pytest.mark.parametrize("fields, seq, rule, label", RULE_ROWS, ids=[r[2] for r in RULE_ROWS])
def test_rule_table(fields, seq, rule, label):
    info = describe_sequence(header(**fields))
    assert (info.sequence, info.rule, info.label) == (seq, rule, label)


def test_every_rule_has_a_row_here_in_table_order():
    assert [r[2] for r in RULE_ROWS] == [r.name for r in RULES]


def test_non_mr_and_nothing_matched():
    assert classify_sequence(header(Modality="CT", SeriesDescription="T1")) == ("OTHER", "not_mr")
    assert classify_sequence(header(SeriesDescription="sag 9")) == ("OTHER", "no_rule")


# Vendor conventions: names alone (anonymised exports often strip TR/TE), and names with the physics tags.
VENDOR_ROWS = [
    # Siemens
    ({"SeriesDescription": "t2_tse_sag_384"}, "T2", ""),
    ({"SeriesDescription": "t1_tse_sag"}, "T1", ""),
    ({"SeriesDescription": "t2_tirm_sag"}, "STIR", ""),
    ({"SeriesDescription": "t2_tse_dixon_sag_W"}, "DIXON", "water"),
    ({"SeriesDescription": "t2_tse_dixon_sag_F"}, "DIXON", "fat"),
    ({"SeriesDescription": "t2_tse_dixon_sag_opp"}, "DIXON", "opp"),
    ({"SeriesDescription": "t2_tse_dixon_sag_in"}, "DIXON", "in"),
    ({"SeriesDescription": "t1_tse_fs_sag_post"}, "OTHER", "post_contrast"),
    ({"SeriesDescription": "t1_tse_fs_sag"}, "T1", ""),  # fat-saturated, not Dixon, not post-contrast
    ({"SeriesDescription": "t2_spc_sag_iso"}, "T2", ""),
    ({"SeriesDescription": "localizer"}, "OTHER", "localizer"),
    # GE
    ({"SeriesDescription": "SAG T2 FSE"}, "T2", ""),
    ({"SeriesDescription": "SAG T2 FRFSE"}, "T2", ""),
    ({"SeriesDescription": "Sag T1 FLAIR"}, "T1", ""),
    ({"SeriesDescription": "SAG STIR"}, "STIR", ""),
    ({"SeriesDescription": "SAG T2 IDEAL FAT"}, "DIXON", "fat"),
    ({"SeriesDescription": "SAG T1 FS POST GAD"}, "OTHER", "post_contrast"),
    ({"SeriesDescription": "SAG T2 FS"}, "T2", ""),
    # Philips
    ({"SeriesDescription": "T2W_TSE SAG"}, "T2", ""),
    ({"SeriesDescription": "T1W_TSE SAG"}, "T1", ""),
    ({"SeriesDescription": "STIR SAG"}, "STIR", ""),
    ({"SeriesDescription": "T2W_mDIXON SAG WATER"}, "DIXON", "water"),
    ({"SeriesDescription": "T2W_TSE_SPAIR SAG"}, "T2", ""),
    ({"SeriesDescription": "T1W_TSE SPIR SAG +C"}, "OTHER", "post_contrast"),
    ({"SeriesDescription": "Survey"}, "OTHER", "localizer"),
    ({"SeriesDescription": "T2W_mDIXON SAG", "ImageType": ["DERIVED", "PRIMARY", "DIXON", "OP"]}, "DIXON", "opp"),
    # Canon
    ({"SeriesDescription": "Sag T2 FSE"}, "T2", ""),
    ({"SeriesDescription": "T2WI_SAG"}, "T2", ""),
    ({"SeriesDescription": "T1WI SAG"}, "T1", ""),
    ({"SeriesDescription": "Sag STIR"}, "STIR", ""),
    ({"SeriesDescription": "Sag T2 FatSep W"}, "DIXON", "water"),
    # Hitachi / Fujifilm
    ({"SeriesDescription": "T2W_FSE_SAG"}, "T2", ""),
    ({"SeriesDescription": "T1W_SE_SAG"}, "T1", ""),
    ({"SeriesDescription": "STIR_SAG"}, "STIR", ""),
    # levels in a description are not weightings
    ({"SeriesDescription": "SAG T2 T10-L1"}, "T2", ""),
    ({"SeriesDescription": "sag t1 pre contrast", "ContrastBolusAgent": "Dotarem"}, "T1", ""),
]


@pytest.mark.parametrize("fields, seq, detail", VENDOR_ROWS, ids=[r[0]["SeriesDescription"] for r in VENDOR_ROWS])
def test_vendor_names(fields, seq, detail):
    info = describe_sequence(header(**fields))
    assert (info.sequence, info.detail) == (seq, detail), info


def test_physics_beat_a_misleading_name():
    # an exported STIR renamed "T2" by a technologist: TI 150 ms with inversion recovery still says STIR
    assert classify_sequence(header(SeriesDescription="SAG T2", ScanningSequence=["SE", "IR"], InversionTime=150,
                                    RepetitionTime=4000, EchoTime=60)) == ("STIR", "stir_inversion")
    # a T1 named "t2" by mistake: TR 500 / TE 10 is T1
    assert classify_sequence(header(SeriesDescription="sag t2 copy", RepetitionTime=500, EchoTime=10)) == (
        "T1", "t1_timing")


def test_routes_follow_the_paper():
    """STIR and Dixon through the T2 encoder; post-contrast and other series through the synthesizer."""
    assert ROUTES == {"T1": "t1", "T2": "t2", "STIR": "t2", "DIXON": "t2", "OTHER": "synthesizer"}
    assert route("STIR", "sagittal") == "t2" and route("OTHER", "sagittal") == "synthesizer"
    assert route("T2", "axial") is None


def test_plain_dicts_work_like_datasets():
    assert classify_sequence({"Modality": "MR", "SeriesDescription": "SAG T2"}) == ("T2", "t2_name")


@pytest.mark.parametrize("orientation, plane", [(SAG, "sagittal"), (AX, "axial"), (COR, "coronal"),
                                                ([0.7, 0.7, 0, 0, 0, -1], "oblique"), (None, "oblique"),
                                                ([1, 0], "oblique")])
def test_plane(orientation, plane):
    assert plane_from_orientation(orientation) == plane


def test_every_rule_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sequences.md").read_text()
    for rule in RULES:
        assert f"`{rule.name}`" in doc, f"rule {rule.name} missing from docs/sequences.md"
