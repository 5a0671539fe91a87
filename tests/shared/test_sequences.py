"""The sequence rule table and plane detection shared by backend and models."""

from pathlib import Path

import pytest
from pydicom import Dataset

from spinefm.sequences import RULES, classify_sequence, plane_from_orientation

SAG = [0, 1, 0, 0, 0, -1]
AX = [1, 0, 0, 0, 1, 0]
COR = [1, 0, 0, 0, 0, -1]


def header(**kw) -> Dataset:
    ds = Dataset()
    ds.Modality = kw.pop("Modality", "MR")
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


@pytest.mark.parametrize("fields, expected", [
    ({"SeriesDescription": "SAG T1 TSE"}, ("T1", "t1_name")),
    ({"SeriesDescription": "Sag T2 FSE"}, ("T2", "t2_name")),
    ({"SeriesDescription": "SAG STIR"}, ("STIR", "stir")),
    ({"SeriesDescription": "sag t2 tirm"}, ("STIR", "stir")),
    ({"ScanningSequence": ["SE", "IR"], "InversionTime": 160, "SeriesDescription": "SAG IR"}, ("STIR", "stir")),
    ({"SeriesDescription": "SAG T2 DIXON W"}, ("DIXON", "dixon")),
    ({"SeriesDescription": "sag t1", "ImageType": ["DERIVED", "PRIMARY", "WATER"]}, ("DIXON", "dixon")),
    ({"SeriesDescription": "SAG T1 POST", "ContrastBolusAgent": "Gadavist"}, ("OTHER", "post_contrast")),
    ({"SeriesDescription": "sag 3", "RepetitionTime": 550, "EchoTime": 12}, ("T1", "t1_timing")),
    ({"SeriesDescription": "sag 4", "RepetitionTime": 3500, "EchoTime": 100}, ("T2", "t2_timing")),
    ({"SeriesDescription": "localizer", "RepetitionTime": 1200, "EchoTime": 40}, ("OTHER", "no_rule")),
    ({"Modality": "CT", "SeriesDescription": "T1"}, ("OTHER", "not_mr")),
])
def test_rule_table(fields, expected):
    assert classify_sequence(header(**fields)) == expected


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
