"""Bulk import of reports from CSV, JSON or JSON Lines, with per-row errors.

A site exports reports from its RIS in whatever shape it has; one bad row
(missing UID, empty text, a stray Latin-1 byte) must not sink the batch and
must be reported with its row number so the admin can fix the export.
Files are decoded as UTF-8 with surrogateescape, so undecodable bytes are
pinned to the row that holds them instead of failing the whole file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

UID_COLUMNS = ("study_instance_uid", "studyinstanceuid", "study_uid", "uid")
TEXT_COLUMNS = ("report", "report_text", "text", "report text")
ACCESSION_COLUMNS = ("accession", "accession_number", "accessionnumber")
DATE_COLUMNS = ("date", "study_date", "report_date", "studydate")
_UID = re.compile(r"^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*$")


@dataclass
class ReportRow:
    row: int  # 1-based data row (CSV: header is row 0) / list index + 1 for JSON
    study_instance_uid: str
    text: str
    accession: str | None = None
    date: str | None = None  # ISO YYYY-MM-DD


@dataclass
class RowError:
    row: int  # 0 = the file as a whole
    field: str | None
    message: str

    def __str__(self) -> str:
        where = "file" if self.row == 0 else f"row {self.row}"
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


@dataclass
class ImportResult:
    rows: list[ReportRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:  # rows, errors = read_reports(path)
        return iter((self.rows, self.errors))


def _pick(record: dict[str, Any], names: tuple[str, ...]) -> tuple[str | None, Any]:
    lower = {str(k).strip().lower(): k for k in record}
    for n in names:
        if n in lower:
            return lower[n], record[lower[n]]
    return None, None


def _bad_bytes(s: str) -> str | None:
    """Describe undecodable bytes smuggled in as surrogates, or None."""
    bad = [c for c in s if 0xDC80 <= ord(c) <= 0xDCFF]
    if not bad:
        return None
    pos = next(i for i, c in enumerate(s) if 0xDC80 <= ord(c) <= 0xDCFF)
    return f"not valid UTF-8 (byte 0x{ord(bad[0]) - 0xDC00:02x} at character {pos})"


def _parse_date(v: str) -> str:
    v = v.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(v, fmt).date().isoformat()
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(v).date().isoformat()
    except ValueError:
        raise ValueError(f"unrecognised date {v!r} (use YYYY-MM-DD or DICOM YYYYMMDD)") from None


def validate_record(record: Any, row: int, seen: set[str], strict_uid: bool = True) -> tuple[ReportRow | None, list[RowError]]:
    """One record (dict) to a ReportRow, or the errors that prevent it."""
    errors: list[RowError] = []
    if not isinstance(record, dict):
        return None, [RowError(row, None, f"expected an object, got {type(record).__name__}")]
    for k, v in record.items():
        if isinstance(v, str) and (msg := _bad_bytes(v)):
            errors.append(RowError(row, str(k), msg))
    if errors:
        return None, errors
    _, uid = _pick(record, UID_COLUMNS)
    _, text = _pick(record, TEXT_COLUMNS)
    _, acc = _pick(record, ACCESSION_COLUMNS)
    _, dt = _pick(record, DATE_COLUMNS)
    uid = "" if uid is None else str(uid).strip()
    if not uid:
        errors.append(RowError(row, "study_instance_uid", "missing"))
    elif strict_uid and (len(uid) > 64 or not _UID.match(uid)):
        errors.append(RowError(row, "study_instance_uid", f"{uid!r} is not a DICOM UID (digits and dots, at most 64)"))
    elif uid in seen:
        errors.append(RowError(row, "study_instance_uid", f"duplicate {uid}"))
    if text is None:
        errors.append(RowError(row, "text", "missing report text column"))
    elif not isinstance(text, str):
        errors.append(RowError(row, "text", f"report text must be a string, got {type(text).__name__}"))
    elif not text.strip():
        errors.append(RowError(row, "text", "empty report text"))
    iso = None
    if dt not in (None, ""):
        try:
            iso = _parse_date(str(dt)) if not isinstance(dt, date) else dt.isoformat()
        except ValueError as exc:
            errors.append(RowError(row, "date", str(exc)))
    if errors:
        return None, errors
    seen.add(uid)
    accession = None if acc in (None, "") else str(acc).strip()
    return ReportRow(row, uid, text, accession, iso), []


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="surrogateescape")


def parse_csv(data: bytes | str, strict_uid: bool = True) -> ImportResult:
    text = _decode(data) if isinstance(data, bytes) else data
    res = ImportResult()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        res.errors.append(RowError(0, None, "empty file or no header row"))
        return res
    cols = {c.strip().lower() for c in reader.fieldnames if c}
    if not cols & set(UID_COLUMNS):
        res.errors.append(RowError(0, None, f"no study_instance_uid column (have: {', '.join(sorted(cols))})"))
    if not cols & set(TEXT_COLUMNS):
        res.errors.append(RowError(0, None, f"no report text column, expected one of {', '.join(TEXT_COLUMNS)}"))
    if res.errors:
        return res
    seen: set[str] = set()
    try:
        for i, rec in enumerate(reader, start=1):
            if None in rec:
                res.errors.append(RowError(i, None, "more fields than header columns (unquoted comma?)"))
                continue
            row, errs = validate_record(rec, i, seen, strict_uid)
            res.errors.extend(errs)
            if row:
                res.rows.append(row)
    except csv.Error as exc:
        res.errors.append(RowError(reader.line_num, None, f"CSV syntax: {exc}"))
    return res


def parse_json(data: bytes | str, strict_uid: bool = True) -> ImportResult:
    """A JSON list of objects, {"reports": [...]}, or JSON Lines (one object per line)."""
    text = _decode(data) if isinstance(data, bytes) else data
    res = ImportResult()
    records: list[tuple[int, Any]] = []
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and isinstance(obj.get("reports"), list):
            obj = obj["reports"]
        if isinstance(obj, dict):
            obj = [obj]
        if not isinstance(obj, list):
            res.errors.append(RowError(0, None, "expected a list of report objects"))
            return res
        records = list(enumerate(obj, start=1))
    except json.JSONDecodeError as whole:
        lines = [ln for ln in text.splitlines()]
        if sum(1 for ln in lines if ln.strip()) <= 1:
            res.errors.append(RowError(0, None, f"not JSON: {whole.msg} at line {whole.lineno} column {whole.colno}"))
            return res
        for i, ln in enumerate(lines, start=1):  # JSON Lines: row = line number
            if not ln.strip():
                continue
            try:
                records.append((i, json.loads(ln)))
            except json.JSONDecodeError as exc:
                res.errors.append(RowError(i, None, f"not JSON: {exc.msg} at column {exc.colno}"))
    seen: set[str] = set()
    for i, rec in records:
        row, errs = validate_record(rec, i, seen, strict_uid)
        res.errors.extend(errs)
        if row:
            res.rows.append(row)
    return res


def read_reports(path: str | Path, strict_uid: bool = True) -> ImportResult:
    """Read reports from a .csv, .json or .jsonl file; returns rows and per-row errors."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        return ImportResult([], [RowError(0, None, f"cannot read {p}: {exc.strerror}")])
    suffix = p.suffix.lower()
    if suffix in (".json", ".jsonl", ".ndjson"):
        return parse_json(data, strict_uid)
    if suffix in (".csv", ".txt"):
        return parse_csv(data, strict_uid)
    stripped = data.lstrip()
    return parse_json(data, strict_uid) if stripped[:1] in (b"[", b"{") else parse_csv(data, strict_uid)
