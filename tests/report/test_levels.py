"""Levels in drafts: the template writes findings level by level; the evaluation checks draft levels."""

from spinefm.report import make_drafter
from spinefm.train.report_eval import evaluate, level_agreement, table
from spinefm.report.labels import load_labeler
from spinefm.results import AnalysisResult, Box, ConditionPrediction, SeriesUsed

from .conftest import make_result

RULES = load_labeler("rules")  # the annotation package's rule labeler, found by its entry point


def test_template_groups_findings_by_predicted_level():
    r = AnalysisResult("spinefm", "t", True,
                       conditions=[ConditionPrediction("herniation", 0.9, True, "L5-S1"),
                                   ConditionPrediction("canal", 0.9, True, "L5-S1"),
                                   ConditionPrediction("subarticular", 0.9, True, "L3-L4"),
                                   ConditionPrediction("fracture", 0.9, True, None)],
                       boxes=[Box("fracture", "1.2", "1.2.1", [1, 2, 3, 4], 0.5, "T12")],
                       series=[SeriesUsed("1.2", "T2", "sagittal", "t2", 15)])
    text = make_drafter({"backend": "template"}).draft(r)
    lines = text.splitlines()
    l34 = next(i for i, x in enumerate(lines) if x.startswith("L3-L4:"))
    l5s1 = next(i for i, x in enumerate(lines) if x.startswith("L5-S1:"))
    assert l34 < l5s1  # cranio-caudal
    assert "Disc herniation" in lines[l5s1] and "Spinal canal stenosis" in lines[l5s1]
    # a vertebral finding without a condition level takes its box's level
    assert "Vertebral fracture at T12" in text and "level not localised" not in text.lower()


def test_level_agreement_counts_matching_levels():
    ref = "FINDINGS:\nL4-L5: Disc herniation.\nL1: Vertebral fracture."
    right = "FINDINGS:\nL4-L5: Disc herniation.\nVertebral bodies and marrow: Vertebral fracture at L1."
    wrong = "FINDINGS:\nL2-L3: Disc herniation.\nVertebral bodies and marrow: Vertebral fracture at L3."
    labels = [{"herniation": 1, "fracture": 1}]
    levels = [{"herniation": ["L4-L5"], "fracture": ["L1"]}]
    assert level_agreement([right], [ref], labels, levels, labeler=RULES) == {"level_agree": 1.0, "level_n": 2}
    assert level_agreement([wrong], [ref], labels, levels, labeler=RULES) == {"level_agree": 0.0, "level_n": 2}
    # without given reference levels they are parsed from the reference text
    assert level_agreement([right], [ref], labels, labeler=RULES)["level_agree"] == 1.0
    # a condition the draft omits is not a level disagreement (it is counted as omitted)
    only_one = "FINDINGS:\nL2-L3: Disc herniation."
    assert level_agreement([only_one], [ref], labels, levels, labeler=RULES) == {"level_agree": 0.0, "level_n": 1}
    m = evaluate([right, wrong], [ref, ref], labels * 2, levels * 2, labeler=RULES)
    assert m["level_agree"] == 0.5 and m["level_n"] == 4
    assert "| 0.50 (4) |" in table({"x": m})


def test_level_agreement_of_template_drafts_uses_the_predicted_levels():
    result = make_result()
    draft = make_drafter({"backend": "template"}).draft(result)
    ref = "L4-L5: Disc herniation and spinal canal stenosis. L1: Vertebral fracture."
    truth = [{"canal": 1, "herniation": 1, "fracture": 1}]
    m = level_agreement([draft], [ref], truth, [{"canal": ["L4-L5"], "herniation": ["L4-L5"], "fracture": ["L1"]}], labeler=RULES)
    assert m["level_n"] >= 2 and m["level_agree"] == 1.0
    moved = [{"canal": ["L2-L3"], "herniation": ["L2-L3"], "fracture": ["L3"]}]
    assert level_agreement([draft], [ref], truth, moved, labeler=RULES)["level_agree"] == 0.0
