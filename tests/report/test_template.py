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
    assert text.startswith("TECHNIQUE: MRI of the lumbar spine. Sequences: sagittal T2, sagittal T1.\n")
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
    lines = [l for l in impression.strip().splitlines() if l[:1].isdigit()]
    assert lines[0].startswith("1. Vertebral fracture at L1.") and "clinical correlation" in lines[0]
    assert lines[-2].startswith(f"{len(lines) - 1}. Possible")
    assert lines[-1].startswith(f"{len(lines)}. 2 conditions were not assessed by the model")  # cyst, compression


def test_no_findings_and_no_series():
    text = TemplateDrafter().draft(AnalysisResult("m", "v", True))
    assert "MRI of the spine." in text and "Sequences" not in text
    assert "1. The model called no finding." in text and "No abnormality" not in text


def test_the_last_line_names_the_model_and_synthetic_training(result):
    text = TemplateDrafter().draft(result)
    assert text.splitlines()[-1] == ("Draft by spinefm version test, a model trained on synthetic phantom data only; "
                                     "for radiologist review, not a final report.")
    result.synthetic_training, result.model_version = False, "2.0"
    assert TemplateDrafter(disclaimer=True).draft(result).splitlines()[-1] == (
        "Draft by spinefm version 2.0; for radiologist review, not a final report.")


def test_technique_names_region_series_read_and_levels_in_view(result):
    from spinefm.results import SeriesUsed

    result.region, result.regions = "cervical", ["cervical"]
    result.series = [SeriesUsed("1", "T2", "sagittal", "t2", 15, "t2_tse_sag", "T2"),
                     SeriesUsed("2", "DIXON", "sagittal", "t2", 15, "t2_tse_dixon_sag_W", "Dixon water"),
                     SeriesUsed("3", "OTHER", "sagittal", "synthesizer", 15, "t1_tse_fs_sag_post", "post-contrast T1")]
    result.coverage = ["C2", "C2-C3", "C3", "C3-C4", "C4", "C4-C5", "C5", "C5-C6", "C6", "C6-C7", "C7", "C7-T1", "T1"]
    first = TemplateDrafter().draft(result).splitlines()[0]
    assert first == ("TECHNIQUE: MRI of the cervical spine. Sequences: sagittal T2 (t2_tse_sag), sagittal Dixon water "
                     "(t2_tse_dixon_sag_W), sagittal post-contrast T1 (t1_tse_fs_sag_post). Levels in view: C2 to T1.")
    # a region never comes from finding levels: thoracic levels in the result do not make a thoracic technique
    result.region = ""
    for c in result.conditions:
        c.level = "T7-T8"
    assert TemplateDrafter().draft(result).startswith("TECHNIQUE: MRI of the spine.")


def test_region_disagreement_is_shown(result):
    result.region_disagreement = "DICOM (BodyPartExamined) says lumbar spine; the images show the cervical spine"
    lines = TemplateDrafter().draft(result).splitlines()
    assert lines[1] == ("REGION: DICOM (BodyPartExamined) says lumbar spine; the images show the cervical spine; "
                        "verify the region and the levels.")


def test_level_uncertain_is_said_instead_of_a_level(result):
    for c in result.conditions:
        if c.condition == "canal":
            c.level, c.level_uncertain = None, True
    result.boxes[0].level, result.boxes[0].level_uncertain = "T7-T8", True  # a box level the analysis dropped
    text = TemplateDrafter().draft(result)
    assert "Level uncertain: Spinal canal stenosis (key image: T2 sagittal slice 8)." in text
    assert "T7-T8" not in text and "Spinal canal stenosis (level uncertain)." in text


def test_normal_statements_only_where_ruled_out(result):
    """'Alignment is maintained' only when the held-out operating point supports ruling it out."""
    calls = {"canal": "present", "fracture": "present"}
    absent = [c for c in result.conditions if c.condition not in calls]
    from spinefm.results import ConditionPrediction

    result.conditions += [ConditionPrediction("spondylolisthesis", 0.1, False, status="absent"),
                          ConditionPrediction("par", 0.1, False, status="absent")]
    with_calls(result, calls)
    text = TemplateDrafter().draft(result)
    assert "Vertebral alignment is maintained." not in text
    assert "Alignment: Not assessed by the model; review on the images." in text
    for c in result.conditions:
        c.rule_out = c.condition in ("spondylolisthesis", "par") or c in absent
    text = TemplateDrafter().draft(result)
    assert "Alignment: Vertebral alignment is maintained." in text and "not assessed" not in text.lower()


def test_draft_record_and_errors(result):
    rec = make_drafter({"backend": "template", "margin": 0.0}).draft_record(result)
    assert rec.backend == "template" and rec.tag.startswith("template:")
    assert rec.settings["margin"] == 0.0
    assert "Possible disc herniation" not in rec.text
    with pytest.raises(ValueError, match="unknown report backend"):
        make_drafter({"backend": "nope"})
    with pytest.raises(FileNotFoundError, match="report agent"):
        make_drafter({"backend": "llava"})


def with_calls(result, calls: dict, rule_out: bool = False) -> AnalysisResult:
    """The fixture result with the bundle's own calls (operating points) set per condition."""
    for c in result.conditions:
        c.status = calls.get(c.condition, "absent")
        c.present = c.status == "present"
        c.rule_out = rule_out
    return result


def test_bundle_calls_replace_the_global_margin(result):
    """A result that carries calls is written as called: the hedge band is the bundle's, not 0.5 +- margin."""
    text = TemplateDrafter().draft(with_calls(result, {"canal": "present", "herniation": "absent",
                                                       "neuroforaminal": "possible", "fracture": "present"},
                                              rule_out=True))
    assert "Spinal canal stenosis (key image" in text and "herniation" not in text.lower()
    assert "Possible neural foraminal narrowing; cannot be excluded." in text
    assert "not assessed" not in text.lower()


def test_unassessed_conditions_are_counted_never_called_normal(result):
    from spinefm.report.labels import load_labeler

    extract_labels = load_labeler("rules").labels

    text = TemplateDrafter().draft(with_calls(result, {"canal": "not_assessed", "herniation": "not_assessed",
                                                       "fracture": "not_assessed", "cyst": "not_assessed",
                                                       "neuroforaminal": "present"}, rule_out=True))
    findings, impression = text.split("IMPRESSION:")
    # the section normals that would assert the unassessed conditions are gone, the others stay
    assert "No disc herniation, canal or foraminal narrowing" not in findings
    assert "No marrow edema or fracture" not in findings
    assert "Alignment" not in findings  # no alignment condition in this result: nothing to say, least of all "normal"
    # counted per section, not named: a named condition reads as a finding to a labeler
    assert "Levels: 2 of 4 conditions not assessed by the model; review on the images." in findings
    assert "Vertebral bodies and marrow: Not assessed by the model; review on the images." in findings
    assert "Other: Not assessed by the model; review on the images." in findings
    lines = [l for l in impression.strip().splitlines() if l[:1].isdigit()]
    assert lines[0].startswith("1. Neural foraminal narrowing")
    assert lines[-1] == ("2. 4 conditions were not assessed by the model (not validated on held-out data, or not ruled "
                         "out at its held-out operating point); review them on the images.")
    # the rule labeler reads no finding into the draft beyond what it calls
    labels = extract_labels(text)
    assert all(labels[k] != 1 for k in ("canal", "herniation", "fracture", "cyst")) and labels["neuroforaminal"] == 1


def test_prompt_lists_calls_and_unassessed(result):
    from spinefm.report.prompt import agent_tokens

    tokens = agent_tokens(with_calls(result, {"canal": "present", "fracture": "not_assessed"}))
    assert "- Spinal canal stenosis: 0.86 present" in tokens and "Vertebral fracture:" not in tokens.split("Not assessed")[0]
    assert "Not assessed by the model (not validated): Vertebral fracture." in tokens


def test_every_backends_text_gets_the_model_line_once(result):
    """analyze appends the line to any backend's text (an LLM's too), never twice."""
    from spinefm.report.findings import model_line, with_model_line

    llm_text = "FINDINGS:\nL4-L5: Disc herniation.\n\nIMPRESSION:\n1. Disc herniation at L4-L5.\n"
    once = with_model_line(llm_text, result)
    assert once.endswith("\n\n" + model_line(result)) and once.count("Draft by") == 1
    assert with_model_line(once, result) == once
    assert with_model_line(TemplateDrafter().draft(result), result).count("Draft by") == 1
