"""Kappa and accuracy helpers on known values (checked against sklearn)."""

import math

import pytest
from sklearn.metrics import cohen_kappa_score

from spine_labels import cohen_kappa, confusion, evaluate, extract_labels, format_table


def test_kappa_textbook_value():
    # 2x2 example: po = 0.7, pe = 0.5 -> kappa = 0.4
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_ternary_matches_sklearn():
    a = [1, 0, -1, 1, 0, 0, 1, -1, 0, 1, 0, 0]
    b = [1, 0, 0, 1, -1, 0, 1, -1, 0, 0, 0, 1]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(a, a) == pytest.approx(1.0)


def test_kappa_undefined_is_nan_and_length_checked():
    assert math.isnan(cohen_kappa([0, 0, 0], [0, 0, 0]))
    with pytest.raises(ValueError):
        cohen_kappa([1, 0], [1])


def test_kappa_per_condition_over_label_sets():
    r1 = [{"canal": 1, "fracture": 0}, {"canal": 0, "fracture": 1}, {"canal": 1, "fracture": 0}]
    r2 = [extract_labels("Mild canal stenosis."), extract_labels("Possible fracture."), {"canal": 1, "fracture": 0}]
    k = cohen_kappa(r1, r2)
    assert k["canal"] == pytest.approx(1.0)
    assert k["fracture"] == pytest.approx(cohen_kappa_score([0, 1, 0], [0, -1, 0]))


def test_confusion_and_metrics():
    truth = [1, 1, 1, 0, 0, 0, 0, -1]
    pred = [1, 1, 0, 0, 0, 1, -1, -1]
    c = confusion(truth, pred)
    assert c[(1, 1)] == 2 and c[(1, 0)] == 1 and c[(0, 1)] == 1 and c[(0, -1)] == 1 and c[(-1, -1)] == 1
    assert sum(c.values()) == 8
    m = evaluate([{"canal": t} for t in truth], [{"canal": p} for p in pred])["canal"]
    assert m.accuracy == pytest.approx(5 / 8)
    assert m.sensitivity == pytest.approx(2 / 3)
    assert m.specificity == pytest.approx(2 / 4)
    assert (m.n_present, m.n_absent, m.n_uncertain) == (3, 4, 1)
    assert m.kappa == pytest.approx(cohen_kappa_score(truth, pred))
    table = format_table({"canal": m})
    assert "| canal | 8 | 3/4/1 | 0.625 | 0.667 | 0.500 |" in table


def test_sensitivity_undefined_without_positives():
    m = evaluate([{"cyst": 0}], [{"cyst": 0}])["cyst"]
    assert math.isnan(m.sensitivity) and m.specificity == 1.0
    assert "n/a" in format_table({"cyst": m})
