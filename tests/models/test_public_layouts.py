"""Public layouts: RSNA 2024 lumbar spine and SPIDER written as released (tiny phantom-based fixtures),
built into datasets with their gradings mapped onto our conditions and levels (checked by hand),
bad rows and files listed while the build goes on, and a train + cross-cohort evaluation on them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

import spine_phantom
from spinefm.cli import main
from spinefm.dataset import Dataset
from spinefm.dataset.public import mapping_rows
from spinefm.dataset.public import metaimage
from spinefm.dataset.public.mr import axis_warning, sagittal_stack
from spinefm.sequences import AXIAL, SAGITTAL, STIR, T1, T2, classify_sequence, plane_from_orientation
from spinefm.study import slice_position

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"include_axial": True, "image_size": (64, 64)}
TINY = ["--img-size", "32", "--depth", "2", "--proj-dim", "16", "--max-slices", "3", "--batch-size", "4", "--no-progress"]
PHYSICS = ("RepetitionTime", "EchoTime", "InversionTime", "ScanningSequence", "SequenceVariant", "ScanOptions",
           "SequenceName", "ProtocolName", "SeriesDescription")
GRADE_COLUMNS = [f"{c}_{lv}" for c in ("spinal_canal_stenosis", "left_neural_foraminal_narrowing",
                                         "right_neural_foraminal_narrowing", "left_subarticular_stenosis",
                                         "right_subarticular_stenosis")
                 for lv in ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")]


def _phantom(index: int) -> dict[str, list]:
    """A phantom's series by kind ("T1", "T2", "STIR", "AX"), slices in position order."""
    study = spine_phantom.generate_study(3, index, config=spine_phantom.PhantomConfig(**CONFIG))
    out = {}
    for s in study.series:
        items = sorted(s.datasets(), key=slice_position)
        plane = plane_from_orientation(items[0].ImageOrientationPatient)
        kind = "AX" if plane == AXIAL else classify_sequence(items[0])[0]
        out.setdefault(kind, items)
    return out


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# ---------------------------------------------------------------- RSNA 2024 fixture

RSNA_DESCRIPTIONS = (("T1", "Sagittal T1"), ("T2", "Sagittal T2/STIR"), ("AX", "Axial T2"))


def write_rsna(root: Path, n: int = 4) -> dict:
    """train_images/<study>/<series>/<instance>.dcm with blank SeriesDescription and no timing tags (only
    the CSV says what a series is), train.csv, train_label_coordinates.csv, train_series_descriptions.csv."""
    facts = {}
    descs, grades, coords = [], [], []
    for i in range(n):
        study = 1000 + i
        series_ids, phantom = {}, _phantom(i)
        for k, (kind, desc) in enumerate(RSNA_DESCRIPTIONS):
            series = study * 10 + k + 1
            series_ids[kind] = series
            folder = root / "train_images" / str(study) / str(series)
            folder.mkdir(parents=True)
            for ds in phantom[kind]:
                for keyword in PHYSICS:
                    if keyword in ds:
                        delattr(ds, keyword)
                ds.save_as(folder / f"{int(ds.InstanceNumber)}.dcm", enforce_file_format=True)
            descs.append([study, series, desc])
        facts[study] = series_ids
        grades.append([study] + ["Normal/Mild"] * len(GRADE_COLUMNS))
    g = {r[0]: r for r in grades}
    col = {c: j + 1 for j, c in enumerate(GRADE_COLUMNS)}
    g[1000][col["spinal_canal_stenosis_l4_l5"]] = "Severe"
    g[1000][col["left_neural_foraminal_narrowing_l5_s1"]] = "Moderate"
    g[1000][col["right_subarticular_stenosis_l3_l4"]] = "Mild"          # not an RSNA grade: listed, ungraded
    g[1001][col["right_subarticular_stenosis_l3_l4"]] = ""              # ungraded
    g[1002][col["spinal_canal_stenosis_l2_l3"]] = "Moderate"
    grades.append([9999] + ["Normal/Mild"] * len(GRADE_COLUMNS))         # a row without images
    grades.append(["abc"] + ["Normal/Mild"] * len(GRADE_COLUMNS))        # a bad study_id
    _write_csv(root / "train.csv", ["study_id", *GRADE_COLUMNS], grades)
    coords += [[1000, facts[1000]["T2"], 5, "Spinal Canal Stenosis", "L4/L5", 30.5, 33.0],
               [1000, facts[1000]["T1"], 3, "Left Neural Foraminal Narrowing", "L5/S1", 28.0, 40.0],
               [1000, facts[1000]["T1"], 99, "Left Neural Foraminal Narrowing", "L5/S1", 28.0, 40.0],  # not on disk
               [1000, facts[1000]["T2"], 5, "Spinal Canal Stenosis", "L6/S1", 30.0, 30.0],             # bad level
               [1002, facts[1002]["T2"], 4, "Spinal Canal Stenosis", "L2/L3", "x", 20.0]]              # bad x
    _write_csv(root / "train_label_coordinates.csv",
               ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"], coords)
    _write_csv(root / "train_series_descriptions.csv", ["study_id", "series_id", "series_description"], descs)
    # one unreadable file in a series of study 1001 (the study still builds)
    (root / "train_images" / "1001" / str(facts[1001]["T1"]) / "999.dcm").write_bytes(b"not dicom")
    return facts


@pytest.fixture(scope="module")
def rsna(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsna") / "rsna-2024"
    facts = write_rsna(root)
    out = root.parent / "ds"
    assert main(["dataset", "build", "--out", str(out), "--rsna", str(root), "--img-size", "32", "--no-progress",
                 "--ratios", '{"train": 0.5, "val": 0.5, "test": 0.0}']) == 0
    return root, facts, out


def _records(out: Path) -> dict:
    ds = Dataset(out)
    return {e.case_id: (e, rec) for e, rec in zip(ds.entries, ds.cases())}


def test_rsna_labels_levels_and_boxes_follow_the_documented_mapping(rsna):
    root, facts, out = rsna
    recs = _records(out)
    assert sorted(recs) == ["rsna-1000", "rsna-1001", "rsna-1002", "rsna-1003"]
    e, rec = recs["rsna-1000"]
    # Severe canal L4/L5 and Moderate left foramen L5/S1 -> present; the 10 subarticular levels: 9 Normal/Mild
    # and one value outside RSNA's grades -> not every level graded -> unlabelled (never absent)
    assert rec.labels == {"canal": 1, "neuroforaminal": 1}
    assert e.labels == "RSNA 2024 train.csv" and e.synthetic is True  # the phantom pixels say SYNTHETIC in ImageComments
    by = {(f["condition"], f["level"], f["side"]): f for f in rec.findings}
    assert set(by) == {("canal", "L4-L5", ""), ("neuroforaminal", "L5-S1", "left")}
    canal = by[("canal", "L4-L5", "")]
    assert canal["severity"] == "severe" and canal["label"] == 1
    t2 = pydicom.dcmread(root / "train_images" / "1000" / str(facts[1000]["T2"]) / "5.dcm")
    assert canal["key_slices"][0]["sop_instance_uid"] == str(t2.SOPInstanceUID)
    half_x, half_y = 7.5 / float(t2.PixelSpacing[1]), 7.5 / float(t2.PixelSpacing[0])  # a 15 mm square
    assert canal["boxes"][0]["box"] == pytest.approx([30.5 - half_x, 33.0 - half_y, 30.5 + half_x, 33.0 + half_y], abs=0.01)
    assert "slice_index" in canal["key_slices"][0]  # the T2/STIR series is read, so the slice is indexed
    assert by[("neuroforaminal", "L5-S1", "left")]["severity"] == "moderate"
    # the CSV's descriptions typed the series (their own headers say nothing): T1 and STIR read, axial not
    assert sorted((s.sequence, s.plane, s.description) for s in rec.series) == [
        (STIR, SAGITTAL, "Sagittal T2/STIR"), (T1, SAGITTAL, "Sagittal T1")]
    assert recs["rsna-1001"][1].labels == {"canal": 0, "neuroforaminal": 0}  # one subarticular level blank
    assert recs["rsna-1002"][1].labels == {"canal": 1, "neuroforaminal": 0, "subarticular": 0}
    assert recs["rsna-1002"][1].findings[0]["boxes"] == []  # its only coordinate row was bad
    assert recs["rsna-1003"][1].labels == {"canal": 0, "neuroforaminal": 0, "subarticular": 0}
    for _, r in recs.values():  # conditions RSNA does not grade stay unlabelled
        assert not set(r.labels) - {"canal", "neuroforaminal", "subarticular"}


def test_rsna_bad_rows_and_files_are_listed_and_the_build_goes_on(rsna):
    _, _, out = rsna
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["counts"]["studies"] == 4 and manifest["counts"]["with_labels"] == 4
    assert manifest["sources"][0]["kind"] == "rsna-2024" and "rsna-2024" in manifest["description"]
    text = json.dumps(json.loads((out / "errors.json").read_text()))
    for expected in ("'Mild' is not Normal/Mild, Moderate or Severe", "study_id 'abc' is not a number",
                     "grades study 9999, which has no folder", "level 'L6/S1' is not L1/L2",
                     "x, y 'x', '20.0' are not numbers", "instance 99, which is not on disk",
                     "999.dcm: unreadable"):
        assert expected in text, expected


def test_rsna_without_the_series_descriptions_the_blank_headers_do_not_type(rsna, tmp_path):
    root, _, _ = rsna
    bare = tmp_path / "bare"
    (bare / "train_images").mkdir(parents=True)
    (bare / "train_images" / "1000").symlink_to(root / "train_images" / "1000")
    out = tmp_path / "ds"
    assert main(["dataset", "build", "--out", str(out), "--rsna", str(bare), "--img-size", "32", "--no-progress"]) == 0
    rec = Dataset(out).cases()[0]
    assert {s.sequence for s in rec.series} == {"OTHER"} and not rec.labels
    text = (out / "errors.json").read_text()
    assert "train_series_descriptions.csv is missing" in text and "study 1000 has no row in train.csv" in text


# ---------------------------------------------------------------- SPIDER fixture

# discs in the standard sagittal layout (rows head->feet): IVD label -> (first row, last row), on slices 2-5
DISC_ROWS = {1: (50, 53), 2: (40, 43), 3: (30, 33)}
DISC_COLS, DISC_SLICES = (20, 35), range(2, 6)


def _standard_volume(series: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """(pixels [slice,row,col], origin, direction rows (row dir, col dir, slice dir), spacing (col, row, slice))."""
    pixels = np.stack([ds.pixel_array for ds in series]).astype(np.uint16)
    iop = np.array([float(v) for v in series[0].ImageOrientationPatient])
    p0, p1 = (np.array([float(v) for v in ds.ImagePositionPatient]) for ds in series[:2])
    step = p1 - p0
    spacing = (float(series[0].PixelSpacing[1]), float(series[0].PixelSpacing[0]), float(np.linalg.norm(step)))
    return pixels, p0, np.stack([iop[:3], iop[3:], step / np.linalg.norm(step)]), spacing


def _mask_like(pixels: np.ndarray) -> np.ndarray:
    mask = np.zeros(pixels.shape, dtype=np.int16)
    for ivd, (r0, r1) in DISC_ROWS.items():
        mask[DISC_SLICES.start:DISC_SLICES.stop, r0:r1 + 1, DISC_COLS[0]:DISC_COLS[1] + 1] = 200 + ivd
    mask[:, 10:60, 38:41] = 100  # canal
    return mask


def _write_itk(path: Path, vol: np.ndarray, origin, direction, spacing, transposed: bool) -> None:
    """As ITK writes a DICOM series (index x = along a row, y = down the rows, z = slices) or, transposed,
    x = along a row, y = slices, z = up the rows (feet to head): the reader must undo either."""
    if not transposed:
        metaimage.write(path, vol, spacing, origin, direction)
        return
    n_rows = vol.shape[1]
    flipped = vol[:, ::-1, :]                      # rows now run feet -> head
    arr = flipped.transpose(1, 0, 2)               # [z=row (up), y=slice, x=col]
    new_origin = origin + (n_rows - 1) * spacing[1] * direction[1]
    new_dir = np.stack([direction[0], direction[2], -direction[1]])
    metaimage.write(path, arr, (spacing[0], spacing[2], spacing[1]), new_origin, new_dir, compress=False)


SPIDER_GRADES = [  # Patient, IVD label, Modic, UP endplate, LOW endplate, Spondylolisthesis, Disc herniation,
    #                Disc narrowing, Disc bulging, Pfirrman grade
    [1, 1, 0, 0, 0, 0, 0, 0, 1, 3],
    [1, 2, 1, 1, 0, 0, 1, 0, 0, 4],
    [1, 3, 0, 0, 0, 0, 0, 0, 0, 2],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 1],      # IVD label 0 (as in the released file): listed, skipped
    [2, 1, 2, 0, 0, 1, 0, 1, 1, 7],      # Pfirrman 7: the cell is dropped
    [2, 2, 0, 0, 0, 0, 0, 0, 0, 3],
    [2, 3, 0, 0, 0, 0, 0, 0, 0, 2],
    [4, 1, 0, 0, 0, 0, 0, 0, 0, 2],      # a patient without images
]
SPIDER_HEADER = ["Patient", "IVD label", "Modic", "UP endplate", "LOW endplate", "Spondylolisthesis",
                 "Disc herniation", "Disc narrowing", "Disc bulging", "Pfirrman grade"]


def write_spider(root: Path) -> dict:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    truth, overview = {}, []
    for patient, index in ((1, 10), (2, 11), (3, 12)):
        series = _phantom(index)
        for seq, kind in (("t1", "T1"), ("t2", "T2")):
            pixels, origin, direction, spacing = _standard_volume(series[kind])
            transposed = patient == 2
            stem = f"{patient}_{seq}"
            _write_itk(root / "images" / f"{stem}.mha", pixels, origin, direction, spacing, transposed)
            _write_itk(root / "masks" / f"{stem}.mha", _mask_like(pixels), origin, direction, spacing, transposed)
            truth[stem] = pixels
            overview.append([stem, "training", "SpineAgent phantom", "SYNTHETIC test fixture (spine_phantom)",
                             f"{series[kind][0].get('RepetitionTime', '')}", f"{series[kind][0].get('EchoTime', '')}"])
    data = (root / "images" / "3_t2.mha").read_bytes()
    (root / "images" / "3_t2.mha").write_bytes(data[: len(data) // 2])   # truncated: that series is skipped
    (root / "images" / "notes_t1.mha").write_bytes(b"ObjectType = Image\n")  # not <patient>_<sequence>
    _write_csv(root / "overview.csv", ["new_file_name", "subset", "Manufacturer", "ImageComments",
                                       "RepetitionTime", "EchoTime"], overview)
    _write_csv(root / "radiological_gradings.csv", SPIDER_HEADER, SPIDER_GRADES)
    return truth


@pytest.fixture(scope="module")
def spider(tmp_path_factory):
    root = tmp_path_factory.mktemp("spider") / "SPIDER"
    truth = write_spider(root)
    out = root.parent / "ds"
    assert main(["dataset", "build", "--out", str(out), "--spider", str(root), "--img-size", "32", "--no-progress"]) == 0
    return root, truth, out


def test_metaimage_reads_what_itk_writes_raw_and_compressed(tmp_path):
    vol = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 7
    d = np.array([[0, 1, 0], [0, 0, -1], [-1, 0, 0]], dtype=float)
    for compress in (True, False):
        p = metaimage.write(tmp_path / f"v{compress}.mha", vol, (0.5, 0.6, 4.0), (1, 2, 3), d, compress=compress)
        got = metaimage.read(p)
        assert got.array.dtype == np.int16 and np.array_equal(got.array, vol)
        assert got.spacing == (0.5, 0.6, 4.0) and got.origin == (1, 2, 3) and np.array_equal(got.direction, d)
    stack = sagittal_stack(got)
    assert stack.pixels.shape == (4, 5, 6) and stack.orientation == [0, 1, 0, 0, 0, -1]
    assert stack.pixel_spacing == [0.6, 0.5] and stack.thickness == 4.0
    assert axis_warning(stack) == ""
    # a header whose directions were lost (identity): its x axis (0.5 mm) is taken as left-right, and said to be doubtful
    flat = metaimage.read(metaimage.write(tmp_path / "flat.mha", vol, (0.5, 0.6, 4.0), (0, 0, 0)))
    assert "check its direction matrix" in axis_warning(sagittal_stack(flat))
    with pytest.raises(metaimage.MetaImageError, match="truncated"):
        (tmp_path / "cut.mha").write_bytes((tmp_path / "vFalse.mha").read_bytes()[:-10])
        metaimage.read(tmp_path / "cut.mha")


def test_spider_volumes_become_sagittal_slices_in_either_axis_order(spider):
    root, truth, out = spider
    recs = _records(out)
    assert sorted(recs) == ["spider-1", "spider-2", "spider-3"]
    for patient in ("1", "2"):
        _, rec = recs[f"spider-{patient}"]
        assert sorted((s.sequence, s.plane) for s in rec.series) == [(T1, SAGITTAL), (T2, SAGITTAL)]
    # the pixels reach the slices unchanged and in the scanner's layout, whichever way the .mha stored them
    study = spider_load(root, "2")
    t2 = sorted([d for d in study if d.SeriesDescription == "SAG T2"], key=slice_position)
    assert np.array_equal(np.stack([d.pixel_array for d in t2]), truth["2_t2"])
    assert [round(float(v), 6) for v in t2[0].ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    assert t2[0].Manufacturer == "SpineAgent phantom" and float(t2[0].EchoTime) > 60  # from overview.csv


def spider_load(root: Path, patient: str) -> list:
    from spinefm.dataset.public.spider import spider_studies

    studies, _, _ = spider_studies(root)
    return next(s for s in studies if s.key == f"spider-{patient}").load()[0]


def test_spider_gradings_map_to_conditions_levels_and_mask_boxes(spider):
    root, _, out = spider
    recs = _records(out)
    e1, r1 = recs["spider-1"]
    # herniation at IVD 2 -> L4-L5; Modic I -> oedema (no level); no listhesis, no narrowing graded anywhere
    assert r1.labels == {"herniation": 1, "spondylolisthesis": 0, "disc_height": 0, "edema": 1}
    assert e1.labels == "SPIDER radiological_gradings.csv" and e1.synthetic is True
    by = {(f["condition"], f["level"]): f for f in r1.findings}
    assert set(by) == {("herniation", "L4-L5"), ("edema", "")}
    h = by[("herniation", "L4-L5")]
    (r0, r1_), (c0, c1) = DISC_ROWS[2], DISC_COLS
    w, hgt = c1 + 1 - c0, r1_ + 1 - r0
    expected = [c0 - 0.15 * w, r0 - 0.15 * hgt, c1 + 1 + 0.15 * w, r1_ + 1 + 0.15 * hgt]
    assert len(h["boxes"]) == 2 * len(DISC_SLICES)  # both series, the disc's slices
    assert all(b["box"] == pytest.approx(expected, abs=0.01) for b in h["boxes"])
    assert sorted({b["slice_index"] for b in h["boxes"]}) == list(DISC_SLICES)
    # patient 2 (axes stored transposed and flipped): the same disc boxes; listhesis at IVD 1 -> L5-S1;
    # Modic II is no oedema and no absence of it
    _, r2 = recs["spider-2"]
    assert r2.labels == {"herniation": 0, "spondylolisthesis": 1, "disc_height": 1}
    f2 = {(f["condition"], f["level"]): f for f in r2.findings}
    assert set(f2) == {("spondylolisthesis", "L5-S1"), ("disc_height", "L5-S1")}
    rr0, rr1 = DISC_ROWS[1]
    assert f2[("spondylolisthesis", "L5-S1")]["boxes"][0]["box"][1] == pytest.approx(rr0 - 0.15 * (rr1 + 1 - rr0), abs=0.01)
    _, r3 = recs["spider-3"]
    assert r3.labels == {} and [s.sequence for s in r3.series] == [T1]  # no gradings; its T2 file is truncated


def test_spider_bad_rows_and_files_are_listed_and_the_build_goes_on(spider):
    _, _, out = spider
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["counts"]["studies"] == 3 and manifest["sources"][0]["kind"] == "spider"
    assert manifest["synthetic"] is True  # the fixture's overview says so in ImageComments; real SPIDER does not
    text = json.dumps(json.loads((out / "errors.json").read_text()))
    for expected in ("IVD label '0' is not 1-9", "Pfirrman grade '7' is not one of 1, 2, 3, 4, 5",
                     "gradings of patient 4 match no image", "notes_t1.mha", "3_t2.mha: not read",
                     "patient 3 has no row in radiological_gradings.csv"):
        assert expected in text, expected
    assert "check its direction matrix" not in text  # both axis orders of the fixture have sound headers


def test_a_folder_not_in_the_layout_is_refused_with_its_reason(tmp_path, capsys):
    for flag, expected in (("--rsna", "no train_images/ folder"), ("--spider", "no images/ folder")):
        assert main(["dataset", "build", "--out", str(tmp_path / "ds"), flag, str(tmp_path), "--no-progress"]) == 2
        assert expected in capsys.readouterr().err
        assert not (tmp_path / "ds").exists()  # nothing half-written


def test_mapping_table_in_the_docs_is_the_code(tmp_path):
    doc = (ROOT / "docs" / "training.md").read_text()
    section = doc.split("## Public data sets", 1)[1].split("\n## ", 1)[0]
    table = {tuple(c.strip().strip("`") for c in line.strip("|").split("|"))
             for line in section.splitlines() if line.startswith("| ") and not line.startswith("| set")}
    assert {r[:3] for r in mapping_rows()} == {r[:3] for r in table if len(r) >= 3}


def test_train_on_one_public_set_and_evaluate_on_the_other(rsna, spider, tiny_bundle, tmp_path, capsys):
    """The cross-cohort path, one command each: fit the heads of a bundle on the RSNA dataset, evaluate it
    with SPIDER as the held-out cohort. Public sets carry no reports, so the CLIP stages refuse them alone."""
    _, _, rsna_ds = rsna
    _, _, spider_ds = spider
    cache = ["--cache-dir", str(tmp_path / "cache")]
    with pytest.raises(SystemExit, match="report"):
        main(["train-default", "--dataset", str(rsna_ds), *TINY, "--max-steps", "1", "--skip-eval",
              "--out", str(tmp_path / "b"), "--work", str(tmp_path / "work"), *cache])
    heads = tmp_path / "heads"
    assert main(["heads", "--init", str(tiny_bundle), "--dataset", str(rsna_ds), "--splits", "train,val",
                 "--out", str(heads), "--diag-steps", "20", "--seg-steps", "2", *TINY, *cache]) == 0
    m = json.loads((heads / "manifest.json").read_text())
    assert m["synthetic_training"] is True and "rsna-2024" in m["data"]
    ev = tmp_path / "eval"
    assert main(["evaluate", "--bundle", str(heads), "--dataset", str(rsna_ds), "--splits", "train,val",
                 "--eval-dataset", str(spider_ds), *TINY, "--baselines", "", "--kfold", "1", "--n-boot", "5",
                 "--diag-steps", "2", "--out", str(ev), *cache]) == 0
    res = json.loads((ev / "metrics.json").read_text())
    assert res["n_test_cases"] == 3 and res["n_train_cases"] == 4
    per = res["variants"]["spinefm"]["diagnosis"]["all"]["per_condition"]
    # SPIDER's graded conditions are scored on its 2 graded patients; RSNA's stenoses, which SPIDER does not
    # grade, count no SPIDER study as negative
    assert {c: (per[c]["auroc"]["n"], per[c]["auroc"]["n_pos"]) for c in ("herniation", "spondylolisthesis", "canal")} \
        == {"herniation": (2, 1), "spondylolisthesis": (2, 1), "canal": (0, 0)}
    assert per["edema"]["auroc"]["n"] == 1  # Modic I only: patient 2's Modic II leaves oedema unlabelled
