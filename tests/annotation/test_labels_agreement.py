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


# ---- Fleiss' kappa and the jackknife interval (issue 23) --------------------------------------------------------

from spine_labels import fleiss_kappa, jackknife_ci, pair_kappa, pair_kappa_ci  # noqa: E402

# Fleiss (1971) as reproduced on Wikipedia ("Fleiss' kappa", worked example): 10 subjects, 14 raters, 5
# categories; counts per subject and category. P-bar = 0.378, P-e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = [(0, 0, 0, 0, 14), (0, 2, 6, 4, 2), (0, 0, 3, 5, 6), (0, 3, 9, 2, 0), (2, 2, 8, 1, 1),
                  (7, 7, 0, 0, 0), (3, 2, 6, 3, 0), (2, 5, 3, 2, 2), (6, 5, 2, 1, 0), (0, 2, 2, 3, 7)]


def test_fleiss_textbook_value():
    ratings = [[c for c, n in enumerate(counts) for _ in range(n)] for counts in FLEISS_EXAMPLE]
    assert fleiss_kappa(ratings) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_undefined_and_varying_raters():
    assert math.isnan(fleiss_kappa([])) and math.isnan(fleiss_kappa([[1, 1], [1, 1, 1]]))
    # subjects rated by one rater only are ignored; 2 + 3 raters: P = 1 (11), 1/3 (110) -> P-bar 2/3;
    # shares over the 5 ratings: p1 = 4/5, p0 = 1/5 -> Pe = 17/25; kappa = (2/3 - 17/25) / (8/25) = -1/24
    assert fleiss_kappa([[1, 1], [1, 1, 0], [0]]) == pytest.approx(-1 / 24)


def test_jackknife_matches_brute_force_and_drops_degenerate_intervals():
    pairs = [(1, 1), (1, 0), (0, 0), (0, 0), (-1, 0), (1, 1), (0, -1)]
    est, low, high = jackknife_ci(pairs, pair_kappa)
    loo = [pair_kappa(pairs[:i] + pairs[i + 1:]) for i in range(len(pairs))]
    n, mean = len(pairs), sum(loo) / len(loo)
    se = math.sqrt((n - 1) / n * sum((v - mean) ** 2 for v in loo))
    assert est == pytest.approx(cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs]))
    assert (low, high) == (pytest.approx(max(-1, est - 1.959963984540054 * se)),
                           pytest.approx(min(1, est + 1.959963984540054 * se)))
    assert pair_kappa_ci(pairs) == (est, low, high)
    assert jackknife_ci(pairs[:1], pair_kappa)[1:] == (None, None)  # one item: no interval
    # B says 0 throughout: kappa 0 whatever A did, every leave-one-out too -> no interval
    assert pair_kappa_ci([(1, 0), (0, 0), (1, 0)]) == (0.0, None, None)
