"""Operating points: validation gate, specificity thresholds, the head's calls, old bundles, the stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spinefm.heads.diagnosis import DiagnosisHead
from spinefm.results import AnalysisResult, Call, ConditionPrediction
from spinefm.train.operating_points import (NEVER, apply_operating_points, auroc_lower_bound, fit_operating_points,
                                            held_out_counts, specificity_threshold)


def held_out(n=200, seed=0):
    """Condition a: informative scores; b: pure noise; c: only 3 positives."""
    g = np.random.default_rng(seed)
    y = np.zeros((n, 3), dtype=int)
    y[: n // 4, 0] = 1
    y[:, 1] = g.integers(0, 2, n)
    y[:3, 2] = 1
    p = g.uniform(0, 0.6, (n, 3))
    p[: n // 4, 0] += 0.35  # positives of a score higher
    y[-5:, 0] = -1  # uncertain labels are ignored
    return p, y


def test_lower_bound_below_auroc_and_tighter_with_more_cases():
    small, large = auroc_lower_bound(0.7, 10, 10), auroc_lower_bound(0.7, 1000, 1000)
    assert small < large < 0.7
    assert large > 0.67 and small < 0.6
    # Hanley & McNeil's standard error for A = 0.5, 10 + 10: sqrt((0.25 + 9*(1/3-1/4) + 9*(1/3-1/4)) / 100)
    se = np.sqrt((0.25 + 18 * (1 / 3 - 0.25)) / 100)
    assert auroc_lower_bound(0.5, 10, 10, z=1.0) == pytest.approx(0.5 - se)


def test_specificity_threshold_keeps_the_asked_share_of_negatives_below():
    p = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97])
    y = np.array([0] * 10 + [1, 1])
    t = specificity_threshold(p, y, 0.8)
    assert 0.7 < t <= 0.8 and ((p[y == 0] < t).mean()) == pytest.approx(0.8)
    assert specificity_threshold(p, y, 1.0) == pytest.approx((0.9 + 0.95) / 2)
    assert specificity_threshold(p, y, 0.0) == pytest.approx(0.0)  # everything positive


def test_fit_validates_only_what_held_out_data_support():
    p, y = held_out()
    a, b, c = fit_operating_points(p, y, ["a", "b", "c"])
    assert a.validated and a.auroc > 0.8 and a.auroc_lower > 0.5 and a.n_pos == 50 and a.n_neg == 145
    assert a.possible <= a.present < NEVER
    keep = y[:, 0] >= 0
    neg = p[keep, 0][y[keep, 0] == 0]
    assert (neg < a.present).mean() >= 0.95 and (neg < a.possible).mean() >= 0.8
    assert not b.validated and b.present == NEVER and "chance" in b.reason
    assert not c.validated and c.auroc is None and "fewer than 5" in c.reason
    with pytest.raises(ValueError):
        fit_operating_points(p, y, ["a", "b", "c"], present_specificity=0.8, possible_specificity=0.9)


def test_head_calls_follow_the_points_and_counts_add_up():
    p, y = held_out()
    head = DiagnosisHead(4, ["a", "b", "c"])
    points = fit_operating_points(p, y, ["a", "b", "c"])
    apply_operating_points(head, points)
    a = points[0]
    probe = torch.tensor([a.present + 1e-3, 0.99, 0.99])
    assert head.statuses(probe) == [Call.PRESENT, Call.NOT_ASSESSED, Call.NOT_ASSESSED]
    assert head.statuses(torch.tensor([(a.present + a.possible) / 2, 0, 0]))[0] in (Call.POSSIBLE, Call.PRESENT)
    assert head.statuses(torch.tensor([a.possible - 1e-3, 0, 0]))[0] == Call.ABSENT
    counts = held_out_counts(p, y, head)
    pres = (p[:, 0] >= a.present)
    assert counts["asserted_true"] == int((pres & (y[:, 0] == 1)).sum())
    assert counts["asserted_false"] == int((pres & (y[:, 0] == 0)).sum())
    assert counts["validated_conditions"] == ["a"] and counts["n_pos"] == int((y == 1).sum())
    assert counts["false_findings_per_case"] == pytest.approx(counts["asserted_false"] / len(p))


def test_bundles_without_operating_points_load_with_their_old_behaviour():
    head = DiagnosisHead(4, ["a", "b"])
    state = {k: v for k, v in head.state_dict().items() if k not in ("possible_thresholds", "validated")}
    state["thresholds"] = torch.tensor([0.3, 0.7])
    fresh = DiagnosisHead(4, ["a", "b"])
    fresh.load_state_dict(state, strict=True)
    assert fresh.possible_thresholds.tolist() == pytest.approx([0.3, 0.7]) and fresh.validated.all()
    # no hedged band, nothing unassessed
    assert fresh.statuses(torch.tensor([0.31, 0.69])) == [Call.PRESENT, Call.ABSENT]


def test_results_carry_the_status_and_read_older_results():
    r = AnalysisResult("m", "1", True,
                       conditions=[ConditionPrediction("canal", 0.2, False, "L4-L5", Call.NOT_ASSESSED)])
    again = AnalysisResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.conditions[0].status == Call.NOT_ASSESSED
    old = r.to_dict()
    del old["conditions"][0]["status"]
    assert AnalysisResult.from_dict(old).conditions[0].status is None


def test_calibrate_stage_writes_points_into_a_bundle(tmp_path, capsys):
    from spinefm.bundle import load_bundle
    from spinefm.cli import main

    common = ["--data", "random", "--n-cases", "24", "--img-size", "32", "--depth", "1", "--proj-dim", "16",
              "--max-slices", "3", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache"), "--no-progress",
              "--threads", "1"]
    assert main(["heads", "--out", str(tmp_path / "heads"), "--diag-steps", "30", "--seg-steps", "1", *common]) == 0
    assert main(["calibrate", "--init", str(tmp_path / "heads"), "--out", str(tmp_path / "cal"), "--splits", "train,test",
                 "--min-cases", "2", "--version", "9.9.9", "--eval-seed", "7", *common]) == 0
    b = load_bundle(tmp_path / "cal")
    record = b.manifest["operating_points"]
    assert b.manifest["version"] == "9.9.9" and record["splits"] == "train,test" and record["n_cases"] == 24
    assert [p["condition"] for p in record["points"]] == list(b.model.cfg.conditions)
    validated = [p["validated"] for p in record["points"]]
    assert b.model.diagnosis.validated.tolist() == validated
    # the toy blob makes the first condition learnable; the rest are random labels
    assert record["points"][0]["auroc"] is not None
    # counted before/after on the calibration cases and on the eval cases (random data: its test split)
    assert len(record["counts"]) == 4 and record["counts"]["eval seed 7, after"]["n_cases"] == 6
    assert (tmp_path / "cal-calibration" / "calibration.md").read_text().startswith("| condition |")
    assert "false findings / case" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["calibrate", "--init", str(tmp_path / "heads"), "--out", str(tmp_path / "none"), "--splits", "val", *common])
    with pytest.raises(SystemExit, match="possible-specificity"):
        main(["calibrate", "--init", str(tmp_path / "heads"), "--out", str(tmp_path / "none"),
              "--present-specificity", "0.7", "--possible-specificity", "0.9", *common])
    with pytest.raises(SystemExit, match="evaluation seed"):
        main(["calibrate", "--init", str(tmp_path / "heads"), "--out", str(tmp_path / "none"), "--data", "phantom",
              "--phantom-seed", "7", "--eval-seed", "7"])


def test_rule_out_needs_a_held_out_sensitivity_lower_bound():
    """A normal statement is supported only where calling 'possible' catches nearly every held-out positive."""
    from spinefm.train.operating_points import confusion

    g = np.random.default_rng(3)
    n = 400
    y = np.zeros((n, 2), dtype=int)
    y[:100] = 1
    p = g.uniform(0, 0.5, (n, 2))
    p[:100, 0] += 0.5           # a: every positive scores above every negative -> sensitivity 1.0 at 80% spec
    p[:100, 1] += 0.12          # b: informative (validated) but many positives fall below 'possible'
    a, b = fit_operating_points(p, y, ["a", "b"])
    assert a.validated and b.validated
    assert a.rule_out and a.at_possible["sensitivity"]["value"] == 1.0 and a.at_possible["sensitivity"]["ci95"][0] > 0.9
    assert not b.rule_out and "sensitivity" in b.rule_out_reason and b.at_possible["sensitivity"]["value"] < 0.9
    # NPV / PPV at the calibration prevalence, with Wilson intervals
    c = confusion(np.array([0.9, 0.8, 0.1, 0.2, 0.7]), np.array([1, 1, 0, 0, 0]), 0.5)
    assert c["sensitivity"]["value"] == 1.0 and c["specificity"]["value"] == pytest.approx(2 / 3)
    assert c["ppv"]["value"] == pytest.approx(2 / 3) and c["npv"]["value"] == 1.0 and c["npv"]["n"] == 2
    lo, hi = c["npv"]["ci95"]
    assert 0 < lo < 1.0 and hi == 1.0
    # the head carries it, analyze reports it, old bundles never rule out
    head = DiagnosisHead(4, ["a", "b"])
    apply_operating_points(head, [a, b])
    assert head.rule_out.tolist() == [True, False]
    old = {k: v for k, v in head.state_dict().items() if k != "rule_out"}
    fresh = DiagnosisHead(4, ["a", "b"])
    fresh.load_state_dict(old)
    assert fresh.rule_out.tolist() == [False, False]
