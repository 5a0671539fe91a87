"""Template backend and make_drafter: the safe default must always work."""

from pathlib import Path

import pytest

from spinefm.report import make_drafter
from spinefm.report.backends.template import TemplateDrafter
from spinefm.results import AnalysisResult


def test_default_is_template(tmp_path: Path):
    d = make_drafter()
    assert d.name == "template" and d.version
    assert make_drafter(None, bundle_dir=tmp_path).name == "template"  # bundle without agent


def test_sections_levels_and_hedging(result):
    text = make_drafter({"backend": "template"}).draft(result)
    assert text.startswith("TECHNIQUE: MRI of the lumbar spine. Sequences: sagittal T2, sagittal T1.")
    assert "COMPARISON: None provided." in text
    findings, impression = text.split("IMPRESSION:")
    # level by level, cranio-caudal, key image linked
    assert findings.index("L4-L5:") < findings.index("L5-S1:")
    assert "Spinal canal stenosis (key image: T2 sagittal slice 8)." in findings
    # near-threshold in both directions is hedged, far below is not mentioned
    assert "Possible disc herniation; cannot be excluded." in findings
    assert "Possible neural foraminal narrowing; cannot be excluded." in findings
    assert "cyst" not in text.lower()
    # numbered impression, definite urgent finding first, caution added
    lines = [l for l in impression.strip().splitlines()]
    assert lines[0].startswith("1. Vertebral fracture at L1.") and "clinical correlation" in lines[0]
    assert lines[-1].startswith(f"{len(lines)}. Possible")


def test_no_findings_and_no_series():
    text = TemplateDrafter().draft(AnalysisResult("m", "v", True))
    assert "MRI of the spine." in text and "Sequences" not in text
    assert "1. No abnormality" in text


def test_draft_record_and_errors(result):
    rec = make_drafter({"backend": "template", "margin": 0.0}).draft_record(result)
    assert rec.backend == "template" and rec.tag.startswith("template:")
    assert rec.settings["margin"] == 0.0
    assert "Possible disc herniation" not in rec.text
    with pytest.raises(ValueError, match="unknown report backend"):
        make_drafter({"backend": "nope"})
    with pytest.raises(FileNotFoundError, match="report agent"):
        make_drafter({"backend": "llava"})
