"""``analyze(bundle, study) -> AnalysisResult``: the backend's one call into the model library.

Check the study (MR; the DICOM region by ``spinefm.intake``; a study whose tags do not
name the spine must show one on its images, ``spinefm.vertebrae``), route its sagittal MR
series (T1 -> T1 encoder; T2, STIR, Dixon -> T2 encoder; post-contrast and other ->
synthesizer), embed slices, pool to series and case embeddings, then run the agents:
diagnosis probes, key slice + box per condition (boxes mapped back to the original
instance's pixels), the level of each box (discs counted on the images by the bundle's
spine locator, constrained to the field of view and the condition; the level head for
bundles without a locator, constrained to the study's region; otherwise "level
uncertain"), retrieval of similar cases, and the report drafter when installed.
"""

from __future__ import annotations

import logging
import time

import torch

from . import intake
from .clip import case_embedding
from .conditions import DISC_LEVEL, get_condition, region_of_level
from .data import SeriesRecord, record_from_study_input, stream_for
from .results import AnalysisResult, Box, Call, ConditionPrediction, KeySlice, SeriesUsed, SimilarCase, UnsupportedStudy
from .sequences import describe_sequence

log = logging.getLogger(__name__)
STREAM_NAMES = {"t1": "t1", "t2": "t2", "synthesizer": "synthesizer"}


def _check_modality(study) -> None:
    modalities = {m.strip().upper() for m in str(study.modality or "").split(",") if m.strip()}
    if modalities and "MR" not in modalities:
        raise UnsupportedStudy(f"study modality {study.modality!r} is not MR")
    if not study.series:
        raise UnsupportedStudy("study has no series")


def choose_series(record) -> list[SeriesRecord]:
    """One T1 series, the T2 stream (the plain T2 first, then STIR and Dixon), and every synthesizer series."""
    t1, t2 = record.first("t1"), record.first("t2")
    chosen = [s for s in (t1, t2) if s is not None]
    chosen += [s for s in record.by_stream("t2") if s is not t2]
    return chosen + record.by_stream("synthesizer")


@torch.no_grad()
def embed_series(model, series: list[SeriesRecord], batch_size: int = 64) -> dict[str, dict]:
    cfg = model.cfg.preprocess
    out = {}
    for s in series:
        feats = model.encode_slices(s.stream, s.inputs(cfg), batch_size=batch_size, patches=True)
        z, attn = model.series_embedding(s.stream, feats["cls"][None])
        out[s.series_instance_uid] = {"series": s, "cls": feats["cls"], "patches": feats["patches"],
                                      "embedding": z[0], "attention": attn[0]}
    return out


def case_vector(embedded: dict[str, dict]) -> torch.Tensor:
    """Mean of normalised T1/T2 projections; synthesizer series only when neither exists."""
    by_stream: dict[str, list[torch.Tensor]] = {}
    for e in embedded.values():
        by_stream.setdefault(e["series"].stream, []).append(e["embedding"])
    t1 = by_stream.get("t1", [None])[0]
    t2 = by_stream.get("t2", [None])[0]
    if t1 is not None or t2 is not None:
        return case_embedding(None if t1 is None else t1[None], None if t2 is None else t2[None])[0]
    return torch.nn.functional.normalize(torch.stack(by_stream["synthesizer"]).mean(0), dim=-1)


def pick_series(condition: str, series: list[SeriesRecord]) -> int:
    """Index of the series where a condition is best seen (registry's typical sequences), else 0."""
    for seq in get_condition(condition).sequences if _known(condition) else ():
        for i, s in enumerate(series):
            if s.sequence == seq:
                return i
    return 0


def _series_for(condition: str, embedded: dict[str, dict]) -> dict:
    items = list(embedded.values())
    return items[pick_series(condition, [e["series"] for e in items])]


def _known(condition: str) -> bool:
    try:
        get_condition(condition)
        return True
    except KeyError:
        return False


@torch.no_grad()
def locate(model, condition: str, stream: str, cls: torch.Tensor, patches: torch.Tensor) -> tuple[int, float, torch.Tensor]:
    """Segmentation agent on one series: (key slice index, its score, normalised crop box (4,))."""
    out = model.segmentation(stream, cls, patches, condition)
    scores = torch.sigmoid(out["slice_logit"].float())
    k = int(scores.argmax())
    return k, float(scores[k]), out["box"][k].float()


def box_centre(box: torch.Tensor) -> torch.Tensor:
    """Normalised [x0, y0, x1, y1] -> centre (x, y)."""
    return torch.stack([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


@torch.no_grad()
def localize(model, condition: str, e: dict, case: torch.Tensor | None = None,
             placer: "LevelPlacer | None" = None) -> tuple[KeySlice, Box, str]:
    """Key slice and box, and the box's level with a note when it is uncertain (see LevelPlacer)."""
    s: SeriesRecord = e["series"]
    k, score, nbox = locate(model, condition, s.stream, e["cls"], e["patches"])
    box = s.geometry.to_pixels(nbox.tolist())
    level, note = None, ""
    if placer is not None:
        level, note = placer.place(condition, s, k, box, case, box_centre(nbox))
    elif case is not None and model.level.is_fitted and condition in model.level.conditions:
        level, _ = model.level.predict(case, box_centre(nbox), condition)
    ks = KeySlice(condition, s.series_instance_uid, s.sop_instance_uids[k], k, score)
    bx = Box(condition, s.series_instance_uid, s.sop_instance_uids[k], [round(v, 2) for v in box], score, level,
             level_uncertain=level is None and bool(note))
    return ks, bx, note


class LevelPlacer:
    """Names a box's level, never outside what the study shows.

    With a fitted spine locator: the box centre in patient coordinates, placed on the discs
    counted on the images (``SpineLabels.level_at``). Without one (older bundles): the level
    head, kept only when its level lies in the study's region. Either way a level the registry
    rules out for the condition is dropped. A dropped level is None with a note ("level uncertain").
    """

    def __init__(self, model, labels, datasets_by_series: dict[str, list], regions: tuple[str, ...]):
        self.model, self.labels, self.datasets, self.regions = model, labels, datasets_by_series, regions

    def place(self, condition: str, series: SeriesRecord, k: int, box: list[float], case, centre) -> tuple[str | None, str]:
        from .heads.level import LEVELS, allowed_levels
        from .vertebrae import SliceFrame

        try:
            kind = "disc" if get_condition(condition).level_kind == DISC_LEVEL else "vertebra"
        except KeyError:
            kind = "disc"
        if self.labels is not None:
            datasets = self.datasets.get(series.series_instance_uid) or []
            if not 0 <= k < len(datasets):
                return None, "key slice has no geometry"
            frame = SliceFrame.from_dataset(datasets[k])
            point = frame.to_patient((box[1] + box[3]) / 2, (box[0] + box[2]) / 2)
            level, note = self.labels.level_at(point, kind)
        elif case is not None and self.model.level.is_fitted and condition in self.model.level.conditions:
            level, note = self.model.level.predict(case, centre, condition)[0], ""
            region = region_of_level(level)
            if self.regions and ("lumbar" if region == "sacral" else region) not in self.regions:
                level, note = None, f"the level model placed it outside the {intake.region_name(self.regions)} spine"
        else:
            return None, "this bundle cannot place levels"
        if level is not None and level in LEVELS and not allowed_levels(condition)[LEVELS.index(level)]:
            return None, f"{level} is not a level this condition is reported at"
        return level, note


LOCATOR_ORDER = {"T2": 0, "T1": 1, "STIR": 2, "DIXON": 3, "OTHER": 4}


def level_series(study) -> list[tuple[str, list]]:
    """(uid, datasets) of the series the locator counts on: first the read sagittal series it prefers (T2,
    else T1, else STIR / Dixon / other, most slices first), then every other series (localizers included);
    ``vertebrae.label_study`` keeps their sagittal images in the same frame of reference and may count from them."""
    read = [s for s in study.series if s.datasets and stream_for(s.datasets[0], s.sequence, s.plane) is not None]
    if not read:
        return []
    first = min(read, key=lambda s: (LOCATOR_ORDER.get(s.sequence, 5), -len(s.datasets)))
    return [(first.series_instance_uid, first.datasets)] + [
        (s.series_instance_uid, s.datasets) for s in study.series if s is not first and s.datasets]


def analyze(bundle, study, top_k: int = 5, localize_all: bool = False, localize_top: int = 3, draft: bool = True,
            batch_size: int = 64) -> AnalysisResult:
    """Run every agent on one study.

    Each condition gets the bundle's call at its operating points (present, possible, absent,
    or not assessed where the bundle failed held-out validation). Key slices and boxes are
    produced for every condition called present or possible and, whatever the calls say, for the ``localize_top`` most probable ones, so a reviewer always sees where
    the model looked for its likeliest findings (the viewer marks those below threshold).
    """
    model = bundle.model.eval()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    _check_modality(study)
    dicom = intake.region_from_headers([s.datasets[0] for s in study.series if s.datasets])
    if dicom.status == intake.NOT_SPINE:
        raise UnsupportedStudy(f"not a spine MRI: {dicom.reason()}")
    record = record_from_study_input(study, model.cfg.preprocess)
    series = choose_series(record)
    if not series:
        seen = ", ".join(f"{s.sequence}/{s.plane}" for s in study.series) or "none"
        raise UnsupportedStudy(f"no sagittal MR spine series (T1, T2, STIR, Dixon) to analyse; series seen: {seen}")
    timings["preprocess_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    labels = None
    if model.locator.is_fitted:
        from .vertebrae import label_study

        labels = label_study(model.locator, level_series(study))
    if dicom.status != intake.SPINE:  # tags name no body part: the images must show a spine
        if labels is None:
            raise UnsupportedStudy("the DICOM tags do not name the spine (BodyPartExamined and descriptions blank or "
                                   "generic) and this bundle has no spine locator to confirm it from the images")
        if not labels.is_spine:
            raise UnsupportedStudy("the DICOM tags do not name the spine and the images do not show one: "
                                   f"{labels.reason}")
    image_regions = ()
    if labels is not None:
        from .vertebrae import regions_from_discs

        image_regions = regions_from_discs([d.level for d in labels.named])
    decision = intake.decide_region(dicom, image_regions, labels.not_confirmed if labels is not None else "")
    placer = LevelPlacer(model, labels, {s.series_instance_uid: s.datasets for s in study.series}, decision.regions)
    timings["locate_s"] = time.perf_counter() - t

    t = time.perf_counter()
    embedded = embed_series(model, series, batch_size)
    case = case_vector(embedded)
    timings["encode_s"] = time.perf_counter() - t

    t = time.perf_counter()
    with torch.no_grad():
        probs = torch.sigmoid(model.diagnosis(case[None])[0].float())
    statuses = model.diagnosis.statuses(probs)
    conditions, key_slices, boxes = [], [], []
    most_probable = set(torch.argsort(probs, descending=True)[:localize_top].tolist())
    for i, c in enumerate(model.cfg.conditions):
        present = statuses[i] == Call.PRESENT
        conditions.append(ConditionPrediction(c, round(float(probs[i]), 4), present, status=statuses[i],
                                              rule_out=bool(model.diagnosis.rule_out[i])))
        if present or statuses[i] == Call.POSSIBLE or localize_all or i in most_probable:
            ks, box, note = localize(model, c, _series_for(c, embedded), case, placer)
            conditions[-1].level = box.level
            conditions[-1].level_uncertain, conditions[-1].level_note = box.level_uncertain, note
            key_slices.append(ks)
            boxes.append(box)
    timings["agents_s"] = time.perf_counter() - t

    similar = []
    if bundle.index is not None:
        similar = [SimilarCase(h.case_id, round(h.score, 4), h.report) for h in bundle.index.image_to_report(case, top_k)]

    heads = {s.series_instance_uid: s.datasets[0] for s in study.series if s.datasets}
    result = AnalysisResult(
        model_name=bundle.name, model_version=bundle.version, synthetic_training=bundle.synthetic_training,
        conditions=conditions, key_slices=key_slices, boxes=boxes, similar_cases=similar,
        similar_source=getattr(bundle, "index_source", "") if similar else "",
        series=[SeriesUsed(e["series"].series_instance_uid, e["series"].sequence, e["series"].plane,
                           STREAM_NAMES[e["series"].stream], int(e["cls"].shape[0]), e["series"].description,
                           describe_sequence(heads[e["series"].series_instance_uid]).label
                           if e["series"].series_instance_uid in heads else e["series"].sequence)
                for e in embedded.values()],
        embedding=[round(float(v), 6) for v in case.tolist()],
        region=decision.name, regions=list(decision.regions), region_source=decision.source,
        region_dicom=decision.dicom, region_image=decision.image, region_disagreement=decision.disagreement,
        coverage=labels.visible_levels() if labels is not None else [],
        levels_source="locator" if labels is not None else ("level_head" if model.level.is_fitted else ""),
        spine_check=labels.to_dict() if labels is not None else {},
    )
    if draft:
        t = time.perf_counter()
        drafter = bundle.drafter()
        slice_embeddings = {}
        for e in embedded.values():
            slice_embeddings.setdefault(e["series"].stream, e["cls"])
        try:  # the drafter falls back to the template itself; this guards the predictions against the rest
            from .report.findings import with_model_line

            record = drafter.draft_record(result, slice_embeddings)
            result.draft_text = with_model_line(record.text, result)  # every backend's draft keeps its label
            result.draft_backend, result.draft_fallback = record.label, record.fallback
        except Exception as exc:  # a drafter failure must not lose the predictions
            log.exception("report drafter failed")
            result.draft_backend = f"error: {type(exc).__name__}: {exc}"
        timings["draft_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    result.timings = {k: round(v, 4) for k, v in timings.items()}
    return result
