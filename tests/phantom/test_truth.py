"""Ground truth: every condition drawn, boxes inside the image, labels match what was drawn."""

import numpy as np

from spinefm.conditions import CONDITION_KEYS
from spine_phantom import PhantomConfig, generate_study
from spine_phantom.physics import tissue_signals


def _check_truth_shape(study):
    t = study.truth
    assert t["synthetic"] is True and t["generator"].startswith("spine_phantom ")
    assert set(t["labels"]) == set(CONDITION_KEYS)
    assert set(t["labels"].values()) <= {-1, 0, 1}
    series = {s["series_instance_uid"]: s for s in t["series"]}
    for f in t["findings"]:
        assert f["condition"] in CONDITION_KEYS and f["label"] in (1, -1)
        assert f["severity"] in ("mild", "moderate", "severe")
        assert f["boxes"] and f["key_slices"] and f["visible_on"]
        for b in f["boxes"]:
            s = series[b["series_instance_uid"]]
            assert s["sop_instance_uids"][b["slice_index"]] == b["sop_instance_uid"]
            x0, y0, x1, y1 = b["box"]
            assert 0 <= x0 < x1 <= s["columns"] and 0 <= y0 < y1 <= s["rows"]
    for key in CONDITION_KEYS:
        labels = [f["label"] for f in t["findings"] if f["condition"] == key]
        expected = 1 if 1 in labels else (-1 if labels else 0)
        assert t["labels"][key] == expected
    assert {"text", "technique", "findings", "impression"} <= set(t["report"])


def test_every_condition_appears_with_boxes(loaded_studies):
    seen = set()
    for _, study in loaded_studies:
        _check_truth_shape(study)
        seen |= {f["condition"] for f in study.truth["findings"]}
    assert seen == set(CONDITION_KEYS), set(CONDITION_KEYS) - seen


def test_boxes_cover_drawn_tissue(loaded_studies):
    """Inside every box the tissue map differs from the normal twin, and the signal of that sequence too."""
    for cfg, study in loaded_studies:
        twin_cfg = PhantomConfig(regions=cfg.regions, normal=True, other_sequence_probability=1.0,
                                 image_size=cfg.image_size)
        twin = generate_study(study.seed, study.index, twin_cfg)
        uid_to = {s.series_instance_uid: s for s in study.series}
        for f in study.truth["findings"]:
            for b in f["boxes"]:
                s = uid_to[b["series_instance_uid"]]
                plane = s.plane
                if plane == "axial" and twin.plans["axial"].levels != study.plans["axial"].levels:
                    continue  # axial levels follow the findings; compare sagittal only
                x0, y0, x1, y1 = b["box"]
                abn = study.label_maps[plane][b["slice_index"], y0:y1, x0:x1]
                norm = twin.label_maps[plane][b["slice_index"], y0:y1, x0:x1]
                assert (abn != norm).any(), (f["condition"], b)
                lut = tissue_signals(s.protocol)
                assert (np.abs(lut[abn] - lut[norm]) > 0.05 * lut.max()).any(), (f["condition"], s.sequence)


def test_normal_study_has_no_boxes_and_negated_report():
    study = generate_study(5, 0, PhantomConfig(normal=True, regions=("lumbar",)))
    assert study.truth["findings"] == []
    text = study.truth["report"]["text"].lower()
    assert "impression" in text and "1." in study.truth["report"]["impression"]
    assert any(w in text for w in ("no ", "without", "unremarkable", "negative", "normal"))


def test_uncertain_findings_are_hedged():
    cfg = PhantomConfig(regions=("lumbar",), prevalence={k: 0.6 for k in CONDITION_KEYS}, uncertain_fraction=1.0,
                        image_size=(160, 160))
    hedges = ("possible", "questionable", "cannot exclude", "suggestion of", "equivocal", "not excluded", "may represent")
    n = 0
    for i in range(3):
        study = generate_study(13, i, cfg)
        for f in study.truth["findings"]:
            assert f["label"] == -1
            n += 1
        imp = study.truth["report"]["impression"].lower()
        if study.truth["findings"]:
            assert any(h in imp for h in hedges)
    assert n > 0


def test_report_structure(loaded_studies):
    for _, study in loaded_studies:
        r = study.truth["report"]
        assert r["text"].startswith("TECHNIQUE:") and "FINDINGS:" in r["text"] and "IMPRESSION:" in r["text"]
        lines = r["impression"].splitlines()
        assert all(line.split(".")[0].isdigit() for line in lines)
        for f in study.truth["findings"]:
            if "-" in f["level"]:
                assert f["level"] in r["findings"]
        # the technique names only series that exist
        if not any(s.sequence == "STIR" for s in study.series):
            assert "STIR" not in r["technique"]
