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


def with_calls(result, calls: dict) -> AnalysisResult:
    """The fixture result with the bundle's own calls (operating points) set per condition."""
    for c in result.conditions:
        c.status = calls.get(c.condition, "absent")
        c.present = c.status == "present"
    return result


def test_bundle_calls_replace_the_global_margin(result):
    """A result that carries calls is written as called: the hedge band is the bundle's, not 0.5 +- margin."""
    text = TemplateDrafter().draft(with_calls(result, {"canal": "present", "herniation": "absent",
                                                       "neuroforaminal": "possible", "fracture": "present"}))
    assert "Spinal canal stenosis (key image" in text and "herniation" not in text.lower()
    assert "Possible neural foraminal narrowing; cannot be excluded." in text
    assert "not assessed" not in text.lower()


def test_unassessed_conditions_are_counted_never_called_normal(result):
    from spinefm.report.labels import extract_labels

    text = TemplateDrafter().draft(with_calls(result, {"canal": "not_assessed", "herniation": "not_assessed",
                                                       "fracture": "not_assessed", "cyst": "not_assessed",
                                                       "neuroforaminal": "present"}))
    findings, impression = text.split("IMPRESSION:")
    # the section normals that would assert the unassessed conditions are gone, the others stay
    assert "No disc herniation, canal or foraminal narrowing" not in findings
    assert "No marrow edema or fracture" not in findings and "Vertebral alignment is maintained." in findings
    # counted per section, not named: a named condition reads as a finding to a labeler
    assert "Levels: 2 of 4 conditions not assessed by the model; review on the images." in findings
    assert "Vertebral bodies and marrow: Not assessed by the model; review on the images." in findings
    assert "Other: Not assessed by the model; review on the images." in findings
    lines = impression.strip().splitlines()
    assert lines[0].startswith("1. Neural foraminal narrowing")
    assert lines[-1] == "2. 4 conditions were not assessed by the model (not validated on held-out data); review them on the images."
    # the rule labeler reads no finding into the draft beyond what it calls
    labels = extract_labels(text)
    assert all(labels[k] != 1 for k in ("canal", "herniation", "fracture", "cyst")) and labels["neuroforaminal"] == 1


def test_prompt_lists_calls_and_unassessed(result):
    from spinefm.report.prompt import agent_tokens

    tokens = agent_tokens(with_calls(result, {"canal": "present", "fracture": "not_assessed"}))
    assert "- Spinal canal stenosis: 0.86 present" in tokens and "Vertebral fracture:" not in tokens.split("Not assessed")[0]
    assert "Not assessed by the model (not validated): Vertebral fracture." in tokens
