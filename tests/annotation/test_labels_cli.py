"""The CLI end to end: extract to JSONL, evaluate against verified labels and against phantoms."""

import json
import subprocess
import sys

from spine_labels.cli import main

UID1, UID2 = "1.2.3.4.1", "1.2.3.4.2"


def test_extract_and_evaluate(tmp_path, capsys):
    src = tmp_path / "reports.csv"
    src.write_text("study_instance_uid,report\n"
                   f'{UID1},"Mild canal stenosis at L4-L5. No fracture."\n'
                   f"{UID2},Possible pars defect at L5.\n"
                   ",orphan row\n")
    out = tmp_path / "labels.jsonl"
    rc = main(["extract", "--in", str(src), "--out", str(out)])
    assert rc == 1  # one bad row
    err = capsys.readouterr().err
    assert "row 3: study_instance_uid: missing" in err and "labeled 2 reports" in err
    recs = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [r["study_instance_uid"] for r in recs] == [UID1, UID2]
    assert recs[0]["labels"]["canal"]["value"] == 1 and recs[0]["labels"]["canal"]["evidence"][0]["level"] == ["L4-L5"]
    assert recs[0]["labeler_version"] == "rules-1.0"

    truth = tmp_path / "verified.jsonl"
    truth.write_text(json.dumps({"study_instance_uid": UID1, "labels": {"canal": 1, "par": 0}}) + "\n"
                     + json.dumps({"study_instance_uid": UID2, "labels": {"canal": 0, "par": 1}}) + "\n")
    table = tmp_path / "table.md"
    metrics = tmp_path / "m.json"
    assert main(["evaluate", "--truth", str(truth), "--pred", str(out), "--out", str(table), "--json", str(metrics)]) == 0
    printed = capsys.readouterr().out
    assert "| canal | 2 | 1/1/0 | 1.000 |" in printed and "| par | 2 | 1/1/0 | 0.500 |" in printed
    assert json.loads(metrics.read_text())["par"]["confusion"]["1,-1"] == 1
    assert table.read_text().startswith("n=2 studies")


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "spine_labels", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "extract" in r.stdout and "evaluate" in r.stdout


def test_evaluate_on_a_few_phantoms(tmp_path, capsys):
    out = tmp_path / "t.md"
    misses = tmp_path / "misses.jsonl"
    assert main(["evaluate", "--phantoms", "3", "--seed", "11", "--phantom-quick", "--out", str(out),
                 "--misses", str(misses)]) == 0
    text = out.read_text()
    assert text.startswith("SYNTHETIC phantom reports: n=3, seed=11, labeler=rules-1.0")
    assert "| canal | 3 |" in text and "macro mean accuracy" in text
    assert misses.exists()
