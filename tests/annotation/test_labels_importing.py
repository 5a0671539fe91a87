"""Bulk import: CSV / JSON / JSONL with per-row errors."""

import json

from spine_labels import read_reports
from spine_labels.importing import parse_csv, parse_json

UID1, UID2, UID3 = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", "1.2.826.0.1.3680043.8.498.3"


def test_csv_good_rows_and_row_errors(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes(
        b"study_instance_uid,report,accession,date\n"
        + f'{UID1},"Mild canal stenosis at L4-L5.\nNo fracture.",A1,2024-03-01\n'.encode()
        + b',Some text,A2,2024-03-02\n'                         # row 2: missing UID
        + f"{UID2},   ,A3,20240303\n".encode()                  # row 3: empty text
        + f"{UID3},Caf\xe9 au lait stenosis,A4,\n".encode("latin-1")  # row 4: bad encoding
        + f"{UID1},duplicate,A5,\n".encode()                    # row 5: duplicate UID
        + b"not-a-uid,text,A6,\n"                               # row 6: not a DICOM UID
        + f"{UID2},ok,A7,March 3rd\n".encode()                  # row 7: bad date
    )
    rows, errors = read_reports(p)
    assert [r.study_instance_uid for r in rows] == [UID1]
    assert rows[0].text.startswith("Mild canal stenosis") and "\n" in rows[0].text
    assert rows[0].accession == "A1" and rows[0].date == "2024-03-01"
    got = {(e.row, e.field) for e in errors}
    assert got == {(2, "study_instance_uid"), (3, "text"), (4, "report"), (5, "study_instance_uid"),
                   (6, "study_instance_uid"), (7, "date")}
    msgs = {e.row: str(e) for e in errors}
    assert "missing" in msgs[2] and "empty report text" in msgs[3] and "not valid UTF-8 (byte 0xe9" in msgs[4]
    assert "duplicate" in msgs[5] and msgs[2].startswith("row 2:")


def test_csv_dicom_date_and_lenient_uid():
    res = parse_csv("StudyInstanceUID,report_text,date\nabc-123,Mild stenosis.,20240303\n", strict_uid=False)
    assert res.errors == [] and res.rows[0].date == "2024-03-03" and res.rows[0].study_instance_uid == "abc-123"


def test_csv_missing_columns_is_a_file_error():
    rows, errors = parse_csv("uid_x,body\n1,2\n")
    assert rows == [] and len(errors) == 2 and all(e.row == 0 for e in errors)
    assert parse_csv("").errors[0].message.startswith("empty file")


def test_json_list_and_wrapped(tmp_path):
    recs = [{"study_instance_uid": UID1, "text": "No stenosis.", "accession": 7},
            {"study_instance_uid": UID2, "text": ""},
            {"text": "orphan"},
            "not an object"]
    p = tmp_path / "r.json"
    p.write_text(json.dumps(recs))
    rows, errors = read_reports(p)
    assert [r.study_instance_uid for r in rows] == [UID1] and rows[0].accession == "7"
    assert [(e.row, e.field) for e in errors] == [(2, "text"), (3, "study_instance_uid"), (4, None)]
    rows2, _ = parse_json(json.dumps({"reports": recs[:1]}))
    assert len(rows2) == 1


def test_jsonl_bad_line_and_bad_bytes(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes(
        json.dumps({"study_instance_uid": UID1, "report": "ok"}).encode() + b"\n"
        + b'{"study_instance_uid": "' + UID2.encode() + b'", "report": "bad \xff byte"}\n'
        + b"{broken\n"
    )
    rows, errors = read_reports(p)
    assert len(rows) == 1
    assert sorted((e.row, e.field or "") for e in errors) == [(2, "report"), (3, "")]


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{oops")
    assert read_reports(p).errors[0].row == 0
    assert "cannot read" in read_reports(tmp_path / "nope.csv").errors[0].message
