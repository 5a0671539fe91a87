"""Phantom truth as a site's tables: reports.csv, labels.csv and findings.csv next to the DICOM folders.

So a phantom set can go the way a site's archive goes (``spinefm dataset build --dicom DIR
--reports reports.csv --labels-csv labels.csv --findings-csv findings.csv``) and be compared with
the in-memory phantom path (docs/training.md, "Measured equivalence"). Columns are those
``spinefm.dataset.tables`` reads.
"""

from __future__ import annotations

import csv
from pathlib import Path

from spinefm.conditions import CONDITION_KEYS

REPORT_COLUMNS = ("StudyInstanceUID", "AccessionNumber", "PatientID", "split", "report")
FINDING_COLUMNS = ("StudyInstanceUID", "condition", "level", "label", "severity", "side",
                   "SeriesInstanceUID", "SOPInstanceUID", "x0", "y0", "x1", "y1")


class TableWriter:
    """Appends one study at a time (so a large export never holds every study in memory)."""

    def __init__(self, out: str | Path):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self._files = [open(out / n, "w", newline="") for n in ("reports.csv", "labels.csv", "findings.csv")]
        self.reports, self.labels, self.findings = (csv.writer(f) for f in self._files)
        self.reports.writerow(REPORT_COLUMNS)
        self.labels.writerow(("StudyInstanceUID", *CONDITION_KEYS))
        self.findings.writerow(FINDING_COLUMNS)

    def add(self, study) -> None:
        t = study.truth
        report = t.get("report", {})
        text = report.get("text", "") if isinstance(report, dict) else str(report)
        uid = study.study_instance_uid
        self.reports.writerow((uid, study.accession, study.patient_id, t.get("split", study.split), text))
        self.labels.writerow((uid, *(t["labels"].get(k, "") for k in CONDITION_KEYS)))
        for f in t.get("findings", []):
            head = (uid, f["condition"], f.get("level", ""), f.get("label", 1), f.get("severity", ""), f.get("side", ""))
            boxes = f.get("boxes", [])
            keys = [k for k in f.get("key_slices", [])
                    if not any(b["sop_instance_uid"] == k["sop_instance_uid"] for b in boxes)]
            for b in boxes:
                self.findings.writerow((*head, b["series_instance_uid"], b["sop_instance_uid"], *b["box"]))
            for k in keys:
                self.findings.writerow((*head, k["series_instance_uid"], k["sop_instance_uid"], "", "", "", ""))
            if not boxes and not keys:
                self.findings.writerow((*head, "", "", "", "", "", ""))

    def close(self) -> None:
        for f in self._files:
            f.close()
