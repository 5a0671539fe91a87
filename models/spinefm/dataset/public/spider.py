"""SPIDER (van der Graaf et al., Sci Data 2024; Zenodo 10159290) as a dataset source.

Layout read (as released)::

    DIR/images/<patient>_t1.mha, <patient>_t2.mha, <patient>_t2_SPACE.mha   sagittal series
    DIR/masks/<patient>_<sequence>.mha      same grid: 1-25 vertebrae, 100 canal, 201-225 discs
    DIR/overview.csv                        per series (new_file_name = file stem): acquisition tags
    DIR/radiological_gradings.csv           per disc: Patient, IVD label, Modic, UP endplate,
                                            LOW endplate, Spondylolisthesis, Disc herniation,
                                            Disc narrowing, Disc bulging, Pfirrman grade

One study per patient (SPIDER has one study per patient). Each .mha becomes a series of
pydicom MR slices (spinefm.dataset.public.mr) so the study is typed and preprocessed as a
DICOM study is. Discs are numbered from the bottom (IVD label 1 = mask label 201 = the lowest
disc): level = counted up from L5-S1 (1 = L5-S1 ... 5 = L1-L2, 6 = T12-L1 ...). SPIDER does not
name levels, so with a transitional vertebra the named level is off by one; the count is
what the mapping assumes (docs/training.md, "Public data sets"). Gradings become study labels
(:data:`GRADINGS`) and per-disc findings whose boxes are the disc's outline in the mask.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from ...conditions import LabelValue
from .. import DatasetError
from ..sources import StudySource
from . import metaimage
from .mr import axis_warning, sagittal_stack, slice_datasets

log = logging.getLogger(__name__)

KIND = "spider"
SEQUENCES = {"t1": ("SAG T1", 1), "t2": ("SAG T2", 2), "t2_SPACE": ("SAG T2 SPACE", 3)}
STEM = re.compile(r"^(?P<patient>\d+)_(?P<sequence>.+)$")
IVD_MASK_OFFSET = 200
# IVD label (counted from the bottom) -> our disc level, assuming five lumbar vertebrae above S1
IVD_LEVELS = {1: "L5-S1", 2: "L4-L5", 3: "L3-L4", 4: "L2-L3", 5: "L1-L2", 6: "T12-L1", 7: "T11-T12",
              8: "T10-T11", 9: "T9-T10"}

# The mapping, as data: (SPIDER column, its values, our condition, rule). A condition is present in
# the study when any graded disc is positive, absent when every graded disc is negative; a column
# with condition None is not mapped (no condition of ours means it).
GRADINGS = (
    ("Disc herniation", (0, 1), "herniation", "1 -> present at that disc; all 0 -> absent"),
    ("Spondylolisthesis", (0, 1), "spondylolisthesis", "1 -> present at that disc; all 0 -> absent"),
    ("Disc narrowing", (0, 1), "disc_height", "1 -> present at that disc; all 0 -> absent"),
    ("Modic", (0, 1, 2, 3), "edema", "type I (marrow oedema) -> present, no level (which endplate is not "
                                     "graded); no type I -> not labelled (Modic grading does not rule out "
                                     "oedema away from the endplates)"),
    ("UP endplate", (0, 1), None, "endplate change / Schmorl node: no condition of ours"),
    ("LOW endplate", (0, 1), None, "endplate change / Schmorl node: no condition of ours"),
    ("Disc bulging", (0, 1), None, "a bulge is not a herniation: not mapped"),
    ("Pfirrman grade", (1, 2, 3, 4, 5), None, "disc degeneration: no condition of ours (disc height loss "
                                              "comes from 'Disc narrowing')"),
)
MAPPED = {col: cond for col, _, cond, _ in GRADINGS if cond}
# overview.csv columns copied onto the slices (they are DICOM keywords there) and their VR kind
OVERVIEW_TAGS = {"Manufacturer": "str", "ManufacturerModelName": "str", "MagneticFieldStrength": "ds",
                 "RepetitionTime": "ds", "EchoTime": "ds", "InversionTime": "ds", "ScanningSequence": "cs",
                 "SequenceVariant": "cs", "ScanOptions": "cs", "MRAcquisitionType": "str", "ImageComments": "str",
                 "PatientSex": "str"}
BOX_MARGIN = 0.15          # a disc's box: its outline on the slice, grown by this fraction each side
KEY_SLICE_SHARE = 0.5      # key slices: those where the disc covers at least this share of its largest area


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _csv(path: Path) -> list[dict]:
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def _int(value: str) -> int | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f == int(f) else None


def read_gradings(path: Path) -> tuple[dict[str, dict[int, dict]], list[str]]:
    """{patient: {ivd label: {column: value}}} and the problems met (row numbers; a bad cell is dropped)."""
    problems = []
    rows = _csv(path)
    if not rows:
        return {}, [f"{path}: no rows"]
    columns = {_norm(c): c for c in rows[0]}
    need = {"patient", "ivdlabel"}
    if not need <= set(columns):
        return {}, [f"{path}: columns {', '.join(sorted(rows[0]))} lack Patient and IVD label"]
    graded = [(col, values) for col, values, _, _ in GRADINGS if _norm(col) in columns]
    missing = [col for col, _, cond, _ in GRADINGS if cond and _norm(col) not in columns]
    if missing:
        problems.append(f"{path}: no column {', '.join(missing)}; those conditions stay unlabelled")
    out: dict[str, dict[int, dict]] = defaultdict(dict)
    for i, row in enumerate(rows, start=2):  # row 1 is the header
        patient = _int(row.get(columns["patient"], ""))
        ivd = _int(row.get(columns["ivdlabel"], ""))
        where = f"{path} row {i}"
        if patient is None:
            problems.append(f"{where}: Patient {row.get(columns['patient'])!r} is not a number")
            continue
        if ivd not in IVD_LEVELS:
            problems.append(f"{where}: IVD label {row.get(columns['ivdlabel'])!r} is not 1-{max(IVD_LEVELS)}; row skipped")
            continue
        cells = {}
        for col, values in graded:
            raw = row.get(columns[_norm(col)], "")
            v = _int(raw)
            if raw == "":
                continue
            if v not in values:
                problems.append(f"{where}: {col} {raw!r} is not one of {', '.join(map(str, values))}; cell dropped")
                continue
            cells[col] = v
        if ivd in out[str(patient)]:
            problems.append(f"{where}: patient {patient} IVD {ivd} graded twice; the first row is kept")
            continue
        out[str(patient)][ivd] = cells
    return dict(out), problems


def study_labels(discs: dict[int, dict]) -> dict[str, int]:
    """Study labels from a patient's graded discs (see GRADINGS)."""
    labels = {}
    for col, cond in MAPPED.items():
        values = [cells[col] for cells in discs.values() if col in cells]
        if not values:
            continue
        if col == "Modic":
            if any(v == 1 for v in values):
                labels[cond] = LabelValue.PRESENT
            continue
        labels[cond] = LabelValue.PRESENT if any(v == 1 for v in values) else LabelValue.ABSENT
    return labels


def disc_boxes(mask_slices: np.ndarray, ivd: int) -> list[tuple[int, list[float]]]:
    """[(slice index, [x0, y0, x1, y1])] of one disc in a mask stack [slice, row, col]."""
    hit = mask_slices == IVD_MASK_OFFSET + ivd
    area = hit.sum(axis=(1, 2))
    if not area.any():
        return []
    out = []
    rows, cols = mask_slices.shape[1:]
    for k in np.nonzero(area >= KEY_SLICE_SHARE * area.max())[0]:
        ys, xs = np.nonzero(hit[k])
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        mx, my = BOX_MARGIN * (x1 - x0), BOX_MARGIN * (y1 - y0)
        out.append((int(k), [float(max(0, x0 - mx)), float(max(0, y0 - my)),
                             float(min(cols, x1 + mx)), float(min(rows, y1 + my))]))
    return out


def _uid(*parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["spinefm-spider", *map(str, parts)])


def _overview_tags(row: dict | None) -> dict:
    out = {}
    for keyword, kind in OVERVIEW_TAGS.items():
        raw = (row or {}).get(keyword, "")
        if raw in ("", "nan", "None"):
            continue
        if kind == "ds":
            try:
                out[keyword] = f"{float(raw):g}"
            except ValueError:
                continue
        elif kind == "cs":
            parts = [p.strip(" '\"") for p in re.split(r"[\\,]", raw.strip("[]()")) if p.strip(" '\"")]
            if parts:
                out[keyword] = parts if len(parts) > 1 else parts[0]
        else:
            out[keyword] = raw[:64]
    return out


def _findings(discs: dict[int, dict], series: list[tuple[str, list[str], np.ndarray | None]]) -> list[dict]:
    """Per positive graded disc and mapped column: a finding at the disc's level, boxed on each series' mask."""
    out = []
    for ivd, cells in sorted(discs.items()):
        for col, cond in MAPPED.items():
            v = cells.get(col)
            if v != 1:  # a positive binary grading, or Modic type I
                continue
            f = {"condition": cond, "level": "" if col == "Modic" else IVD_LEVELS[ivd], "label": LabelValue.PRESENT,
                 "severity": "", "side": "", "detail": {"source": f"SPIDER {col} = {v} at IVD {ivd}"},
                 "key_slices": [], "boxes": []}
            for series_uid, sops, mask in series:
                if mask is None:
                    continue
                for k, box in disc_boxes(mask, ivd):
                    if col == "Modic":  # the endplates above and below: grow the box by a disc height each way
                        h = box[3] - box[1]
                        box = [box[0], max(0.0, box[1] - h), box[2], min(float(mask.shape[1]), box[3] + h)]
                    ref = {"series_instance_uid": series_uid, "sop_instance_uid": sops[k]}
                    f["key_slices"].append(ref)
                    f["boxes"].append({**ref, "box": [round(b, 2) for b in box]})
            out.append(f)
    return out


def spider_studies(root: str | Path, sequences=tuple(SEQUENCES)) -> tuple[list[StudySource], list[dict], dict]:
    """SPIDER patients as studies; (studies, notes for the error report, source record)."""
    root = Path(root)
    label = f"{KIND}:{root}"
    images = root / "images"
    if not images.is_dir():
        raise DatasetError(f"{root}: no images/ folder (expected SPIDER's images/<patient>_<sequence>.mha)")
    notes: list[dict] = []
    gradings_path = root / "radiological_gradings.csv"
    gradings: dict[str, dict[int, dict]] = {}
    if gradings_path.is_file():
        gradings, problems = read_gradings(gradings_path)
        notes += [{"key": "", "source": label, "warning": p} for p in problems]
    else:
        notes.append({"key": "", "source": label, "warning": f"{gradings_path} is missing: studies have no labels"})
    overview = {}
    if (root / "overview.csv").is_file():
        overview = {r.get("new_file_name", ""): r for r in _csv(root / "overview.csv")}
    by_patient: dict[str, dict[str, Path]] = defaultdict(dict)
    for path in sorted(images.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in (".mha", ".mhd"):
            continue
        m = STEM.match(path.stem)
        if not m or m["sequence"] not in SEQUENCES:
            notes.append({"key": str(path), "source": label,
                          "error": f"file name is not <patient>_<{'|'.join(SEQUENCES)}>.mha; skipped"})
            continue
        if m["sequence"] in sequences:
            by_patient[str(int(m["patient"]))][m["sequence"]] = path
    for patient in sorted(set(gradings) - set(by_patient), key=int):
        notes.append({"key": f"spider-{patient}", "source": label,
                      "warning": f"gradings of patient {patient} match no image in {images}"})

    def loader(patient: str, files: dict[str, Path]):
        def load():
            study_uid = _uid(patient)
            datasets, series, warnings = [], [], []
            for seq in sorted(files, key=lambda s: SEQUENCES[s][1]):
                path = files[seq]
                try:
                    stack = sagittal_stack(metaimage.read(path))
                except (metaimage.MetaImageError, ValueError, OSError) as exc:
                    warnings.append(f"{path.name}: not read ({exc})")
                    continue
                if axis_warning(stack):
                    warnings.append(f"{path.name}: {axis_warning(stack)}")
                series_uid = _uid(patient, seq)
                sops = [_uid(patient, seq, k) for k in range(stack.pixels.shape[0])]
                description, number = SEQUENCES[seq]
                datasets += slice_datasets(stack, study_uid=study_uid, series_uid=series_uid, sop_uids=sops,
                                           series_number=number, series_description=description,
                                           patient_id=f"SPIDER-{patient}", study_description="SPIDER lumbar spine MRI",
                                           extra=_overview_tags(overview.get(path.stem)))
                mask_path = root / "masks" / path.name
                mask = None
                if mask_path.is_file():
                    try:
                        mstack = sagittal_stack(metaimage.read(mask_path))
                        if mstack.pixels.shape == stack.pixels.shape:
                            mask = mstack.pixels
                        else:
                            warnings.append(f"mask {mask_path.name} is {mstack.pixels.shape}, image "
                                            f"{stack.pixels.shape}: no boxes from it")
                    except (metaimage.MetaImageError, ValueError, OSError) as exc:
                        warnings.append(f"mask {mask_path.name}: not read ({exc}); findings of this series have no box")
                else:
                    warnings.append(f"no mask {mask_path.name}: findings of this series have no box")
                series.append((series_uid, sops, mask))
            if not datasets:
                raise RuntimeError("no readable series: " + "; ".join(warnings))
            discs = gradings.get(patient, {})
            if not discs:
                warnings.append(f"patient {patient} has no row in radiological_gradings.csv")
            truth = {"labels": study_labels(discs), "findings": _findings(discs, series),
                     "labels_from": "SPIDER radiological_gradings.csv" if discs else "",
                     "warnings": warnings}
            return datasets, truth
        return load

    studies = [StudySource(f"spider-{p}", label, "", loader(p, files), "", f"spider-{p}", f"spider-{p}")
               for p, files in sorted(by_patient.items(), key=lambda kv: int(kv[0]))]
    record = {"kind": KIND, "path": str(root.resolve()), "studies": len(studies),
              "series": sum(len(f) for f in by_patient.values()), "sequences": list(sequences),
              "gradings": str(gradings_path.resolve()) if gradings_path.is_file() else None,
              "overview": bool(overview), "mapping": "spinefm.dataset.public.spider.GRADINGS"}
    return studies, notes, record
