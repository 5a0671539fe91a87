"""The RSNA 2024 Lumbar Spine Degenerative Classification layout (Kaggle) as a dataset source.

Layout read (as released)::

    DIR/train.csv                        study_id + 25 columns <condition>_<level>
                                         (spinal_canal_stenosis_l1_l2 ... right_subarticular_stenosis_l5_s1)
                                         with Normal/Mild, Moderate, Severe or blank
    DIR/train_label_coordinates.csv      study_id, series_id, instance_number, condition, level, x, y
                                         (condition "Spinal Canal Stenosis", level "L1/L2"; x, y in pixels)
    DIR/train_series_descriptions.csv    study_id, series_id, series_description
                                         ("Sagittal T1", "Sagittal T2/STIR", "Axial T2")
    DIR/train_images/<study_id>/<series_id>/<instance_number>.dcm

The DICOMs' own SeriesDescription is usually blank, so the CSV's description is written into
each dataset before anything types the series (spinefm.sequences reads it like a scanner's).
Labels per study come from train.csv by :data:`CONDITIONS` and :data:`PRESENT_GRADES`;
each graded-present level becomes a finding, boxed where train_label_coordinates.csv puts a
point (a square of :data:`BOX_MM` around it on that instance).
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from pathlib import Path

from ...conditions import LabelValue
from .. import DatasetError
from ..sources import StudySource

log = logging.getLogger(__name__)

KIND = "rsna-2024"
# RSNA condition (train.csv column prefix; the coordinates file's name in lower case with '_') -> (ours, side)
CONDITIONS = {
    "spinal_canal_stenosis": ("canal", ""),
    "left_neural_foraminal_narrowing": ("neuroforaminal", "left"),
    "right_neural_foraminal_narrowing": ("neuroforaminal", "right"),
    "left_subarticular_stenosis": ("subarticular", "left"),
    "right_subarticular_stenosis": ("subarticular", "right"),
}
LEVELS = {"l1_l2": "L1-L2", "l2_l3": "L2-L3", "l3_l4": "L3-L4", "l4_l5": "L4-L5", "l5_s1": "L5-S1"}
GRADES = {"normal/mild": "normal/mild", "moderate": "moderate", "severe": "severe"}
# The threshold: a level graded Moderate or Severe is the condition present there; Normal/Mild is absent.
PRESENT_GRADES = ("moderate", "severe")
BOX_MM = 15.0        # side of the square around a coordinate point (about one disc level)
BOX_PIXELS = 24.0    # ... when the instance has no PixelSpacing


def _norm(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(name).strip().lower()).strip("_")


def _csv(path: Path) -> list[dict]:
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def _id(value: str) -> str | None:
    """study_id / series_id as written in folder names ('4003253'; '4003253.0' read back from a float)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return str(int(f)) if f == int(f) and f >= 0 else None


def read_grades(path: Path) -> tuple[dict[str, dict[tuple[str, str], str]], list[str]]:
    """{study_id: {(rsna condition, level key): grade}} from train.csv, and its problems."""
    problems, out = [], {}
    rows = _csv(path)
    columns = list(rows[0]) if rows else []
    known = {f"{c}_{lv}": (c, lv) for c in CONDITIONS for lv in LEVELS}
    unknown = [c for c in columns if c != "study_id" and c not in known]
    if "study_id" not in columns:
        return {}, [f"{path}: no study_id column"]
    if unknown:
        problems.append(f"{path}: columns {', '.join(unknown)} are not RSNA condition-level columns; ignored")
    absent = [c for c in known if c not in columns]
    if absent:
        problems.append(f"{path}: no column {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}; "
                        "those levels stay ungraded")
    for i, row in enumerate(rows, start=2):
        study = _id(row.get("study_id", ""))
        if study is None:
            problems.append(f"{path} row {i}: study_id {row.get('study_id')!r} is not a number; row skipped")
            continue
        grades = {}
        for col, key in known.items():
            raw = row.get(col, "")
            if raw == "":
                continue
            grade = GRADES.get(raw.lower())
            if grade is None:
                problems.append(f"{path} row {i}: {col} {raw!r} is not Normal/Mild, Moderate or Severe; "
                                "that level stays ungraded")
                continue
            grades[key] = grade
        if study in out:
            problems.append(f"{path} row {i}: study {study} appears twice; the first row is kept")
            continue
        out[study] = grades
    return out, problems


def read_coordinates(path: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """{study_id: [{condition, level, series_id, instance_number, x, y}]} and the problems."""
    problems, out = [], defaultdict(list)
    for i, row in enumerate(_csv(path), start=2):
        where = f"{path} row {i}"
        study, series, inst = _id(row.get("study_id", "")), _id(row.get("series_id", "")), _id(row.get("instance_number", ""))
        cond, level = _norm(row.get("condition", "")), _norm(row.get("level", ""))
        if None in (study, series, inst):
            problems.append(f"{where}: study_id, series_id, instance_number must be numbers; row skipped")
            continue
        if cond not in CONDITIONS:
            problems.append(f"{where}: condition {row.get('condition')!r} is not an RSNA condition; row skipped")
            continue
        if level not in LEVELS:
            problems.append(f"{where}: level {row.get('level')!r} is not L1/L2 ... L5/S1; row skipped")
            continue
        try:
            x, y = float(row.get("x", "")), float(row.get("y", ""))
        except ValueError:
            problems.append(f"{where}: x, y {row.get('x')!r}, {row.get('y')!r} are not numbers; row skipped")
            continue
        out[study].append({"condition": cond, "level": level, "series_id": series, "instance_number": int(inst),
                           "x": x, "y": y})
    return dict(out), problems


def study_labels(grades: dict[tuple[str, str], str]) -> dict[str, int]:
    """Our labels from one study's grades: present if any of the condition's levels (either side) is
    Moderate/Severe; absent if every one of them is graded and none is; else not labelled."""
    labels = {}
    for ours in sorted({c for c, _ in CONDITIONS.values()}):
        keys = [(rc, lv) for rc, (c, _) in CONDITIONS.items() if c == ours for lv in LEVELS]
        graded = [grades[k] for k in keys if k in grades]
        if any(g in PRESENT_GRADES for g in graded):
            labels[ours] = LabelValue.PRESENT
        elif len(graded) == len(keys):
            labels[ours] = LabelValue.ABSENT
    return labels


def _box(x: float, y: float, ds) -> list[float]:
    spacing = ds.get("PixelSpacing") if ds is not None else None
    try:
        row_mm, col_mm = float(spacing[0]), float(spacing[1])
        hx, hy = BOX_MM / 2 / col_mm, BOX_MM / 2 / row_mm
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        hx = hy = BOX_PIXELS / 2
    cols = int(ds.get("Columns", 0) or 0) if ds is not None else 0
    rows = int(ds.get("Rows", 0) or 0) if ds is not None else 0
    box = [x - hx, y - hy, x + hx, y + hy]
    if cols and rows:
        box = [max(0.0, box[0]), max(0.0, box[1]), min(float(cols), box[2]), min(float(rows), box[3])]
    return [round(v, 2) for v in box]


def findings(grades: dict, points: list[dict], instances: dict[tuple[str, int], object]) -> tuple[list[dict], list[str]]:
    """One finding per (condition, level, side) graded Moderate/Severe, with the coordinate points' boxes.
    ``instances``: {(series_id, instance_number): dataset}. Returns findings and warnings."""
    warnings, out = [], []
    for (rc, lv), grade in sorted(grades.items()):
        if grade not in PRESENT_GRADES:
            continue
        ours, side = CONDITIONS[rc]
        f = {"condition": ours, "level": LEVELS[lv], "label": LabelValue.PRESENT, "severity": grade, "side": side,
             "detail": {"source": f"RSNA {rc}_{lv} = {grade}"}, "key_slices": [], "boxes": []}
        for p in points:
            if p["condition"] != rc or p["level"] != lv:
                continue
            ds = instances.get((p["series_id"], p["instance_number"]))
            if ds is None:
                warnings.append(f"coordinates of {rc} {lv} point at series {p['series_id']} instance "
                                f"{p['instance_number']}, which is not on disk")
                continue
            ref = {"series_instance_uid": str(ds.SeriesInstanceUID), "sop_instance_uid": str(ds.SOPInstanceUID)}
            if ref not in f["key_slices"]:
                f["key_slices"].append(ref)
            f["boxes"].append({**ref, "box": _box(p["x"], p["y"], ds)})
        out.append(f)
    return out, warnings


def _uid(*parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["spinefm-rsna", *map(str, parts)])


def load_study(folder: Path, study: str, descriptions: dict[tuple[str, str], str]) -> tuple[list, dict, list[str]]:
    """A study folder's datasets with SeriesDescription from the CSV (the folder names are the truth
    for study and series; a missing UID is made from them), {(series_id, instance_number): dataset}, warnings."""
    import pydicom

    datasets, instances, warnings = [], {}, []
    study_uid = ""
    for series_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        series = _id(series_dir.name)
        desc = descriptions.get((study, series or series_dir.name), "")
        if not desc:
            warnings.append(f"series {series_dir.name} has no row in the series descriptions; typed from its headers")
        seen_uid = ""
        for path in sorted(series_dir.iterdir(), key=lambda p: (len(p.stem), p.stem)):
            if path.name.startswith("."):
                continue
            try:
                ds = pydicom.dcmread(path)
            except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError) as exc:
                warnings.append(f"{series_dir.name}/{path.name}: unreadable ({type(exc).__name__}: {exc}); skipped")
                continue
            study_uid = study_uid or str(ds.get("StudyInstanceUID", "") or "") or _uid(study)
            ds.StudyInstanceUID = study_uid  # the folder is the study
            seen_uid = seen_uid or str(ds.get("SeriesInstanceUID", "") or "") or _uid(study, series_dir.name)
            ds.SeriesInstanceUID = seen_uid  # the folder is the series
            if not str(ds.get("SOPInstanceUID", "") or ""):
                ds.SOPInstanceUID = _uid(study, series_dir.name, path.stem)
            if ds.get("InstanceNumber") in (None, "") and _id(path.stem) is not None:
                ds.InstanceNumber = int(_id(path.stem))
            if desc:
                ds.SeriesDescription = desc
            number = _id(str(ds.get("InstanceNumber", "") or "")) or _id(path.stem)
            instances[(series or series_dir.name, int(number) if number is not None else path.stem)] = ds
            datasets.append(ds)
    return datasets, instances, warnings


def rsna_studies(root: str | Path, prefix: str = "train") -> tuple[list[StudySource], list[dict], dict]:
    """RSNA 2024 studies as sources; (studies, notes for the error report, source record)."""
    root = Path(root)
    label = f"{KIND}:{root}"
    images = root / f"{prefix}_images"
    if not images.is_dir():
        raise DatasetError(f"{root}: no {prefix}_images/ folder (expected the RSNA 2024 layout "
                                f"{prefix}_images/<study_id>/<series_id>/<instance_number>.dcm)")
    notes: list[dict] = []

    def note(problems, kind="warning"):
        notes.extend({"key": "", "source": label, kind: p} for p in problems)

    grades: dict = {}
    labels_path = root / f"{prefix}.csv"
    if labels_path.is_file():
        grades, problems = read_grades(labels_path)
        note(problems)
    else:
        note([f"{labels_path} is missing: studies have no labels"])
    points: dict = {}
    coords_path = root / f"{prefix}_label_coordinates.csv"
    if coords_path.is_file():
        points, problems = read_coordinates(coords_path)
        note(problems)
    else:
        note([f"{coords_path} is missing: findings have levels but no boxes"])
    descriptions = {}
    desc_path = root / f"{prefix}_series_descriptions.csv"
    if desc_path.is_file():
        for i, row in enumerate(_csv(desc_path), start=2):
            study, series = _id(row.get("study_id", "")), _id(row.get("series_id", ""))
            if study is None or series is None or not row.get("series_description"):
                note([f"{desc_path} row {i}: needs study_id, series_id and series_description; row skipped"])
                continue
            descriptions[(study, series)] = row["series_description"]
    else:
        note([f"{desc_path} is missing: series are typed from their own headers (usually blank in this set)"])

    folders = {}
    for p in sorted(images.iterdir()):
        if not p.is_dir():
            continue
        study = _id(p.name)
        if study is None:
            notes.append({"key": str(p), "source": label, "error": "folder name is not a study_id; skipped"})
            continue
        folders[study] = p
    for study in sorted(set(grades) - set(folders), key=int):
        notes.append({"key": f"rsna-{study}", "source": label,
                      "warning": f"{labels_path.name} grades study {study}, which has no folder in {images}"})

    def loader(study: str, folder: Path):
        def load():
            datasets, instances, warnings = load_study(folder, study, descriptions)
            g = grades.get(study, {})
            if study not in grades:
                warnings.append(f"study {study} has no row in {labels_path.name}")
            found, more = findings(g, points.get(study, []), instances)
            truth = {"labels": study_labels(g), "findings": found, "warnings": warnings + more,
                     "labels_from": f"RSNA 2024 {labels_path.name}" if g else ""}
            return datasets, truth
        return load

    # RSNA publishes no patient identifier beyond study_id: each study is its own patient for the split
    studies = [StudySource(f"rsna-{s}", label, "", loader(s, f), "", f"rsna-{s}", f"rsna-{s}")
               for s, f in sorted(folders.items(), key=lambda kv: int(kv[0]))]
    record = {"kind": KIND, "path": str(root.resolve()), "studies": len(studies),
              "labels": str(labels_path.resolve()) if labels_path.is_file() else None,
              "coordinates": str(coords_path.resolve()) if coords_path.is_file() else None,
              "series_descriptions": str(desc_path.resolve()) if desc_path.is_file() else None,
              "mapping": "spinefm.dataset.public.rsna.CONDITIONS / PRESENT_GRADES"}
    return studies, notes, record
