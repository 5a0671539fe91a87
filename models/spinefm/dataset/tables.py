"""A site's tables, matched to studies: reports, labels and finding boxes, keyed by StudyInstanceUID or AccessionNumber.

Column names are matched case-insensitively with spaces and underscores ignored
(``StudyInstanceUID``, ``study_instance_uid``, ``Accession Number`` ...). One bad row is
recorded (with its row number) and skipped; it never sinks the table.

* reports (CSV, JSON list or JSON Lines): a key column, a text column (``report``,
  ``report_text``, ``text``), optionally ``split`` (train/val/test: a fixed split a site
  already has) and ``patient_id``.
* labels (CSV): a key column and one column per condition key (``spinefm.conditions``)
  with 1 (present), 0 (absent), -1 (uncertain) or blank (not labelled), e.g. verified annotations.
* findings (CSV): one row per box: key column, ``condition``, ``level`` (e.g. L4-L5),
  ``label`` (1 / -1, default 1), optional ``severity``, ``side``, and ``SeriesInstanceUID``,
  ``SOPInstanceUID``, ``x0, y0, x1, y1`` in pixels of that image (all blank: a finding
  with a level but no box).
* a platform export (export.json of a dataset version): per study ``labels`` and ``level_labels``
  {condition: {level: 1 | 0 | -1}}; each verified present spinal level becomes a finding without a box
  (:func:`verified_level_findings`), so the level agent can be retrained on it (``spinefm levels
  --level-fit prior``).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..conditions import CONDITION_KEYS
from ..heads.level import LEVELS

UID_KEYS = ("studyinstanceuid", "studyuid", "uid")
ACCESSION_KEYS = ("accessionnumber", "accession")
TEXT_KEYS = ("report", "reporttext", "text", "findings")
SPLIT_VALUES = ("train", "val", "test")


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


@dataclass
class Table:
    """Rows keyed by StudyInstanceUID and/or AccessionNumber, plus the problems met reading them."""

    path: str
    by_uid: dict[str, dict] = field(default_factory=dict)
    by_accession: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    used: set = field(default_factory=set)

    def match(self, study_uid: str, accession: str = "") -> dict | None:
        row = self.by_uid.get(study_uid) or (self.by_accession.get(accession) if accession else None)
        if row is not None:
            self.used.add(row["_row"])
        return row

    def unmatched(self) -> list[dict]:
        rows = {r["_row"]: r for r in [*self.by_uid.values(), *self.by_accession.values()]}
        return [r for n, r in sorted(rows.items()) if n not in self.used]


def _records(path: Path) -> list[dict]:
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    if path.suffix.lower() in (".json", ".jsonl"):
        stripped = text.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [json.loads(line) for line in stripped.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text)))


def _read(path: str | Path) -> Table:
    path = Path(path)
    table = Table(str(path))
    try:
        records = _records(path)
    except (OSError, ValueError, csv.Error) as exc:
        table.problems.append(f"{path}: unreadable ({exc})")
        return table
    for i, raw in enumerate(records, start=1):
        if not isinstance(raw, dict):
            table.problems.append(f"{path} row {i}: not a record")
            continue
        row = {_norm(k): ("" if v is None else str(v) if _norm(k) in TEXT_KEYS else str(v).strip())
               for k, v in raw.items() if k is not None}  # report text as written
        row["_row"] = i
        uid = next((row[k] for k in UID_KEYS if row.get(k)), "")
        acc = next((row[k] for k in ACCESSION_KEYS if row.get(k)), "")
        if not uid and not acc:
            table.problems.append(f"{path} row {i}: no StudyInstanceUID or AccessionNumber")
            continue
        row["_uid"], row["_accession"] = uid, acc
        if uid:
            table.by_uid.setdefault(uid, row)
        if acc:
            table.by_accession.setdefault(acc, row)
    return table


def read_reports(path: str | Path) -> Table:
    table = _read(path)
    for row in list(table.by_uid.values()) + list(table.by_accession.values()):
        row["_text"] = next((row[k] for k in TEXT_KEYS if row.get(k, "").strip()), "")
        split = row.get("split", "").lower()
        if split and split not in SPLIT_VALUES:
            table.problems.append(f"{path} row {row['_row']}: split {split!r} is not one of {', '.join(SPLIT_VALUES)}; "
                                  "the patient hash decides")
            split = ""
        row["_split"] = split
    return table


def read_labels(path: str | Path) -> Table:
    """Labels table; a column that is no condition key is a problem of the file (it is ignored)."""
    table = _read(path)
    known = {_norm(k): k for k in CONDITION_KEYS}
    columns = set()
    for row in list(table.by_uid.values()) + list(table.by_accession.values()):
        columns |= {k for k in row if not k.startswith("_")}
    ignored = columns - set(known) - set(UID_KEYS) - set(ACCESSION_KEYS) - {"patientid", "split", "source", "reader"}
    if ignored:
        table.problems.append(f"{path}: columns {', '.join(sorted(ignored))} are not conditions of the schema; ignored")
    return table


def labels_of(row: dict) -> tuple[dict[str, int], list[str]]:
    """{condition: 1/0/-1} of a labels-table row, and the values outside the schema (dropped)."""
    labels, bad = {}, []
    for key in CONDITION_KEYS:
        v = row.get(_norm(key), "")
        if v == "":
            continue
        try:
            n = int(float(v))
        except ValueError:
            n = None
        if n not in (-1, 0, 1) or float(v) != n:
            bad.append(f"{key}={v!r}")
            continue
        labels[key] = n
    return labels, bad


def read_findings(path: str | Path) -> tuple[dict[str, list[dict]], dict[str, list[dict]], list[str]]:
    """Findings grouped per study: ({uid: findings}, {accession: findings}, problems)."""
    path = Path(path)
    problems: list[str] = []
    try:
        records = _records(path)
    except (OSError, ValueError, csv.Error) as exc:
        return {}, {}, [f"{path}: unreadable ({exc})"]
    groups: dict[tuple, dict] = {}
    by_uid, by_acc = defaultdict(list), defaultdict(list)
    for i, raw in enumerate(records, start=1):
        row = {_norm(k): ("" if v is None else str(v).strip()) for k, v in raw.items() if k is not None}
        uid = next((row[k] for k in UID_KEYS if row.get(k)), "")
        acc = next((row[k] for k in ACCESSION_KEYS if row.get(k)), "")
        cond, level = row.get("condition", ""), row.get("level", "").upper()
        where = f"{path} row {i}"
        if not uid and not acc:
            problems.append(f"{where}: no StudyInstanceUID or AccessionNumber")
            continue
        if cond not in CONDITION_KEYS:
            problems.append(f"{where}: condition {cond!r} is not in the schema")
            continue
        if level and level not in LEVELS:
            problems.append(f"{where}: level {level!r} is not a level of the schema")
            continue
        try:
            label = int(row.get("label") or 1)
        except ValueError:
            label = None
        if label not in (1, -1):
            problems.append(f"{where}: label {row.get('label')!r} must be 1 (present) or -1 (uncertain)")
            continue
        key = (uid, acc, cond, level, label, row.get("severity", ""), row.get("side", ""))
        f = groups.get(key)
        if f is None:
            f = groups[key] = {"condition": cond, "level": level, "label": label, "severity": row.get("severity", ""),
                               "side": row.get("side", ""), "key_slices": [], "boxes": []}
            (by_uid[uid] if uid else by_acc[acc]).append(f)
        series, sop = row.get("seriesinstanceuid", ""), row.get("sopinstanceuid", "")
        coords = [row.get(k, "") for k in ("x0", "y0", "x1", "y1")]
        if series and sop:
            ref = {"series_instance_uid": series, "sop_instance_uid": sop}
            if ref not in f["key_slices"]:
                f["key_slices"].append(ref)
            if all(coords):
                try:
                    f["boxes"].append({**ref, "box": [float(c) for c in coords]})
                except ValueError:
                    problems.append(f"{where}: box {coords} is not numeric")
    return dict(by_uid), dict(by_acc), problems


def attach_slice_indices(findings: list[dict], series) -> list[dict]:
    """Fill ``slice_index`` of key slices and boxes from the preprocessed series' SOP order;
    references to images not in the kept series keep no index (they are still matched by SOP UID)."""
    pos = {s.series_instance_uid: {sop: i for i, sop in enumerate(s.sop_instance_uids)} for s in series}
    for f in findings:
        for ref in [*f.get("key_slices", []), *f.get("boxes", [])]:
            i = pos.get(ref.get("series_instance_uid"), {}).get(ref.get("sop_instance_uid"))
            if i is not None:
                ref["slice_index"] = i
    return findings


def verified_level_findings(level_labels: dict, known: list[dict]) -> list[dict]:
    """The platform's verified per-level labels as findings: one per (condition, spinal level) verified
    present, without a box (the segmentation agent places it when the level agent trains), unless ``known``
    (a findings table's) already has that condition at that level.

    Only present levels become findings: "study" and "multilevel" name no level, an uncertain level is no
    target, and a verified absent level needs no row of its own: the level head's softmax over the levels
    already counts every level other than the present one as a negative, which is the platform's rule too
    (a level an annotation does not list is absent there).
    """
    have = {(f.get("condition"), f.get("level")) for f in known if f.get("label", 1) == 1}
    out = []
    for cond, values in sorted((level_labels or {}).items()):
        if cond not in CONDITION_KEYS or not isinstance(values, dict):
            continue
        for level, value in values.items():
            if value == 1 and level in LEVELS and (cond, level) not in have:
                out.append({"condition": cond, "level": level, "label": 1, "severity": "", "side": "",
                            "key_slices": [], "boxes": []})
    return out
