"""The report labeler found by name (never imported by the model library) and the evaluation metrics."""

import pytest

from spinefm.train.report_eval import bleu4, evaluate, rouge_l, table, word_edit_distance
from spinefm.report.labels import GROUP, LabelerUnavailable, installed, load_labeler

RULES = load_labeler("rules")


def test_the_rule_labeler_is_found_by_its_entry_point():
    assert {"rules", "llm"} <= set(installed()) and RULES.name.startswith("spine_labels")
    lab = RULES.labels("L4-L5: There is disc herniation. No spinal canal stenosis.\n"
                       "Possible bone marrow edema at L2; cannot be excluded.")
    assert lab["herniation"] == 1 and lab["canal"] == 0 and lab["edema"] == -1 and lab["fracture"] == 0
    assert RULES.levels("L4-L5: There is disc herniation.")["herniation"] == ["L4-L5"]
    with pytest.raises(LabelerUnavailable, match=GROUP):
        load_labeler("no-such-labeler")


def test_the_model_library_never_imports_the_annotation_package():
    """Dependencies point one way: models/ finds labelers by entry point, it has no import of spine_labels."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "models"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(root)}: {n}" for n in names
                          if n.split(".")[0] in ("spine_labels", "backend", "annotation")]
    assert offenders == []


def test_metrics():
    ref = "L4-L5: There is disc herniation and spinal canal stenosis."
    assert bleu4([ref], [ref]) == 100.0 and rouge_l(ref, ref) == 100.0
    assert word_edit_distance(ref, ref) == 0
    assert word_edit_distance("a b c", "a x c d") == 2
    m = evaluate(["L4-L5: Disc herniation. Vertebral fracture at L1."], [ref], labeler=RULES)
    pc = m["per_condition"]
    assert pc["fracture"]["fp"] == 1 and pc["canal"]["omitted"] == 1 and pc["herniation"]["fp"] == 0
    assert m["fp"] == 1 and m["omitted"] == 1 and 0 < m["rougeL"] < 100
    md = table({"a": m, "b": m})
    assert "| fracture | 0/1 | 1 / 0 | 1 / 0 |" in md
