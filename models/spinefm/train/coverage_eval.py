"""Held-out measurement of levels and region on varied-acquisition phantoms (SYNTHETIC).

For every study of a phantom seed never trained on (random coverage, FOV, spacing,
rotation, intensity, transitional vertebrae, a localizer), the levels are counted as ``analyze``
counts them (``analyze.level_series`` + ``vertebrae.label_study``: the read sagittal series, named
from the localizer or another series when it cannot count itself), read through the DICOM files,
once with the study's localizer and once without it, and scored against the discs the generator
measured:

- per visible disc: named and correct, named and wrong, left "level uncertain", missed;
  exact and within one level;
- per study: every visible disc named correctly with no wrong name anywhere (the issue's
  target), and "no wrong level named" (what a reader is shown is never wrong);
- baselines on the same discs: the previous bundle's level head (case embedding + the disc's
  position, as ``analyze`` used it) and the most frequent training finding level;
- region: DICOM (as written), the image estimate (regions with most of their discs named),
  and the image estimate alone on the same studies with blank region tags, plus the share
  of studies the images confirm as spine and of knee / brain phantoms they refuse;
- levels of true findings at their ground-truth box centres: locator vs the level head.

Proportions carry Wilson 95% intervals; per-disc rates a study-resampling bootstrap.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import torch

from ..conditions import DISC_LEVEL, get_condition
from ..heads.level import level_position
from ..intake import decide_region, region_from_headers
from ..analyze import level_series
from ..vertebrae import SliceFrame, label_series, label_study, regions_from_discs
from . import metrics as M

log = logging.getLogger("spinefm.train.coverage_eval")


def study_input(study):
    """A phantom study as the backend hands it to ``analyze`` (its DICOM datasets, grouped and ordered)."""
    from ..study import StudyInput

    return StudyInput.from_datasets([d for x in study.series for d in x.datasets()])


def score_labels(anatomy: dict, labels, spacing: float) -> dict:
    """``match`` plus the per-study verdicts: every visible disc correct, no wrong level anywhere."""
    m = match(anatomy, labels.discs, spacing)
    m["all_correct"] = m["n"] > 0 and m["correct"] == m["n"] and m["extra_named"] == 0
    m["no_wrong"] = m["wrong"] == 0 and m["extra_named"] == 0
    return m


def match(truth: dict, discs: list, spacing: float) -> dict:
    """Truth visible discs vs detected ones (original pixels of the same grid)."""
    names = truth["visible_discs"]
    pos = {lv: np.array(truth["discs"][lv]) for lv in names}
    det = [np.array([d.row, d.col]) for d in discs]
    used: set[int] = set()
    out = {"correct": 0, "wrong": 0, "uncertain": 0, "missed": 0, "within_one": 0, "n": len(names),
           "extra_named": 0, "edge_named": 0, "pairs": []}
    ordered = [lv for lv in truth["discs"] if lv in pos]
    for k, lv in enumerate(ordered):
        nb = [pos[o] for o in ordered[max(0, k - 1): k + 2] if o != lv]
        gap = min(float(np.linalg.norm(pos[lv] - p)) for p in nb) * spacing if nb else 30.0
        tol = 0.45 * gap
        dists = [float(np.linalg.norm(pos[lv] - d)) * spacing if j not in used else np.inf for j, d in enumerate(det)]
        j = int(np.argmin(dists)) if dists else -1
        if j < 0 or dists[j] > tol:
            out["missed"] += 1
            out["pairs"].append((lv, None))
            continue
        used.add(j)
        name = discs[j].level
        out["pairs"].append((lv, name))
        if name is None:
            out["uncertain"] += 1
        elif name == lv:
            out["correct"] += 1
            out["within_one"] += 1
        else:
            out["wrong"] += 1
            out["within_one"] += int(abs(level_position(name) - level_position(lv)) <= 1.0)
    # a named detection that matches no visible disc: harmless only if it names the disc truly there
    # (a disc cut by the image edge, centre just outside the visible margin), else a wrong level shown
    every = {lv: np.array(rc) for lv, rc in truth["discs"].items()}
    for j, d in enumerate(discs):
        if j in used or not d.level:
            continue
        near = min(every, key=lambda lv: float(np.linalg.norm(every[lv] - det[j])))
        if near == d.level and float(np.linalg.norm(every[near] - det[j])) * spacing <= 10.0:
            out["edge_named"] += 1
        else:
            out["extra_named"] += 1
    return out


@torch.no_grad()
def _old_head_levels(bundle, datasets, series_uid: str, points: list[tuple[float, float]]) -> list[str | None]:
    """The previous bundle's level head at each (row, col) of the series: case embedding + normalised position."""
    from ..analyze import case_vector, choose_series, embed_series
    from ..data import record_from_study_input
    from ..study import StudyInput

    model = bundle.model.eval()
    record = record_from_study_input(StudyInput.from_datasets(datasets), model.cfg.preprocess)
    chosen = choose_series(record)
    if not chosen or not model.level.is_fitted:
        return [None] * len(points)
    case = case_vector(embed_series(model, chosen))
    target = next((s for s in chosen if s.series_instance_uid == series_uid), chosen[0])
    out = []
    for r, c in points:
        x0, y0, x1, y1 = target.geometry.to_normalized([c, r, c + 1, r + 1])
        out.append(model.level.predict(case, torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2]), "herniation")[0])
    return out


def evaluate_coverage(model, seed: int, n: int, phantom_config: dict | None, progress: bool = False,
                      baseline=None, frequent_level: str | None = None, n_nonspine: int = 40, n_boot: int = 200) -> dict:
    """The coverage table of ``model.locator`` (and of ``baseline``, an older Bundle, on the same discs)."""
    import spine_phantom
    from spine_phantom.nonspine import generate_nonspine

    from .locator import VARIED

    # every study has its localizer and is scored with and without it (``alone``), whatever share of the
    # training studies had one: the held-out set stays the same bytes across bundles
    pcfg = {**(phantom_config or VARIED), "localizer_probability": 1.0}
    locator = model.locator.eval()
    rows, finding_rows = [], []
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="coverage", leave=False)
    for i in it:
        study = spine_phantom.generate_study(seed, i, spine_phantom.PhantomConfig(**pcfg))
        anatomy = study.truth["anatomy"]
        as_read = study_input(study)  # every instance encoded once, as DICOM
        series = level_series(as_read)
        s = next(x for x in study.series if x.series_instance_uid == series[0][0])
        by_sop = {str(d.SOPInstanceUID): d for d in series[0][1]}
        localizers = {x.series_instance_uid: x.protocol.kind for x in study.series if x.sequence == "LOCALIZER"}
        labels = label_study(locator, series)
        m = score_labels(anatomy, labels, s.pixel_spacing[0])
        alone = score_labels(anatomy, label_study(locator, [x for x in series if x[0] not in localizers]),
                             s.pixel_spacing[0]) if localizers else m
        named = [d.level for d in labels.named]
        image = regions_from_discs(named)
        dicom = region_from_headers([x.datasets[0] for x in as_read.series])
        study.truth["region_tags"] = False  # the same study exported again with blank region tags
        blank = region_from_headers([x.datasets()[0] for x in study.series])
        decision = decide_region(dicom, image, labels.not_confirmed)
        blank_decision = decide_region(blank, image, labels.not_confirmed)
        row = {"index": i, "variant": anatomy["variant"], "mode": anatomy["coverage_mode"], "n_visible": m["n"],
               "truth_regions": list(regions_from_discs(anatomy["visible_discs"])), "ordered_regions": list(study.regions),
               "dicom_regions": list(dicom.regions), "image_regions": list(image),
               "decision_regions": list(decision.regions), "disagreement": decision.disagreement,
               "blank_dicom_status": blank.status, "blank_decision_regions": list(blank_decision.regions),
               "is_spine": labels.is_spine, **{k: m[k] for k in ("correct", "wrong", "uncertain", "missed",
                                                                  "within_one", "extra_named")},
               "pairs": m["pairs"], "spacing_mm": round(float(s.pixel_spacing[0]), 3),
               "all_correct": m["all_correct"], "no_wrong": m["no_wrong"], "localizer": bool(localizers),
               "localizer_kind": next(iter(localizers.values()), ""),
               "counted_on_localizer": labels.counted_on in localizers, "count_conflict": labels.count_conflict,
               "alone": {k: alone[k] for k in ("correct", "wrong", "uncertain", "missed", "within_one", "extra_named",
                                              "all_correct", "no_wrong")}}
        if baseline is not None and m["n"]:
            truth_pts = [tuple(anatomy["discs"][lv]) for lv in anatomy["visible_discs"]]
            all_ds = [d for x in as_read.series for d in x.datasets]
            old = _old_head_levels(baseline, all_ds, s.series_instance_uid, truth_pts)
            row["baseline"] = [(lv, o) for lv, o in zip(anatomy["visible_discs"], old)]
        # levels of true findings at their ground-truth box centres (the series' own boxes)
        for f in study.truth["findings"]:
            if f["label"] != 1:
                continue
            boxes = [b for b in f["boxes"] if b["series_instance_uid"] == s.series_instance_uid]
            if not boxes:
                continue
            b = boxes[len(boxes) // 2]["box"]
            ds = by_sop[boxes[len(boxes) // 2]["sop_instance_uid"]]
            point = SliceFrame.from_dataset(ds).to_patient((b[1] + b[3]) / 2, (b[0] + b[2]) / 2)
            kind = "disc" if get_condition(f["condition"]).level_kind == DISC_LEVEL else "vertebra"
            level, why = labels.level_at(point, kind)
            finding_rows.append({"index": i, "condition": f["condition"], "truth": f["level"], "level": level,
                                 "why": why})
        rows.append(row)
    negatives = []
    for k, kind in enumerate(("knee", "brain")):
        for i in range(n_nonspine // 2):
            st = generate_nonspine(seed + 500, i, kind)
            s = st.series[1]
            lab = label_series(locator, s.datasets(), s.series_instance_uid)
            negatives.append({"kind": kind, "is_spine": lab.is_spine, "reason": lab.reason, "n_discs": len(lab.discs)})
    return summarize_rows(rows, finding_rows, negatives, frequent_level, n_boot, seed, n, pcfg)


def _disc_rate(rows, key: str, n_boot: int) -> dict:
    vals, groups = [], []
    for r in rows:
        vals += [1.0] * r[key] + [0.0] * (r["n_visible"] - r[key])
        groups += [r["index"]] * r["n_visible"]
    return M.grouped_mean_ci(vals, groups, n_boot)


def _pairs_rate(rows, field: str, fn, n_boot: int) -> dict:
    vals, groups = [], []
    for r in rows:
        for lv, pred in r.get(field, []):
            vals.append(float(fn(lv, pred)))
            groups.append(r["index"])
    return M.grouped_mean_ci(vals, groups, n_boot)


def _study_rate(rows, fn) -> dict:
    k = sum(1 for r in rows if fn(r))
    return M.proportion(k, len(rows))


def summarize_rows(rows, finding_rows, negatives, frequent_level, n_boot, seed, n, pcfg) -> dict:
    exact = lambda lv, p: p == lv  # noqa: E731
    near = lambda lv, p: p is not None and abs(level_position(p) - level_position(lv)) <= 1.0  # noqa: E731
    scored = [r for r in rows if r["n_visible"]]
    res = {"label": "SYNTHETIC varied-acquisition phantoms; not a clinical result", "seed": seed, "n_studies": n,
           "phantom_config": pcfg, "n_discs": sum(r["n_visible"] for r in rows),
           "locator": {
               "exact": _disc_rate(scored, "correct", n_boot), "within_one": _disc_rate(scored, "within_one", n_boot),
               "wrong": _disc_rate(scored, "wrong", n_boot), "uncertain": _disc_rate(scored, "uncertain", n_boot),
               "missed": _disc_rate(scored, "missed", n_boot),
               "studies_all_correct": _study_rate(scored, lambda r: r["all_correct"]),
               "studies_no_wrong_level": _study_rate(scored, lambda r: r["no_wrong"]),
               "studies_extra_named": _study_rate(scored, lambda r: r["extra_named"] > 0)}}
    if any("baseline" in r for r in scored):
        b = [r for r in scored if "baseline" in r]
        res["baseline_level_head"] = {
            "exact": _pairs_rate(b, "baseline", exact, n_boot), "within_one": _pairs_rate(b, "baseline", near, n_boot),
            "studies_all_correct": _study_rate(b, lambda r: all(p == lv for lv, p in r["baseline"]))}
    if frequent_level:
        for r in scored:
            r["frequent"] = [(lv, frequent_level) for lv, _ in r["pairs"]]
        res["baseline_most_frequent"] = {
            "level": frequent_level, "exact": _pairs_rate(scored, "frequent", exact, n_boot),
            "within_one": _pairs_rate(scored, "frequent", near, n_boot),
            "studies_all_correct": _study_rate(scored, lambda r: all(p == lv for lv, p in r["frequent"]))}
    with_loc = [r for r in scored if r["localizer"]]
    if with_loc:  # the same studies archived without their localizer
        alone = [{**r, **r["alone"]} for r in with_loc]
        res["locator_alone"] = {
            "exact": _disc_rate(alone, "correct", n_boot), "wrong": _disc_rate(alone, "wrong", n_boot),
            "uncertain": _disc_rate(alone, "uncertain", n_boot), "within_one": _disc_rate(alone, "within_one", n_boot),
            "studies_all_correct": _study_rate(alone, lambda r: r["all_correct"]),
            "studies_no_wrong_level": _study_rate(alone, lambda r: r["no_wrong"])}
        res["by_mode_alone"] = {m: _study_rate([r for r in alone if r["mode"] == m], lambda r: r["all_correct"])
                                for m in sorted({r["mode"] for r in alone})}
        res["localizer_use"] = {"counted_on_localizer": _study_rate(with_loc, lambda r: r["counted_on_localizer"]),
                                "count_conflict": _study_rate(with_loc, lambda r: r["count_conflict"])}
        res["by_localizer_kind"] = {k: _study_rate([r for r in with_loc if r["localizer_kind"] == k], lambda r: r["all_correct"])
                                    for k in sorted({r["localizer_kind"] for r in with_loc})}
    # by coverage mode and by variant
    res["by_mode"] = {m: _study_rate([r for r in scored if r["mode"] == m], lambda r: r["all_correct"])
                      for m in sorted({r["mode"] for r in scored})}
    res["by_variant"] = {v: _study_rate([r for r in scored if r["variant"] == v], lambda r: r["all_correct"])
                         for v in sorted({r["variant"] for r in scored})}
    # region
    res["region"] = {
        "reported_vs_ordered": _study_rate(rows, lambda r: r["decision_regions"] == r["ordered_regions"]),
        "image_vs_field_of_view": _study_rate(scored, lambda r: r["image_regions"] == r["truth_regions"]),
        "image_overlaps_ordered": _study_rate(scored, lambda r: bool(set(r["image_regions"]) & set(r["ordered_regions"]))),
        "disagreement_flagged": _study_rate(rows, lambda r: bool(r["disagreement"])),
        "blank_tags_dicom_unknown": _study_rate(rows, lambda r: r["blank_dicom_status"] == "unknown"),
        "blank_tags_reported_vs_field_of_view": _study_rate(scored, lambda r: r["blank_decision_regions"] == r["truth_regions"]),
        "blank_tags_reported_overlaps_ordered": _study_rate(scored, lambda r: bool(set(r["blank_decision_regions"])
                                                                                   & set(r["ordered_regions"]))),
        "blank_tags_confirmed_spine": _study_rate(rows, lambda r: r["is_spine"]),
        "nonspine_refused": _study_rate(negatives, lambda r: not r["is_spine"]),
        "nonspine_n": Counter(r["kind"] for r in negatives)}
    res["region"]["nonspine_n"] = dict(res["region"]["nonspine_n"])
    # findings at their ground-truth box
    f_exact = [float(fr["level"] == fr["truth"]) for fr in finding_rows]
    f_named = [float(fr["level"] is not None) for fr in finding_rows]
    f_wrong = [float(fr["level"] is not None and fr["level"] != fr["truth"]) for fr in finding_rows]
    groups = [fr["index"] for fr in finding_rows]
    res["findings_at_truth_box"] = {"n": len(finding_rows), "exact": M.grouped_mean_ci(f_exact, groups, n_boot),
                                    "named": M.grouped_mean_ci(f_named, groups, n_boot),
                                    "wrong": M.grouped_mean_ci(f_wrong, groups, n_boot),
                                    "why_unnamed": dict(Counter(fr["why"] for fr in finding_rows if fr["level"] is None))}
    res["studies"] = [{k: v for k, v in r.items() if k not in ("pairs", "baseline", "frequent")} for r in rows]
    res["negatives"] = negatives
    return res


def _ci(m: dict) -> str:
    v = m.get("value")
    if v is None:
        return "n/a"
    lo, hi = m["ci95"]
    extra = f" ({m['k']}/{m['n']})" if "k" in m else ""
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]{extra}"


def coverage_markdown(res: dict) -> str:
    L = res["locator"]
    lines = [f"**Levels on held-out varied-acquisition phantoms (SYNTHETIC, seed {res['seed']}, {res['n_studies']} studies, "
             f"{res['n_discs']} visible discs)**", "",
             "| method | disc exact [95% CI] | disc within one | studies with every visible level correct |",
             "|---|---|---|---|",
             f"| spine locator (this bundle) | {_ci(L['exact'])} | {_ci(L['within_one'])} | {_ci(L['studies_all_correct'])} |"]
    if "locator_alone" in res:
        A = res["locator_alone"]
        lines.append(f"| spine locator, the same studies without their localizer | {_ci(A['exact'])} | "
                     f"{_ci(A['within_one'])} | {_ci(A['studies_all_correct'])} |")
    if "baseline_level_head" in res:
        B = res["baseline_level_head"]
        lines.append(f"| previous bundle's level head | {_ci(B['exact'])} | {_ci(B['within_one'])} | {_ci(B['studies_all_correct'])} |")
    if "baseline_most_frequent" in res:
        F_ = res["baseline_most_frequent"]
        lines.append(f"| most frequent level ({F_['level']}) | {_ci(F_['exact'])} | {_ci(F_['within_one'])} | "
                     f"{_ci(F_['studies_all_correct'])} |")
    lines += ["", "| locator outcome per visible disc | rate |", "|---|---|",
              f"| named correctly | {_ci(L['exact'])} |", f"| named wrongly | {_ci(L['wrong'])} |",
              f"| left \"level uncertain\" | {_ci(L['uncertain'])} |", f"| not detected | {_ci(L['missed'])} |",
              f"| studies with no wrong level named anywhere | {_ci(L['studies_no_wrong_level'])} |",
              f"| studies with a named disc that is not there | {_ci(L['studies_extra_named'])} |", "",
              "| coverage drawn | studies with every visible level correct |", "|---|---|"]
    if "by_mode_alone" in res:
        lines[-2:] = ["| coverage drawn | with the localizer | without it |", "|---|---|---|"]
        lines += [f"| {m} | {_ci(v)} | {_ci(res['by_mode_alone'].get(m, {}))} |" for m, v in res["by_mode"].items()]
        U, A = res["localizer_use"], res["locator_alone"]
        lines += ["", "| localizer | rate |", "|---|---|",
                  f"| studies whose levels were counted on the localizer | {_ci(U['counted_on_localizer'])} |",
                  f"| studies where two series counted differently (no level named) | {_ci(U['count_conflict'])} |",
                  f"| without the localizer: discs named wrongly | {_ci(A['wrong'])} |",
                  f"| without the localizer: discs left \"level uncertain\" | {_ci(A['uncertain'])} |",
                  f"| without the localizer: studies with no wrong level | {_ci(A['studies_no_wrong_level'])} |"]
        lines += ["", "| localizer contrast | studies with every visible level correct |", "|---|---|"]
        names = {"gre": "spoiled gradient echo (FLASH / FGRE)", "ssfp": "balanced SSFP (TrueFISP / FIESTA)"}
        lines += [f"| {names.get(k, k)} | {_ci(v)} |" for k, v in res["by_localizer_kind"].items()]
    else:
        lines += [f"| {m} | {_ci(v)} |" for m, v in res["by_mode"].items()]
    lines += ["", "| anatomy | studies with every visible level correct |", "|---|---|"]
    lines += [f"| {v} | {_ci(x)} |" for v, x in res["by_variant"].items()]
    R = res["region"]
    lines += ["", "| region | rate |", "|---|---|",
              f"| tags as written: reported region = ordered region | {_ci(R['reported_vs_ordered'])} |",
              f"| image estimate = regions in the field of view | {_ci(R['image_vs_field_of_view'])} |",
              f"| image estimate overlaps the ordered region | {_ci(R['image_overlaps_ordered'])} |",
              f"| DICOM / image disagreement flagged (false alarms: all tags are right) | {_ci(R['disagreement_flagged'])} |",
              f"| blank region tags: DICOM call is \"unknown\" | {_ci(R['blank_tags_dicom_unknown'])} |",
              f"| blank region tags: reported region = field of view | {_ci(R['blank_tags_reported_vs_field_of_view'])} |",
              f"| blank region tags: reported region overlaps the ordered region | {_ci(R['blank_tags_reported_overlaps_ordered'])} |",
              f"| blank region tags: images confirm a spine | {_ci(R['blank_tags_confirmed_spine'])} |",
              f"| sagittal knee / brain phantoms refused by the image check | {_ci(R['nonspine_refused'])} |"]
    FB = res["findings_at_truth_box"]
    lines += ["", f"| true findings at their ground-truth box ({FB['n']}) | rate |", "|---|---|",
              f"| level named and correct | {_ci(FB['exact'])} |", f"| level named | {_ci(FB['named'])} |",
              f"| level named and wrong | {_ci(FB['wrong'])} |"]
    return "\n".join(lines) + "\n"


def summarize_coverage(res: dict) -> dict:
    """The manifest's record: headline rates with their intervals."""
    keep = lambda m: {"value": m["value"], "ci95": m["ci95"], **({"k": m["k"], "n": m["n"]} if "k" in m else {"n": m["n"]})}  # noqa: E731
    out = {"label": res["label"], "seed": res["seed"], "n_studies": res["n_studies"], "n_discs": res["n_discs"],
           "locator": {k: keep(v) for k, v in res["locator"].items()},
           "region": {k: keep(v) for k, v in res["region"].items() if isinstance(v, dict) and "value" in v}}
    for name in ("locator_alone", "baseline_level_head", "baseline_most_frequent"):
        if name in res:
            out[name] = {k: (keep(v) if isinstance(v, dict) else v) for k, v in res[name].items()}
    return out
