"""spinefm dataset build: DICOM folder + tables and phantoms into one format; bad input listed; leaks refused;
every stage reads --dataset, and synthetic_training follows the data, not a flag."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from spinefm.cli import main
from spinefm.data import record_from_phantom
from spinefm.dataset import Dataset, DatasetError
from spinefm.model import nano_config

from .conftest import make_study

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
        assert rec.case_id.startswith("study-") and rec.labels == ref.labels  # no UID in a bundle's index
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


def test_a_rerun_resumes_and_reannotates(export, built, tmp_path):
    journal = (built / "progress.jsonl").read_text().splitlines()
    stamps = {p: p.stat().st_mtime_ns for p in (built / "cases").glob("*.npz")}
    assert _build(built, "--dicom", str(export), *_tables(export)) == 0
    assert (built / "progress.jsonl").read_text().splitlines() == journal  # nothing redone, nothing changed
    # a fixed labels table: the annotation follows it, the cached pixels are not touched
    lrows = list(csv.DictReader(open(export / "labels.csv")))
    lrows[0]["canal"] = "-1" if lrows[0]["canal"] != "-1" else "1"
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(lrows[0]))
        w.writeheader()
        w.writerows(lrows)
    tables = ["--reports", str(export / "reports.csv"), "--labels-csv", str(labels),
              "--findings-csv", str(export / "findings.csv")]
    assert _build(built, "--dicom", str(export), *tables) == 0
    assert {p: p.stat().st_mtime_ns for p in (built / "cases").glob("*.npz")} == stamps
    ids = {e.key: e.case_id for e in Dataset(built).entries}
    case = {r.case_id: r for r in Dataset(built).cases(None)}[ids[lrows[0]["StudyInstanceUID"]]]
    assert case.labels["canal"] == int(lrows[0]["canal"])
    first = Dataset(built).entries[0]
    (built / first.file).unlink()  # a lost case file is rebuilt
    assert _build(built, "--dicom", str(export), *_tables(export)) == 0
    assert (built / first.file).exists() and len(Dataset(built).entries) == 6
    case = {r.case_id: r for r in Dataset(built).cases(None)}[ids[lrows[0]["StudyInstanceUID"]]]
    assert case.labels["canal"] != int(lrows[0]["canal"])  # the original table again


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
    # docs/training.md's last step: the bundle loads (hash-checked) and drafts a study read from the DICOM folder,
    # its draft naming the model and its synthetic training
    from spinefm.bundle import load_bundle
    from spinefm.study import StudyInput

    uid = Dataset(built).entries[0].key
    datasets = [d for d in (pydicom.dcmread(f) for f in sorted(export.rglob("*.dcm"))) if d.StudyInstanceUID == uid]
    result = load_bundle(bundle).analyze(StudyInput.from_datasets(datasets))
    assert result.model_name == "spineagent-phantom-nano" and result.synthetic_training is True
    assert len(result.conditions) == 17 and result.draft_text and "synthetic" in result.draft_text.lower()

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

    from spinefm.train.ssl import train as ssl_train
    from spinefm.train.ssl.data import dataset_slices

    t1, t2 = dataset_slices(built, "t1", 64), dataset_slices(built, "t2", 64)
    assert len(t2) > len(t1) > 0 and t1[0][0].shape == (3, 64, 64)
    args = ssl_train.add_arguments(argparse.ArgumentParser()).parse_args(
        ["--dataset", str(built), "--sequence-group", "t1", "--out", str(tmp_path / "run"), "--steps", "2",
         "--batch-size", "8", "--n-local", "1", "--head-prototypes", "32", "--no-progress", "--device", "cpu"])
    assert ssl_train.run(args).exists()


def test_report_agent_trains_on_a_dataset(built, tmp_path):
    """Both report-agent stages (projector, LoRA) on a dataset's reports, with stand-in agent outputs."""
    from spinefm.report.data import dataset_studies
    from spinefm.train.report_agent import main as agent_main

    studies = dataset_studies(built, 16)
    assert len(studies) == 3 and {s.split for s in studies} == {"train"}
    assert studies[0].report and studies[0].truth["labels"]
    assert agent_main(["--dataset", str(built), "--out", str(tmp_path / "ra"), "--in-dim", "16", "--n-queries", "2",
                       "--stages", "lm,projector,lora", "--epochs", "lm=0.1,projector=0.1,lora=0.1",
                       "--batch-size", "2", "--lora-r", "2", "--lora-alpha", "4", "--tasks", "short"]) == 0
    meta = (tmp_path / "ra" / "report_agent" / "config.json").read_text()
    assert f"dataset {built}" in meta and "SYNTHETIC" in meta  # the data it learnt from, as the dataset says


def test_reports_labelled_by_spine_labels_llm_labeler(export, tmp_path):
    """--llm-url: report labels from spine_labels' LLM labeler (an OpenAI-compatible endpoint on 127.0.0.1
    that answers one fixed, valid reply)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from spinefm.conditions import CONDITION_KEYS

    text = "FINDINGS: Mild canal stenosis at L4-L5. No fracture.\nIMPRESSION: Mild canal stenosis at L4-L5."
    labels = {k: {"value": 0, "evidence": [], "severity": None} for k in CONDITION_KEYS}
    labels["canal"] = {"value": 1, "evidence": ["Mild canal stenosis at L4-L5"], "severity": "mild"}
    reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": json.dumps({"labels": labels})}}]})
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            seen.append((self.path, self.headers.get("Authorization")))
            self.rfile.read(int(self.headers["Content-Length"]))
            data = reply.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        rows = list(csv.DictReader(open(export / "reports.csv")))[:2]
        reports = tmp_path / "reports.csv"
        with open(reports, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows([{**r, "report": text} for r in rows])
        import os

        os.environ["TEST_LLM_KEY"] = "sk-test"
        out = tmp_path / "ds"
        assert _build(out, "--dicom", str(export), "--reports", str(reports), "--llm-url",
                      f"http://127.0.0.1:{httpd.server_address[1]}/v1", "--llm-model", "fake-70b",
                      "--llm-api-key-env", "TEST_LLM_KEY") == 0
    finally:
        httpd.shutdown()
        os.environ.pop("TEST_LLM_KEY", None)
    ds = Dataset(out)
    labelled = [e for e in ds.entries if e.labels]
    assert len(labelled) == 2 and all("LLM fake-70b" in e.labels and "llm" in e.labels for e in labelled)
    assert seen and seen[0] == ("/v1/chat/completions", "Bearer sk-test")
    for rec in ds.cases(None):
        if rec.report == text:
            assert rec.labels["canal"] == 1 and rec.labels["fracture"] == 0


def test_a_platform_export_gives_verified_labels_patients_and_splits(export, tmp_path):
    """A dataset version exported by the platform (export.json) + the images: its labels and splits win."""
    rows = list(csv.DictReader(open(export / "reports.csv")))
    items = [{"study_instance_uid": r["StudyInstanceUID"], "patient_id": f"PAT{i // 2}", "split": ["train", "test"][i // 2 % 2],
              "synthetic": True, "labels": {"canal": 1, "herniation": 0}} for i, r in enumerate(rows[:4])]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"dataset": {"name": "site", "version": 1}, "items": items}))
    out = tmp_path / "ds"
    assert _build(out, "--dicom", str(export), "--platform-export", str(path)) == 0
    by_key = {e.key: e for e in Dataset(out).entries}
    for i, item in enumerate(items):
        e = by_key[item["study_instance_uid"]]
        assert (e.labels, e.patient_id, e.split) == ("platform export", f"PAT{i // 2}", item["split"])
    cases = {e.key: r for e, r in zip(Dataset(out).entries, Dataset(out).cases(None))}
    assert cases[items[0]["study_instance_uid"]].labels == {"canal": 1, "herniation": 0}
    # the patient travels with the case: evaluate's k-fold keeps a patient's studies in one fold
    assert cases[items[1]["study_instance_uid"]].patient == "PAT0" == cases[items[0]["study_instance_uid"]].patient


def test_calibrate_and_evaluate_read_a_dataset_and_an_eval_dataset(export, tmp_path):
    """calibrate (val split) and evaluate (every study of --eval-dataset): counted on the right cases, and
    the metrics say what the data is."""
    folder = tmp_path / "real"
    _real(export, folder)
    real = tmp_path / "real-ds"
    assert _build(real, "--dicom", str(folder), *_tables(export)) == 0
    held = tmp_path / "held-ds"  # a separate held-out set: every one of its studies is a test case
    keys = [e.key for e in Dataset(real).entries if e.split == "test"]
    assert _build(held, "--dicom", str(folder), "--reports", str(export / "reports.csv")) == 0
    common = [*TINY, "--dataset", str(real), "--cache-dir", str(tmp_path / "cache")]
    assert main(["heads", "--out", str(tmp_path / "h"), "--diag-steps", "2", "--seg-steps", "1", *common]) == 0
    assert main(["calibrate", "--init", str(tmp_path / "h"), "--out", str(tmp_path / "cal"), "--splits", "val",
                 "--min-cases", "1", "--eval-dataset", str(held), *common]) == 0
    record = json.loads((tmp_path / "cal" / "manifest.json").read_text())["operating_points"]
    assert record["n_cases"] == 1 and record["dataset"] == str(real.resolve())
    assert record["counts"]["eval dataset held-ds, after"]["n_cases"] == 6
    assert main(["evaluate", "--bundle", str(tmp_path / "cal"), "--out", str(tmp_path / "ev"), "--n-boot", "5",
                 "--kfold", "0", "--diag-steps", "2", "--baselines", "", *common]) == 0
    res = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert res["n_test_cases"] == len(keys) == 2 and res["data"].startswith("real studies")
    assert res["synthetic_training"] is False
    # build-bundle keeps calibrate's operating points; compare scores models on the same test cases (a reference
    # that cannot be read is reported, not fatal)
    assert main(["build-bundle", "--init", str(tmp_path / "cal"), "--out", str(tmp_path / "b"), *common]) == 0
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["operating_points"] == record
    assert main(["compare", "--candidate", str(tmp_path / "b"), "--reference", f"heads={tmp_path / 'h'}",
                 "--reference", f"gone={tmp_path / 'nothing'}", "--dataset", str(real), "--n-boot", "5",
                 "--out", str(tmp_path / "cmp.json")]) == 0
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["n_test"] == len(keys) and sorted(cmp["case_ids"]) == cmp["case_ids"]
    assert cmp["references"]["heads"] == cmp["candidate"]  # calibrate moved thresholds, not probabilities
    assert list(cmp["reference_errors"]) == ["gone"] and "gone" not in cmp["references"]
    with pytest.raises(SystemExit):
        main(["compare", "--candidate", str(tmp_path / "b"), "--reference", "no-equals-sign", "--dataset", str(real),
              "--out", str(tmp_path / "x.json")])


def test_a_study_in_two_sources_is_kept_once(export, tmp_path):
    out = tmp_path / "ds"
    assert _build(out, "--dicom", str(export), "--dicom", str(export), "--reports", str(export / "reports.csv")) == 0
    ds = Dataset(out)
    assert len(ds.entries) == 6 and len(ds.sources) >= 2
    errors = json.loads((out / "errors.json").read_text())
    assert sum("in two sources" in e.get("warning", "") for e in errors) == 6


def _level_export(export: Path, path: Path, level_labels) -> list[dict]:
    """export.json of the six studies, their reports' splits, herniation verified present; ``level_labels``:
    an item's per-level labels (None: an export without them, as versions before levels)."""
    rows = list(csv.DictReader(open(export / "reports.csv")))
    items = []
    for i, r in enumerate(rows):
        item = {"study_instance_uid": r["StudyInstanceUID"], "patient_id": f"LV{i}", "split": SPLITS[i],
                "synthetic": True, "labels": {"herniation": 1, "canal": 0}}
        if level_labels is not None:
            item["level_labels"] = {"herniation": level_labels, "canal": {"study": 0}}
        items.append(item)
    path.write_text(json.dumps({"dataset": {"name": "site", "version": 1}, "items": items}))
    return items


def test_a_platform_exports_verified_levels_become_level_findings(export, tmp_path):
    """Each verified present spinal level is a finding without a box; "study", uncertain and absent levels are
    none; an export without level labels gives no findings (as before)."""
    _level_export(export, tmp_path / "levels.json", {"L5-S1": 1, "L4-L5": 0, "L3-L4": -1, "study": 1})
    _level_export(export, tmp_path / "plain.json", None)
    assert _build(tmp_path / "lv", "--dicom", str(export), "--platform-export", str(tmp_path / "levels.json")) == 0
    assert _build(tmp_path / "pl", "--dicom", str(export), "--platform-export", str(tmp_path / "plain.json")) == 0
    for rec in Dataset(tmp_path / "lv").cases(None):
        assert rec.findings == [{"condition": "herniation", "level": "L5-S1", "label": 1, "severity": "", "side": "",
                                 "key_slices": [], "boxes": []}]
        assert rec.labels == {"herniation": 1, "canal": 0}
    assert all(rec.findings == [] for rec in Dataset(tmp_path / "pl").cases(None))
    assert all(e.n_findings == 0 for e in Dataset(tmp_path / "pl").entries)


@pytest.fixture(scope="module")
def level_base(tmp_path_factory, tiny_bundle):
    """The tiny bundle with a level head that places herniation at L4-L5 whatever the box (offset fitted at
    L4-L5, position net untrained, prior zero)."""
    import torch

    from spinefm.bundle import load_bundle, resave_bundle
    from spinefm.heads.level import LEVELS
    from spinefm.train.level_agent import fit_level

    bundle = load_bundle(tiny_bundle)
    model = bundle.model
    cond = model.level.index("herniation")
    fit_level(model.level, {"case": torch.zeros(1, 16), "centre": torch.zeros(1, 2), "cond": torch.tensor([cond]),
                            "target": torch.tensor([LEVELS.index("L4-L5")])}, steps=0)
    out = tmp_path_factory.mktemp("level-base") / "base"
    resave_bundle(model, tiny_bundle, out, bundle.manifest)
    return out


def test_verified_levels_refit_the_level_prior_and_compare_measures_it(export, level_base, tmp_path):
    """Verified levels put herniation at L5-S1: ``levels --level-fit prior`` moves the prior (and the test
    findings' levels) from the base's L4-L5 to L5-S1, nothing else of the head changes, and compare reports
    the per-level agreement (checked by hand: two test findings, base 0/2, candidate 2/2)."""
    import torch

    from spinefm.bundle import load_bundle
    from spinefm.heads.level import LEVELS

    _level_export(export, tmp_path / "export.json", {"L5-S1": 1})
    ds = tmp_path / "ds"
    assert _build(ds, "--dicom", str(export), "--platform-export", str(tmp_path / "export.json")) == 0
    out = tmp_path / "lv"
    assert main(["levels", "--init", str(level_base), "--dataset", str(ds), "--out", str(out), "--level-fit", "prior",
                 "--level-centres", "predicted", "--level-steps", "40", "--threads", "1", "--no-progress"]) == 0
    record = json.loads((out / "manifest.json").read_text())["level_training"]
    n_train = SPLITS.count("train")
    assert record["level_fit"] == "prior" and record["level_conditions"] == ["herniation"]
    assert record["level_findings_cases"] == n_train and record["level_loss"] < record["level_loss_initial"]
    base, new = load_bundle(level_base).model.level, load_bundle(out).model.level
    h, lo, hi = base.index("herniation"), LEVELS.index("L4-L5"), LEVELS.index("L5-S1")
    assert new.prior[h, hi] - new.prior[h, lo] > base.prior[h, hi] - base.prior[h, lo] + 0.5
    others = [i for i in range(len(base.conditions)) if i != h]
    assert torch.equal(new.prior[others], base.prior[others])  # conditions without a verified level keep theirs
    assert all(torch.equal(a, b) for a, b in zip(new.net.parameters(), base.net.parameters()))  # geometry kept
    case, centre = torch.nn.functional.normalize(torch.ones(16), dim=0), torch.tensor([0.5, 0.5])
    assert base.predict(case, centre, "herniation")[0] == "L4-L5"
    assert new.predict(case, centre, "herniation")[0] == "L5-S1"

    assert main(["compare", "--candidate", str(out), "--reference", f"base={level_base}", "--dataset", str(ds),
                 "--n-boot", "5", "--out", str(tmp_path / "cmp.json")]) == 0
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    cand, ref = cmp["candidate"]["levels"], cmp["references"]["base"]["levels"]
    n_test = SPLITS.count("test")
    assert cand["n_findings"] == ref["n_findings"] == cand["n_studies"] == n_test == 2
    assert (cand["accuracy"]["value"], cand["accuracy"]["n"], ref["accuracy"]["value"]) == (1.0, 2, 0.0)
    assert (cand["within_one"]["value"], ref["within_one"]["value"]) == (1.0, 1.0)  # L4-L5 is one level off
    assert cand["per_condition"] == {"herniation": {"n": 2, "accuracy": 1.0}}
    assert ref["per_condition"] == {"herniation": {"n": 2, "accuracy": 0.0}}


def test_a_prior_refit_without_verified_levels_keeps_the_head(export, level_base, tmp_path):
    """A dataset without per-level labels: ``levels --level-fit prior`` finds nothing to learn, and says so;
    the level head's file keeps its bytes."""
    _level_export(export, tmp_path / "export.json", None)
    ds = tmp_path / "ds"
    assert _build(ds, "--dicom", str(export), "--platform-export", str(tmp_path / "export.json")) == 0
    out = tmp_path / "lv"
    assert main(["levels", "--init", str(level_base), "--dataset", str(ds), "--out", str(out), "--level-fit", "prior",
                 "--level-centres", "predicted", "--level-steps", "5", "--threads", "1", "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["level_training"]["level_examples"] == 0
    assert manifest["level_training"]["level_kept"] == "no finding with a level in the cases"
    base = json.loads((level_base / "manifest.json").read_text())
    assert manifest["files"]["level.safetensors"] == base["files"]["level.safetensors"]
