"""The held-out level measurement: how detections are scored against the generator's discs, and the table."""

import numpy as np

from spinefm.train.coverage_eval import coverage_markdown, evaluate_coverage, match, summarize_coverage
from spinefm.vertebrae import DiscMark

TRUTH = {"discs": {"L2-L3": [100.0, 50.0], "L3-L4": [140.0, 50.0], "L4-L5": [180.0, 50.0], "L5-S1": [220.0, 52.0]},
         "visible_discs": ["L3-L4", "L4-L5", "L5-S1"]}  # L2-L3 lies just beyond the visible margin


def mark(level, r, c=50.0):
    return DiscMark(level, level or "x", 0.99, r, c, [0.0, 0.0, 0.0], 0.9)


def test_match_scores_each_visible_disc_once():
    m = match(TRUTH, [mark("L3-L4", 141), mark("L4-L5", 178), mark("L5-S1", 221)], spacing=1.0)
    assert (m["correct"], m["wrong"], m["uncertain"], m["missed"], m["extra_named"]) == (3, 0, 0, 0, 0)
    m = match(TRUTH, [mark("L2-L3", 141), mark(None, 178)], spacing=1.0)
    assert (m["correct"], m["wrong"], m["uncertain"], m["missed"], m["within_one"]) == (0, 1, 1, 1, 1)
    # 20 mm from two discs is neither of them (tolerance: 0.45 of the 40 mm spacing)
    assert match(TRUTH, [mark("L3-L4", 160)], spacing=1.0)["missed"] == 3


def test_named_detections_off_the_visible_discs():
    # the cut disc at the edge named right is harmless; a disc named where there is none is a wrong level shown
    m = match(TRUTH, [mark("L2-L3", 103), mark("L3-L4", 140), mark("L4-L5", 180), mark("L5-S1", 220)], spacing=1.0)
    assert (m["edge_named"], m["extra_named"], m["correct"]) == (1, 0, 3)
    m = match(TRUTH, [mark("L1-L2", 103), mark("L3-L4", 140), mark("T5-T6", 300)], spacing=1.0)
    assert m["extra_named"] == 2 and m["edge_named"] == 0


def test_evaluation_runs_end_to_end_on_phantoms(tiny_cfg):
    """An untrained locator finds nothing: every study fails, every non-spine phantom is refused."""
    import torch

    from spinefm.model import SpineFM

    torch.manual_seed(0)
    model = SpineFM(tiny_cfg)
    res = evaluate_coverage(model, 91, 2, None, n_nonspine=2, n_boot=10, frequent_level="L4-L5")
    L = res["locator"]
    assert res["n_studies"] == 2 and res["n_discs"] > 0
    assert L["studies_all_correct"]["value"] == 0.0 and L["missed"]["value"] == 1.0
    assert res["region"]["nonspine_refused"]["value"] == 1.0 and res["region"]["blank_tags_dicom_unknown"]["value"] == 1.0
    assert res["region"]["reported_vs_ordered"]["value"] == 1.0  # the tags as written name the ordered region
    assert 0.0 <= res["baseline_most_frequent"]["exact"]["value"] <= 1.0
    md = coverage_markdown(res)
    assert "SYNTHETIC" in md and "studies with every visible level correct" in md and "most frequent level (L4-L5)" in md
    assert summarize_coverage(res)["locator"]["studies_all_correct"]["k"] == 0
    assert np.isfinite(res["findings_at_truth_box"]["n"])
