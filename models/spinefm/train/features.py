"""Frozen features for later stages: report text features, case/series embeddings, slice tokens.

Text features are cached per text model (the text encoder is frozen in every
stage). Embeddings are recomputed from the current weights each time.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..clip import case_embedding
from ..data import CaseRecord
from ..text import TextConfig, TextEncoder

VIEWS = ("all", "t1", "t2", "other")


@functools.lru_cache(maxsize=2)
def _encoder(cfg_json: str) -> TextEncoder:
    """One frozen text encoder per process and config (loading it costs seconds on a CPU)."""
    return TextEncoder(TextConfig(**json.loads(cfg_json)))


def text_features(reports: list[str], cfg: TextConfig, cache_dir: str | Path | None = None) -> torch.Tensor:
    key = hashlib.sha256(("\x00".join(reports) + repr(cfg.to_dict())).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"text-{key}.pt" if cache_dir else None
    if path is not None and path.exists():
        return torch.load(path)
    feats = _encoder(json.dumps(cfg.to_dict(), sort_keys=True))(reports)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(feats, path)
    return feats


MODES = ("full", "no_synth", "single")


@torch.no_grad()
def series_embeddings(model, case: CaseRecord, mode: str = "full") -> dict[str, torch.Tensor]:
    """Case embeddings per view: "t1", "t2", "other" (non-T1/T2 series), "all" (T1+T2 mean).

    mode "full": T1 and T2 encoders, synthesizer for other sequences (the model);
    "no_synth": other sequences through the T2 encoder (baseline without the synthesizer);
    "single": every series through the T2 encoder, "all" = mean of all series (single-encoder baseline).
    """
    cfg = model.cfg.preprocess

    def embed(stream, s):
        return model.series_embedding(stream, model.encode_slices(stream, s.inputs(cfg))["cls"][None])[0][0]

    out = {}
    for view in ("t1", "t2"):
        s = case.first(view)
        if s is not None:
            out[view] = embed("t2" if mode == "single" else view, s)
    others = case.by_stream("synthesizer")
    if others:
        stream = "synthesizer" if mode == "full" else "t2"
        out["other"] = F.normalize(torch.stack([embed(stream, s) for s in others]).mean(0), dim=-1)
    if mode == "single" and out:
        out["all"] = F.normalize(torch.stack(list(out.values())).mean(0), dim=-1)
    elif "t1" in out or "t2" in out:
        out["all"] = case_embedding(out["t1"][None] if "t1" in out else None,
                                    out["t2"][None] if "t2" in out else None)[0]
    elif "other" in out:
        out["all"] = out["other"]
    return out


@torch.no_grad()
def case_views(model, cases: list[CaseRecord], mode: str = "full", progress: bool = False) -> dict[str, dict]:
    """{view: {"emb": (n, P), "idx": case indices}} for the views each case has."""
    model.eval()
    rows: dict[str, tuple[list, list]] = {v: ([], []) for v in VIEWS}
    it = cases
    if progress:
        from tqdm import tqdm

        it = tqdm(cases, desc="embed", leave=False)
    for i, c in enumerate(it):
        for view, z in series_embeddings(model, c, mode).items():
            rows[view][0].append(z)
            rows[view][1].append(i)
    return {v: {"emb": torch.stack(e) if e else torch.zeros(0, model.cfg.clip.proj_dim), "idx": torch.tensor(ix, dtype=torch.long)}
            for v, (e, ix) in rows.items()}


def slice_targets(case: CaseRecord, series, conditions: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per slice and condition: key-slice label (1/0, -1 unknown), normalised box target and its mask."""
    n, c = len(series.sop_instance_uids), len(conditions)
    labels = torch.full((n, c), -1.0)
    boxes = torch.zeros(n, c, 4)
    mask = torch.zeros(n, c, dtype=torch.bool)
    pos = {sop: i for i, sop in enumerate(series.sop_instance_uids)}
    for j, cond in enumerate(conditions):
        label = case.labels.get(cond, -1)
        if label == 0:
            labels[:, j] = 0.0
            continue
        mine = [f for f in case.findings if f.get("condition") == cond]
        keys = [k for f in mine for k in f.get("key_slices", []) if k.get("series_instance_uid") == series.series_instance_uid]
        if label != 1 or not keys:
            continue  # present but not annotated on this series: unknown
        labels[:, j] = 0.0
        for k in keys:
            i = pos.get(k.get("sop_instance_uid"))
            if i is not None:
                labels[i, j] = 1.0
        for f in mine:
            for b in f.get("boxes", []):
                i = pos.get(b.get("sop_instance_uid"))
                if b.get("series_instance_uid") == series.series_instance_uid and i is not None:
                    boxes[i, j] = torch.tensor(series.geometry.to_normalized(b["box"]))
                    mask[i, j] = True
    return labels, boxes, mask


@torch.no_grad()
def slice_features(model, cases: list[CaseRecord], stream: str, progress: bool = False) -> dict[str, torch.Tensor]:
    """All slices of all series of a stream: cls, patches, targets, and (case, series) bookkeeping."""
    cfg = model.cfg.preprocess
    cls, patches, labels, boxes, masks, case_idx, series_idx = [], [], [], [], [], [], []
    it = list(enumerate(cases))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"slices/{stream}", leave=False)
    for i, case in it:
        for j, s in enumerate(case.by_stream(stream)):
            f = model.encode_slices(stream, s.inputs(cfg), patches=True)
            lab, box, m = slice_targets(case, s, model.cfg.conditions)
            cls.append(f["cls"])
            patches.append(f["patches"].half())
            labels.append(lab)
            boxes.append(box)
            masks.append(m)
            case_idx += [i] * lab.shape[0]
            series_idx += [j] * lab.shape[0]
    if not cls:
        return {}
    return {"cls": torch.cat(cls), "patches": torch.cat(patches), "labels": torch.cat(labels),
            "boxes": torch.cat(boxes), "box_mask": torch.cat(masks),
            "case": torch.tensor(case_idx), "series": torch.tensor(series_idx)}
