"""``analyze(bundle, study) -> AnalysisResult``: the backend's one call into the model library.

Route the study's sagittal MR series (T1 -> T1 encoder, T2 -> T2 encoder,
anything else -> synthesizer), embed slices, pool to series and case
embeddings, then run the agents: diagnosis probes, key slice + box per
condition predicted present (boxes mapped back to the original instance's
pixels) and the level of each box (level head, when the bundle has a trained
one), retrieval of similar cases, and the report drafter when installed.
"""

from __future__ import annotations

import logging
import time

import torch

from .clip import case_embedding
from .conditions import get_condition
from .data import SeriesRecord, record_from_study_input
from .results import (POSSIBLE, PRESENT, AnalysisResult, Box, ConditionPrediction, KeySlice, SeriesUsed, SimilarCase,
                      UnsupportedStudy)

log = logging.getLogger(__name__)
STREAM_NAMES = {"t1": "t1", "t2": "t2", "synthesizer": "synthesizer"}


def _check_modality(study) -> None:
    modalities = {m.strip().upper() for m in str(study.modality or "").split(",") if m.strip()}
    if modalities and "MR" not in modalities:
        raise UnsupportedStudy(f"study modality {study.modality!r} is not MR")
    if not study.series:
        raise UnsupportedStudy("study has no series")


def choose_series(record) -> list[SeriesRecord]:
    """One T1 and one T2 series (most slices), and every other routed series for the synthesizer."""
    chosen = [s for s in (record.first("t1"), record.first("t2")) if s is not None]
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
def localize(model, condition: str, e: dict, case: torch.Tensor | None = None) -> tuple[KeySlice, Box]:
    """Key slice and box; with the case embedding and a trained level head, the box's level too."""
    s: SeriesRecord = e["series"]
    k, score, nbox = locate(model, condition, s.stream, e["cls"], e["patches"])
    box = s.geometry.to_pixels(nbox.tolist())
    level = None
    if case is not None and model.level.is_fitted and condition in model.level.conditions:
        level, _ = model.level.predict(case, box_centre(nbox), condition)
    ks = KeySlice(condition, s.series_instance_uid, s.sop_instance_uids[k], k, score)
    return ks, Box(condition, s.series_instance_uid, s.sop_instance_uids[k], [round(v, 2) for v in box], score, level)


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
    record = record_from_study_input(study, model.cfg.preprocess)
    series = choose_series(record)
    if not series:
        seen = ", ".join(f"{s.sequence}/{s.plane}" for s in study.series) or "none"
        raise UnsupportedStudy(f"no sagittal MR spine series (T1, T2, STIR, Dixon) to analyse; series seen: {seen}")
    timings["preprocess_s"] = time.perf_counter() - t0

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
        present = statuses[i] == PRESENT
        conditions.append(ConditionPrediction(c, round(float(probs[i]), 4), present, status=statuses[i]))
        if present or statuses[i] == POSSIBLE or localize_all or i in most_probable:
            ks, box = localize(model, c, _series_for(c, embedded), case)
            conditions[-1].level = box.level
            key_slices.append(ks)
            boxes.append(box)
    timings["agents_s"] = time.perf_counter() - t

    similar = []
    if bundle.index is not None:
        similar = [SimilarCase(h.case_id, round(h.score, 4), h.report) for h in bundle.index.image_to_report(case, top_k)]

    result = AnalysisResult(
        model_name=bundle.name, model_version=bundle.version, synthetic_training=bundle.synthetic_training,
        conditions=conditions, key_slices=key_slices, boxes=boxes, similar_cases=similar,
        series=[SeriesUsed(e["series"].series_instance_uid, e["series"].sequence, e["series"].plane,
                           STREAM_NAMES[e["series"].stream], int(e["cls"].shape[0])) for e in embedded.values()],
        embedding=[round(float(v), 6) for v in case.tolist()],
    )
    if draft:
        t = time.perf_counter()
        drafter = bundle.drafter()
        if drafter is not None:
            slice_embeddings = {}
            for e in embedded.values():
                slice_embeddings.setdefault(e["series"].stream, e["cls"])
            try:  # the drafter falls back to the template itself; this guards the predictions against the rest
                record = drafter.draft_record(result, slice_embeddings)
                result.draft_text, result.draft_backend, result.draft_fallback = record.text, record.label, record.fallback
            except Exception as exc:  # a drafter failure must not lose the predictions
                log.exception("report drafter failed")
                result.draft_backend = f"error: {type(exc).__name__}: {exc}"
        timings["draft_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    result.timings = {k: round(v, 4) for k, v in timings.items()}
    return result
