"""spinefm dataset build: DICOM folder + tables and phantoms into one format; bad input listed; leaks refused;
every stage reads --dataset, and synthetic_training follows the data, not a flag."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

pytest.importorskip("spine_phantom")

from spinefm.cli import main  # noqa: E402
from spinefm.data import record_from_phantom  # noqa: E402
from spinefm.dataset import Dataset, DatasetError  # noqa: E402
from spinefm.model import nano_config  # noqa: E402

from .conftest import make_study  # noqa: E402

CONFIG = '{"include_axial": false, "image_size": [64, 64]}'
SPLITS = ["train", "train", "val", "test", "train", "test"]
TINY = ["--img-size", "32", "--depth", "2", "--proj-dim", "16", "--max-slices", "3", "--batch-size", "4", "--no-progress"]


def _rewrite_splits(folder: Path, splits) -> None:
    path = folder / "reports.csv"
    rows = list(csv.DictReader(open(path)))
    for r, s in zip(rows, splits):
        r["split"] = s
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Six phantoms as a site would hand them over: a DICOM tree and reports/labels/findings CSVs."""
    from spine_phantom.cli import main as phantom_main

    out = tmp_path_factory.mktemp("export") / "archive"
    assert phantom_main(["generate", "--studies", "6", "--seed", "0", "--out", str(out), "--size", "64",
                         "--config", CONFIG, "--tables", "--no-truth", "--quiet"]) == 0
    _rewrite_splits(out, SPLITS)
    return out


def _build(out, *extra) -> int:
    return main(["dataset", "build", "--out", str(out), "--img-size", "32", "--no-progress", *extra])


def _tables(folder: Path) -> list[str]:
    return ["--reports", str(folder / "reports.csv"), "--labels-csv", str(folder / "labels.csv"),
            "--findings-csv", str(folder / "findings.csv")]


@pytest.fixture(scope="module")
def built(export, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "site"
    assert _build(out, "--dicom", str(export), *_tables(export)) == 0
    return out


def _norm_findings(findings):
    return sorted(json.dumps({"condition": f["condition"], "level": f["level"], "label": int(f["label"]),
                              "severity": str(f.get("severity", "")), "side": str(f.get("side", "")),
                              "keys": sorted((k["series_instance_uid"], k["sop_instance_uid"], k.get("slice_index"))
                                             for k in f["key_slices"]),
                              "boxes": sorted((b["sop_instance_uid"], tuple(float(v) for v in b["box"]))
                                              for b in f["boxes"])}, sort_keys=True) for f in findings)


def test_phantom_source_gives_the_in_memory_records(tmp_path):
    """The phantom generator is one more source: through inference's intake it yields the very records
    the in-memory phantom path makes (pixels, SOP order, labels, findings, report, split)."""
    out = tmp_path / "ph"
    assert _build(out, "--phantom", "2", "--phantom-seed", "0", "--phantom-config", CONFIG) == 0
    ds = Dataset(out)
    assert ds.synthetic and ds.description.startswith("SYNTHETIC") and ds.sources[0]["kind"] == "phantom"
    cfg = nano_config(img_size=32).preprocess
    for rec in ds.cases(None, cfg):
        ref = record_from_phantom(0, int(rec.case_id.split("-")[-1]), cfg, json.loads(CONFIG))
        assert (rec.case_id, rec.labels, rec.report, rec.findings, rec.split, rec.vendor) == \
               (ref.case_id, ref.labels, ref.report, ref.findings, ref.split, ref.vendor)
        assert [s.series_instance_uid for s in rec.series] == [s.series_instance_uid for s in ref.series]
        for a, b in zip(rec.series, ref.series):
            assert a.sop_instance_uids == b.sop_instance_uids and np.array_equal(a.pixels, b.pixels)
            assert (a.sequence, a.stream, a.geometry) == (b.sequence, b.stream, b.geometry)


def test_dicom_folder_with_tables_equals_the_phantom_source(export, built, tmp_path):
    """A DICOM tree + reports/labels/findings CSVs gives the same cases as the generator's truth."""
    assert _build(tmp_path / "ph", "--phantom", "6", "--phantom-seed", "0", "--phantom-config", CONFIG) == 0
    ph = {r.report: r for r in Dataset(tmp_path / "ph").cases(None)}
    site = Dataset(built)
    cases = site.cases(None)
    assert len(cases) == 6 and site.synthetic  # the DICOM says SYNTHETIC PHANTOM: derived, not flagged
    assert [e.split for e in site.entries] == SPLITS  # the reports' split column, in folder order
    for rec in cases:
        ref = ph[rec.report]
        assert rec.case_id.startswith("2.25.") and rec.labels == ref.labels
        assert _norm_findings(rec.findings) == _norm_findings(ref.findings)
        for a, b in zip(rec.series, ref.series):
            assert a.sop_instance_uids == b.sop_instance_uids and np.array_equal(a.pixels, b.pixels)
    assert json.loads((built / "errors.json").read_text()) == []


def _real(folder: Path, out: Path, patient=lambda i: f"P{i}") -> None:
    """The phantom tree with every synthetic marker removed, as if a site's own."""
    for i, study in enumerate(sorted(p for p in folder.iterdir() if p.is_dir())):
        for f in study.rglob("*.dcm"):
            ds = pydicom.dcmread(f)
            ds.PatientID, ds.StudyDescription = patient(i), "MRI SPINE"
            for k in ("ImageComments", "PatientComments", "PatientIdentityRemoved", "DeidentificationMethod"):
                if k in ds:
                    delattr(ds, k)
            target = out / study.name / f.relative_to(study)
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target)


def test_bad_input_is_listed_per_study_and_the_build_goes_on(export, tmp_path, capsys):
    folder = tmp_path / "archive"
    _real(export, folder)
    (folder / "junk").mkdir()
    (folder / "junk" / "notes.dcm").write_bytes(b"not dicom at all")
    knee = make_study(("T1", "T2"), body_part="KNEE")  # a study with no usable series
    (folder / "knee").mkdir()
    for ds in (d for s in knee.series for d in s.datasets):
        ds.save_as(folder / "knee" / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    reports = tmp_path / "reports.csv"
    rows = list(csv.DictReader(open(export / "reports.csv")))
    with open(reports, "w", newline="") as f:  # one report missing, one report for a study nobody sent
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[1:] + [{**rows[0], "StudyInstanceUID": "1.2.3.4", "AccessionNumber": "NOPE"}])
    labels = tmp_path / "labels.csv"
    lrows = list(csv.DictReader(open(export / "labels.csv")))
    lrows[2]["canal"] = "2"  # outside the schema
    with open(labels, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(lrows[0]) + ["mood"])
        w.writeheader()
        w.writerows(lrows[2:])
    out = tmp_path / "ds"
    assert _build(out, "--dicom", str(folder), "--reports", str(reports), "--labels-csv", str(labels)) == 0
    printed = capsys.readouterr().out
    ds = Dataset(out)
    assert not ds.synthetic and ds.description.startswith("real studies (6")
    c = ds.manifest["counts"]
    assert (c["studies"], c["failed"], c["unreadable_files"], c["with_report"]) == (6, 1, 1, 5)
    assert "6 studies of 6 patients" in printed and "1 studies failed, 1 files unreadable" in printed
    errors = json.loads((out / "errors.json").read_text())
    text = json.dumps(errors)
    assert "unreadable file" in text and "notes.dcm" in text
    assert any("no usable series: not a spine MRI" in e.get("error", "") and "KNEE" in e["error"] for e in errors)
    first = rows[0]["StudyInstanceUID"]
    assert any(e["key"] == first and "no report matches" in e.get("warning", "") for e in errors)
    assert any("canal='2'" in e.get("warning", "") for e in errors)  # value outside the schema, named
    assert any("mood" in e.get("warning", "") and "not conditions of the schema" in e["warning"] for e in errors)
    assert any("report row" in e.get("warning", "") and "matches no study" in e["warning"] for e in errors)
    by_key = {e.key: e for e in ds.entries}
    # labels: the table where it has a row, else the report through spine_labels' rules, else none
    assert by_key[rows[2]["StudyInstanceUID"]].labels == "labels table"
    assert by_key[rows[1]["StudyInstanceUID"]].labels.startswith("report (")
    assert by_key[first].labels == ""


def test_a_patient_in_two_splits_is_refused(export, tmp_path, capsys):
    folder = tmp_path / "archive"
    _real(export, folder, patient=lambda i: "SAME" if i < 2 else f"P{i}")
    rows = list(csv.DictReader(open(export / "reports.csv")))
    for r in rows:
        r["PatientID"] = ""  # the DICOM's PatientID decides the patient
    rows[0]["split"], rows[1]["split"] = "train", "test"
    reports = tmp_path / "reports.csv"
    with open(reports, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "ds"
    assert _build(out, "--dicom", str(folder), "--reports", str(reports)) == 2
    assert "SAME: test, train" in capsys.readouterr().err
    assert not (out / "dataset.json").exists()
    # and a dataset.json edited to leak is refused on open
    rows[1]["split"] = "train"
    with open(reports, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert _build(out, "--dicom", str(folder), "--reports", str(reports), "--no-resume") == 0
    manifest = json.loads((out / "dataset.json").read_text())
    manifest["studies"][0]["split"] = "test"
    (out / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="more than one split"):
        Dataset(out)


def test_a_rerun_resumes(export, built, tmp_path):
    journal = (built / "progress.jsonl").read_text().splitlines()
    assert _build(built, "--dicom", str(export), *_tables(export)) == 0
    assert (built / "progress.jsonl").read_text().splitlines() == journal  # nothing redone
    first = Dataset(built).entries[0]
    (built / first.file).unlink()  # a lost case file is rebuilt
    assert _build(built, "--dicom", str(export), *_tables(export)) == 0
    assert len((built / "progress.jsonl").read_text().splitlines()) == len(journal) + 1
    assert len(Dataset(built).entries) == 6


def test_stages_train_on_a_dataset_and_the_manifest_follows_its_sources(export, built, tmp_path):
    """train-default on a dataset (calibration on val, evaluation on test); synthetic_training from the
    dataset; build-bundle on a real dataset from a phantom-trained stage stays synthetic."""
    bundle = tmp_path / "bundle"
    assert main(["train-default", "--dataset", str(built), *TINY, "--max-steps", "1", "--diag-steps", "2",
                 "--seg-steps", "1", "--level-steps", "2", "--skip-eval", "--out", str(bundle),
                 "--work", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache")]) == 0
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["synthetic_training"] is True and m["data"].startswith("SYNTHETIC")
    assert m["training"]["dataset"]["path"] == str(built.resolve()) and m["name"] == "spineagent-phantom-nano"
    assert m["operating_points"]["splits"] == "val"  # no separate held-out set: the test split stays unseen

    folder = tmp_path / "real"
    _real(export, folder)
    real = tmp_path / "real-ds"
    assert _build(real, "--dicom", str(folder), *_tables(export)) == 0
    assert Dataset(real).synthetic is False
    common = [*TINY, "--dataset", str(real), "--cache-dir", str(tmp_path / "cache")]
    assert main(["align", "--out", str(tmp_path / "a"), "--max-steps", "1", *common]) == 0
    assert main(["heads", "--init", str(tmp_path / "a"), "--out", str(tmp_path / "h"), "--diag-steps", "2",
                 "--seg-steps", "1", *common]) == 0
    assert json.loads((tmp_path / "h" / "manifest.json").read_text())["synthetic_training"] is False
    assert main(["build-bundle", "--init", str(tmp_path / "h"), "--out", str(tmp_path / "b"), *common]) == 0
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert b["synthetic_training"] is False and b["data"].startswith("real studies")
    # the same real data on top of a phantom-trained stage: still synthetic-trained
    assert main(["build-bundle", "--init", str(tmp_path / "work" / "heads"), "--out", str(tmp_path / "b2"), *common]) == 0
    assert json.loads((tmp_path / "b2" / "manifest.json").read_text())["synthetic_training"] is True
    with pytest.raises(SystemExit):  # --real-data is gone
        main(["build-bundle", "--init", str(tmp_path / "h"), "--out", str(tmp_path / "b3"), "--real-data", *common])


def test_a_dataset_at_another_image_size_is_refused(built, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["align", "--dataset", str(built), "--out", str(tmp_path / "a"), "--img-size", "64", "--depth", "1",
              "--proj-dim", "16", "--max-steps", "1", "--no-progress"])
    assert "preprocessed at r32-c32" in capsys.readouterr().err


def test_ssl_pretraining_reads_a_dataset(built, tmp_path):
    import argparse

    from spinefm.ssl import train as ssl_train
    from spinefm.ssl.data import dataset_slices

    t1, t2 = dataset_slices(built, "t1", 64), dataset_slices(built, "t2", 64)
    assert len(t2) > len(t1) > 0 and t1[0][0].shape == (3, 64, 64)
    args = ssl_train.add_arguments(argparse.ArgumentParser()).parse_args(
        ["--dataset", str(built), "--sequence-group", "t1", "--out", str(tmp_path / "run"), "--steps", "2",
         "--batch-size", "8", "--n-local", "1", "--head-prototypes", "32", "--no-progress", "--device", "cpu"])
    assert ssl_train.run(args).exists()


def test_report_agent_trains_on_a_dataset(built, tmp_path):
    """Both report-agent stages (projector, LoRA) on a dataset's reports, with stand-in agent outputs."""
    pytest.importorskip("transformers")
    from spinefm.report.data import dataset_studies
    from spinefm.report.train import main as agent_main

    studies = dataset_studies(built, 16)
    assert len(studies) == 3 and {s.split for s in studies} == {"train"}
    assert studies[0].report and studies[0].truth["labels"]
    assert agent_main(["--dataset", str(built), "--out", str(tmp_path / "ra"), "--in-dim", "16", "--n-queries", "2",
                       "--stages", "lm,projector,lora", "--epochs", "lm=0.1,projector=0.1,lora=0.1",
                       "--batch-size", "2", "--lora-r", "2", "--lora-alpha", "4", "--tasks", "short"]) == 0
    meta = (tmp_path / "ra" / "report_agent" / "config.json").read_text()
    assert f"dataset {built}" in meta and "SYNTHETIC" in meta  # the data it learnt from, as the dataset says
