"""spinefm.vertebrae: the locator grid's geometry, chain building, consecutive-label decoding, placing findings."""


import numpy as np
import pytest
import torch

from spinefm.bundle import load_bundle
from spinefm.heads.locator import DISC_CLASSES, LocatorConfig, SpineLocator
from spinefm.vertebrae import (DiscMark, Peak, SliceFrame, SpineLabels, adopt_levels, chain, decode, label_study,
                               locator_grid, regions_from_discs)

CFG = LocatorConfig()
BUNDLE = __import__("pathlib").Path(__file__).resolve().parents[2] / "models/bundles/spineagent-phantom-nano"
CROP_INDEX = 45  # seed 7: a 3-disc crop with no landmark, counted on its localizer (docs/models.md run)


def frame_headers(n=5, rows=100, cols=80, spacing=0.8, orientation=(0, 1, 0, 0, 0, -1)):
    o = np.array(orientation, dtype=float)
    normal = np.cross(o[:3], o[3:])
    return [{"ImagePositionPatient": list(10 * normal * k + np.array([0, -40, 60])), "ImageOrientationPatient": list(o),
             "PixelSpacing": [spacing, spacing], "SOPInstanceUID": f"1.{k}"} for k in range(n)]


@pytest.mark.parametrize("orientation", [(0, 1, 0, 0, 0, -1), (0, -1, 0, 0, 0, -1), (0, 1, 0, 0, 0, 1),
                                         (0, 0, -1, 0, 1, 0)])
def test_grid_turns_head_up_anterior_left_and_maps_back(orientation):
    heads = frame_headers(orientation=orientation)
    vol = np.random.default_rng(0).uniform(0, 100, (5, 100, 80)).astype(np.float32)
    vol[:, 8:13, 3:8] = 1000  # a bright spot around (10, 5)
    grid = locator_grid(heads, CFG, volume=vol)
    frame = SliceFrame.from_dataset(heads[2])
    p = frame.to_patient(10, 5)
    i, j = grid.from_patient(p)
    # the grid is head up (rows run to -z) and anterior left (columns run to +y)
    below, behind = grid.to_patient(i + 1, j), grid.to_patient(i, j + 1)
    assert below[2] < p[2] - 1.5 and behind[1] > p[1] + 1.5
    r, c = grid.to_original(i, j)
    assert abs(r - 10) < 1e-6 and abs(c - 5) < 1e-6
    assert grid.pixels[0, int(round(i)), int(round(j))] > 0.3  # the point is where the mapping says


def test_frame_projects_onto_the_slice_plane():
    f = SliceFrame.from_dataset(frame_headers()[0])
    p = f.to_patient(12.5, 7.0)
    assert f.to_pixel(p + np.array([3.0, 0, 0])) == pytest.approx((12.5, 7.0))  # off-plane: same pixel
    assert not SliceFrame.from_dataset({"ImagePositionPatient": [0, 0, 0]}).spacing_known


def peaks_at(rows, cols, scores=None):
    return [Peak(r, c, 1.0 if scores is None else scores[k], np.zeros(len(DISC_CLASSES)))
            for k, (r, c) in enumerate(zip(rows, cols))]


def test_chain_drops_peaks_off_the_spine():
    pts = peaks_at([0, 5, 10, 15, 20], [10, 11, 30, 12, 13], [0.9, 0.9, 0.5, 0.9, 0.9])
    assert [p.u for p in chain(pts, CFG)] == [0, 5, 15, 20]
    # a second peak in the same (wide) disc, beside the first: not a disc of the chain
    dup = peaks_at([0, 9, 9, 18, 27], [10, 10, 14, 11, 12], [0.9, 0.9, 0.6, 0.9, 0.9])
    assert [(p.u, p.v) for p in chain(dup, CFG)] == [(0, 10), (9, 10), (18, 11), (27, 12)]


def test_chain_follows_the_lumbosacral_turn():
    """Lordosis and the sacral angle bend the course by ~25-40 degrees at L5-S1: the last disc stays."""
    lumbar = peaks_at([0, 9, 18, 27, 35], [30, 28, 27, 27, 33])
    assert len(chain(lumbar, CFG)) == 5
    curve = peaks_at([0, 5, 10, 15, 20], [10, 12, 15, 19, 24])
    assert len(chain(curve, CFG)) == 5


def logp_with(n, anchor=None, at=0, sharp=8.0):
    lp = np.zeros((n, len(DISC_CLASSES)))
    if anchor is not None:
        lp[at, DISC_CLASSES.index(anchor)] = sharp
    return lp - np.log(np.exp(lp).sum(1, keepdims=True))


def test_decode_counts_from_a_landmark():
    """One confident landmark (L5-S1 at the last detection) names every disc above it by counting."""
    labels, post, run = decode(logp_with(5, "L5-S1", at=4), np.full(4, 35.0))
    assert [DISC_CLASSES[k] for k in labels] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert post.min() > 0.95 and run > 0.95


def test_decode_without_a_landmark_is_uncertain():
    labels, post, run = decode(logp_with(4), np.full(3, 25.0))
    assert post.max() < 0.2 and run < 0.2


def test_decode_allows_one_missed_disc_where_the_gap_says_so():
    lp = logp_with(4, "C2-C3", at=0)
    labels, post, _ = decode(lp, np.array([18.0, 37.0, 18.0]))  # the middle gap is two spacings
    assert [DISC_CLASSES[k] for k in labels] == ["C2-C3", "C3-C4", "C5-C6", "C6-C7"]
    labels, _, _ = decode(lp, np.array([18.0, 18.0, 18.0]))
    assert [DISC_CLASSES[k] for k in labels] == ["C2-C3", "C3-C4", "C4-C5", "C5-C6"]


def straight_labels(levels, gap=30.0, named=True):
    """A SpineLabels with discs every ``gap`` mm straight down (patient z), on a 1 mm grid."""
    heads = frame_headers(rows=400, cols=200, spacing=1.0)
    grid = locator_grid(heads, LocatorConfig(mm=1.0), volume=np.zeros((5, 400, 200), dtype=np.float32))
    frame = grid.frame
    discs = []
    for k, lv in enumerate(levels):
        r, c = 50 + k * gap, 100.0
        discs.append(DiscMark(lv if named else None, lv, 0.99, r, c, frame.to_patient(r, c).tolist(), 0.9))
    return SpineLabels("1", "1.2", discs, is_spine=True, grid=grid), frame


def test_level_at_places_findings_on_the_counted_discs():
    labels, frame = straight_labels(["L2-L3", "L3-L4", "L4-L5", "L5-S1"])
    at = lambda r, c=100.0: frame.to_patient(r, c)  # noqa: E731
    assert labels.level_at(at(50 + 60 + 3), "disc") == ("L4-L5", "")
    assert labels.level_at(at(50 + 75), "vertebra") == ("L5", "")        # between L4-L5 and L5-S1
    assert labels.level_at(at(50 - 12), "vertebra") == ("L2", "")        # just above the first disc
    assert labels.level_at(at(50 + 90 + 12), "vertebra") == ("S1", "")   # just below the last disc
    assert labels.level_at(at(50 + 15), "disc")[0] is None               # mid-vertebra: no disc level
    assert labels.level_at(at(50 - 80), "vertebra") == (None, "finding lies beyond the discs in view")
    assert labels.level_at(at(80, 100 + 150), "disc") == (None, "finding lies off the spine")
    assert labels.visible_levels() == ["L2", "L2-L3", "L3", "L3-L4", "L4", "L4-L5", "L5", "L5-S1", "S1"]


def test_uncertain_discs_name_no_level():
    labels, frame = straight_labels(["T5-T6", "T6-T7", "T7-T8"], named=False)
    assert labels.level_at(frame.to_patient(110, 100), "disc") == (None, "disc level uncertain")
    assert labels.level_at(frame.to_patient(95, 100), "vertebra") == (None, "level uncertain")
    assert labels.visible_levels() == [] and labels.uncertain


def test_regions_from_discs():
    assert regions_from_discs(["C3-C4", "C4-C5", "C5-C6", "C6-C7"]) == ("cervical",)
    assert regions_from_discs(["T10-T11", "T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]) == ("lumbar",)
    assert regions_from_discs(["T3-T4", "T4-T5"]) == ("thoracic",)  # too few for any region: the one with most
    assert regions_from_discs([]) == ()


def test_locator_shapes_and_fitted_flag():
    loc = SpineLocator(LocatorConfig(width=4))
    out = loc(torch.zeros(2, 1, 64, 48))
    assert out["heat"].shape == (2, 1, 32, 24) and out["level"].shape == (2, len(DISC_CLASSES), 32, 24)
    assert not loc.is_fitted and float(loc.temperature) == 1.0


def test_locator_learns_discs_on_phantoms(tmp_path):
    """A few dozen steps on varied phantoms: the heatmap rises at the discs and not elsewhere (the stage's code)."""
    from spinefm.train.locator import locator_examples, make_batch, locator_loss, train_locator

    cfg = LocatorConfig(width=6)
    examples = locator_examples(41, range(4), cfg, tmp_path) + locator_examples(1041, range(1), cfg, tmp_path, kind="knee")
    assert sum(len(d) for e in examples for _, _, d in e["series"]) > 10
    assert not examples[-1]["meta"]["spine"] and all(len(d) == 0 for _, _, d in examples[-1]["series"])
    loc = SpineLocator(cfg)
    rng = np.random.default_rng(5)
    batch = make_batch(examples, 8, rng)
    with torch.no_grad():
        before = locator_loss(loc(batch[0]), batch[1], batch[2])[1]
    train_locator(loc, examples, steps=120, batch=4, lr=5e-3, log_every=0)
    loc.eval()
    with torch.no_grad():
        out = loc(batch[0])
        after = locator_loss(out, batch[1], batch[2])[1]
        heat = torch.sigmoid(out["heat"])
    assert loc.is_fitted
    assert after["heat"] < before["heat"] and after["level"] < before["level"]
    at_discs, elsewhere = heat[batch[1] > 0.6].mean(), heat[batch[1] < 0.05].mean()
    assert at_discs > 3 * elsewhere, (at_discs, elsewhere)


def other_series(levels, patients, uid="loc", conf=0.97):
    """Another series' labels: named discs at the given patient points (no grid needed to be counted from)."""
    discs = [DiscMark(lv, lv, conf, 0.0, 0.0, list(p), 0.8) for lv, p in zip(levels, patients)]
    return SpineLabels(uid, f"{uid}.1", discs, is_spine=True)


def test_uncounted_discs_take_their_names_from_a_series_that_counted_them():
    """A crop with no landmark decodes a run of the right shape but cannot name it; the localizer (same
    frame of reference, a few mm off, another slice position) names the discs it shares, one shift for all,
    and the next disc beyond the matched ones follows from the run."""
    own, _ = straight_labels(["T3-T4", "T4-T5", "T5-T6", "T6-T7"], named=False)   # decoded two discs too high
    shift = np.array([4.0, 2.0, -3.0])  # another slice (x) and a little patient movement
    loc = other_series(["T5-T6", "T6-T7", "T7-T8"], [np.array(d.patient) + shift for d in own.discs[:3]])
    fused = adopt_levels(own, loc)
    assert [d.level for d in fused.discs] == ["T5-T6", "T6-T7", "T7-T8", "T8-T9"]
    assert fused.counted_on == "loc" and not fused.count_note and not fused.count_conflict
    assert {d.counted_on for d in fused.discs} == {"loc"} and min(d.confidence for d in fused.discs) == 0.97
    assert own.discs[0].level is None  # the series' own labels are not changed in place


def test_a_series_that_counts_differently_names_nothing():
    own, _ = straight_labels(["L2-L3", "L3-L4", "L4-L5"])  # the series named its discs itself
    other = other_series(["L3-L4", "L4-L5", "L5-S1"], [d.patient for d in own.discs])
    fused = adopt_levels(own, other)
    assert fused.count_conflict and "counts the discs differently" in fused.count_note
    agree = adopt_levels(own, other_series(["L2-L3", "L3-L4", "L4-L5"], [d.patient for d in own.discs]))
    assert not agree.count_conflict and not agree.count_note and not agree.counted_on  # confirmed, nothing adopted


def test_matches_that_do_not_line_up_or_lie_elsewhere_name_nothing():
    own, _ = straight_labels(["T3-T4", "T4-T5", "T5-T6"], named=False)
    pts = [np.array(d.patient) for d in own.discs]
    skipped = adopt_levels(own, other_series(["T6-T7", "T8-T9"], pts[:2]))  # two matches, two shifts
    assert [d.level for d in skipped.discs] == [None] * 3 and "do not line up" in skipped.count_note
    far = adopt_levels(own, other_series(["T6-T7", "T7-T8"], [p + np.array([0, 0, 14.0]) for p in pts[:2]]))
    assert [d.level for d in far.discs] == [None] * 3 and "lies on this series' discs" in far.count_note


def test_a_disc_the_series_missed_inside_its_view_is_added_from_the_other_series():
    own, frame = straight_labels(["L3-L4", "L4-L5"], named=False)
    below = frame.to_patient(50 + 2 * 30.0, 100.0)  # L5-S1, inside the image, not detected on this series
    loc = other_series(["L3-L4", "L4-L5", "L5-S1", "S1-S2"],
                       [own.discs[0].patient, own.discs[1].patient, below, frame.to_patient(5000, 100.0)])
    fused = adopt_levels(own, loc)
    assert [d.level for d in fused.discs] == ["L3-L4", "L4-L5", "L5-S1"]  # S1-S2 lies outside the image
    assert fused.discs[2].row == pytest.approx(110.0, abs=1e-6) and fused.discs[2].score == 0.0


def test_a_view_whose_series_finds_no_disc_takes_the_localizers_discs_that_lie_in_it():
    """A 6 cm view of one disc, cut at the edges: the detector finds nothing, the scout counted it. Its named
    discs inside this view (not at the border, not outside) are this view's discs, counted on the scout, and
    the scout's spine chain is the image evidence that this is a spine."""
    empty, frame = straight_labels([], named=False)
    empty.is_spine, empty.reason = False, "0 intervertebral disc(s) found on the images"
    inside, outside = frame.to_patient(200.0, 100.0), frame.to_patient(5000.0, 100.0)
    edge = frame.to_patient(1.0, 100.0)  # within BORDER_MM of the top edge: too close to trust
    fused = adopt_levels(empty, other_series(["L1-L2", "L3-L4", "L5-S1"], [edge, inside, outside]))
    assert [(d.level, d.counted_on) for d in fused.discs] == [("L3-L4", "loc")]
    assert fused.is_spine and not fused.reason and fused.counted_on == "loc"
    nothing = adopt_levels(empty, other_series(["L5-S1"], [outside]))
    assert not nothing.discs and not nothing.is_spine and "lies in this view" in nothing.count_note


def test_label_study_counts_a_crop_on_its_localizer():
    """The default bundle's locator on a held-out varied phantom whose diagnostic stack is a crop with no
    landmark: alone it names no disc; with the study's localizer every visible disc is named correctly."""
    from spinefm.train.coverage_eval import score_labels

    locator = load_bundle(BUNDLE).model.locator
    study, series, loc_uid = _crop_with_localizer()
    assert study.truth["anatomy"]["coverage_mode"] == "crop"
    localizer = next(x for x in study.series if x.series_instance_uid == loc_uid)
    assert localizer.series_instance_uid in [uid for uid, _ in series[1:]]
    spacing = next(x for x in study.series if x.series_instance_uid == series[0][0]).pixel_spacing[0]
    alone = label_study(locator, [x for x in series if x[0] != localizer.series_instance_uid])
    counted = label_study(locator, series)
    assert not score_labels(study.truth["anatomy"], alone, spacing)["all_correct"]
    assert score_labels(study.truth["anatomy"], counted, spacing)["all_correct"]
    assert counted.counted_on == localizer.series_instance_uid
    assert counted.counted_on_name == f"{localizer.description} (series 1)"


def _crop_with_localizer():
    import spine_phantom
    from spinefm.analyze import level_series
    from spinefm.train.coverage_eval import study_input
    from spinefm.train.locator import VARIED

    study = spine_phantom.generate_study(7, CROP_INDEX, spine_phantom.PhantomConfig(**VARIED, localizer_probability=1.0))
    localizer = next(x for x in study.series if x.sequence == "LOCALIZER").series_instance_uid
    return study, level_series(study_input(study)), localizer


def test_a_3_plane_localizer_is_counted_on_its_sagittal_images_and_a_broken_or_foreign_one_is_not():
    import copy

    from pydicom.uid import generate_uid

    locator = load_bundle(BUNDLE).model.locator
    study, series, loc_uid = _crop_with_localizer()
    loc = dict(series)[loc_uid]
    axial = copy.deepcopy(loc[0])  # a 3-plane localizer: its first instance axial, then the sagittal ones
    axial.ImageOrientationPatient, axial.SOPInstanceUID = [1, 0, 0, 0, 1, 0], generate_uid()
    three_plane = [(u, [axial] + ds if u == loc_uid else ds) for u, ds in series]
    assert label_study(locator, three_plane).counted_on == loc_uid

    broken = copy.deepcopy(loc)
    for ds in broken:
        ds.PixelData = ds.PixelData[:100]  # truncated pixel data
    labels = label_study(locator, [(u, broken if u == loc_uid else ds) for u, ds in series])
    assert labels.counted_on != loc_uid and f"series {loc_uid} could not be read" in labels.count_note

    moved = copy.deepcopy(loc)  # another frame of reference (the patient was set up again): positions do not compare
    for ds in moved:
        ds.FrameOfReferenceUID = "1.2.3.4"
    assert label_study(locator, [(u, moved if u == loc_uid else ds) for u, ds in series]).counted_on != loc_uid


def test_locator_training_examples_put_the_localizers_discs_on_its_own_grid():
    """A localizer's pixels are another grid: its training discs come from its own anatomy record, so they
    land where the same discs of the diagnostic stack are in patient space, not at the stack's pixel numbers."""
    import spine_phantom
    from spinefm.train.locator import VARIED, phantom_headers, study_example

    study = spine_phantom.generate_study(7, CROP_INDEX, spine_phantom.PhantomConfig(**VARIED, localizer_probability=1.0))
    ex = study_example(study, CFG)
    sequences = [seq for seq, _, _ in ex["series"]]
    assert sequences[-1] == "LOCALIZER"
    stack = next(s for s in study.series if s.sequence == "T2")
    loc = study.series[-1]
    g_stack = locator_grid(phantom_headers(stack), CFG, volume=stack.pixels)
    g_loc = locator_grid(phantom_headers(loc), CFG, volume=loc.pixels)
    stack_discs = {DISC_CLASSES[int(k)]: g_stack.to_patient(i, j) for i, j, k in ex["series"][sequences.index("T2")][2]}
    loc_discs = {DISC_CLASSES[int(k)]: g_loc.to_patient(i, j) for i, j, k in ex["series"][-1][2]}
    assert len(loc_discs) > len(stack_discs) >= 2  # the localizer shows more of the spine than the crop
    for lv, p in stack_discs.items():  # same disc, same place (y, z) in patient space
        assert np.linalg.norm((loc_discs[lv] - p)[1:]) < 3.0, lv
