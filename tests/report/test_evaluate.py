"""Label extraction fallback and the evaluation metrics."""

from spinefm.report.evaluate import bleu4, evaluate, rouge_l, table, word_edit_distance
from spinefm.report.labels import keyword_fallback_labels


def test_keyword_fallback_labels():
    lab = keyword_fallback_labels("L4-L5: There is disc herniation. No spinal canal stenosis.\n"
                                  "Possible bone marrow edema at L2; cannot be excluded.")
    assert lab["herniation"] == 1 and lab["canal"] == 0 and lab["edema"] == -1 and lab["fracture"] == 0


def test_metrics():
    ref = "L4-L5: There is disc herniation and spinal canal stenosis."
    assert bleu4([ref], [ref]) == 100.0 and rouge_l(ref, ref) == 100.0
    assert word_edit_distance(ref, ref) == 0
    assert word_edit_distance("a b c", "a x c d") == 2
    m = evaluate(["L4-L5: Disc herniation. Vertebral fracture at L1."], [ref])
    pc = m["per_condition"]
    assert pc["fracture"]["fp"] == 1 and pc["canal"]["omitted"] == 1 and pc["herniation"]["fp"] == 0
    assert m["fp"] == 1 and m["omitted"] == 1 and 0 < m["rougeL"] < 100
    md = table({"a": m, "b": m})
    assert "| fracture | 0/1 | 1 / 0 | 1 / 0 |" in md
