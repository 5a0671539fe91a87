"""Uploaded CSV/JSON/JSONL report files -> rows for ``services.import_reports``.

Parsing and per-row validation are ``spine_labels.importing``'s (one set of
rules for the CLI and the web). That parser does not carry a patient id, which
patient-level dataset splits need, so this module reads the patient column of
the same records, numbered exactly as the parser numbers rows, and attaches it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from spine_labels.importing import ImportResult, ReportRow, _decode, _pick, parse_csv, parse_json

PATIENT_COLUMNS = ("patient_id", "patientid", "patient id", "mrn")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


@dataclass
class Row:
    row: int
    study_instance_uid: str
    text: str
    accession: str | None
    patient_id: str


def _is_json(data: bytes, filename: str) -> bool:
    name = filename.lower()
    if name.endswith(JSON_SUFFIXES):
        return True
    if name.endswith((".csv", ".txt")):
        return False
    return data.lstrip()[:1] in (b"[", b"{")


def _patient(record: Any) -> str:
    if not isinstance(record, dict):
        return ""
    _, value = _pick(record, PATIENT_COLUMNS)
    return "" if value is None else str(value).strip()[:64]


def _csv_patients(text: str) -> dict[int, str]:
    try:
        return {i: _patient(rec) for i, rec in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=1)}
    except csv.Error:
        return {}


def _json_patients(text: str) -> dict[int, str]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:  # JSON Lines: the parser numbers rows by line
        out = {}
        for i, line in enumerate(text.splitlines(), start=1):
            try:
                out[i] = _patient(json.loads(line)) if line.strip() else ""
            except json.JSONDecodeError:
                continue
        return out
    if isinstance(obj, dict) and isinstance(obj.get("reports"), list):
        obj = obj["reports"]
    if isinstance(obj, dict):
        obj = [obj]
    return {i: _patient(rec) for i, rec in enumerate(obj, start=1)} if isinstance(obj, list) else {}


def parse_upload(data: bytes, filename: str = "") -> tuple[list[Row], ImportResult]:
    """(rows with patient ids, the parser's result with its per-row errors)."""
    as_json = _is_json(data, filename)
    result = parse_json(data) if as_json else parse_csv(data)
    text = _decode(data)
    patients = _json_patients(text) if as_json else _csv_patients(text)
    rows = [Row(r.row, r.study_instance_uid, r.text, r.accession, patients.get(r.row, "")) for r in result.rows]
    return rows, result


def rows_from_records(records: list[Any]) -> tuple[list[Row], ImportResult]:
    """A JSON body's list of report objects, validated by the same parser."""
    return parse_upload(json.dumps(records).encode(), "body.json")


__all__ = ["Row", "parse_upload", "rows_from_records", "ReportRow", "PATIENT_COLUMNS"]
