"""Studies -> cached, preprocessed cases; the one path shared by training and analyze.

Preprocessing DICOM is the slow part on a CPU, so each study is turned into
windowed uint8 crops once and cached as ``.npz`` (pixels + a JSON sidecar with
labels, findings, report, vendor and series metadata). Training then reads
small arrays. Series routing (which encoder sees which series) lives here too,
as the paper routes: sagittal T1 -> "t1"; sagittal T2, STIR and Dixon -> "t2"
(the T2 encoder was pretrained on all three); post-contrast and every other
sagittal MR series -> "synthesizer".
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .conditions import CONDITION_KEYS, LabelValue
from .preprocess import Geometry, PreprocessConfig, prepare_series, prepare_volume, uint8_to_input
from .sequences import (DIXON, OTHER, SAGITTAL, STIR, T1, T2, classify_sequence, not_read_reason,
                        plane_from_orientation)

log = logging.getLogger(__name__)

ROUTES = {T1: "t1", T2: "t2", STIR: "t2", DIXON: "t2", OTHER: "synthesizer"}
# Within a stream, the series that stands for it in the case embedding: a plain T2 before STIR or Dixon.
STREAM_PREFERENCE = {T1: 0, T2: 0, STIR: 1, DIXON: 2, OTHER: 3}


def route(sequence: str, plane: str, planes: tuple[str, ...] = (SAGITTAL,)) -> str | None:
    """Encoder stream for a series, or None when the model does not use it (e.g. axial)."""
    if plane not in planes:
        return None
    return ROUTES.get(sequence)


@dataclass
class SeriesRecord:
    series_instance_uid: str
    sequence: str
    plane: str
    stream: str
    sop_instance_uids: list[str]
    geometry: Geometry
    pixels: np.ndarray = field(repr=False)  # (n, S, S) uint8, windowed crops
    description: str = ""

    def inputs(self, cfg: PreprocessConfig) -> torch.Tensor:
        return uint8_to_input(self.pixels, cfg)


@dataclass
class CaseRecord:
    case_id: str
    series: list[SeriesRecord]
    labels: dict[str, int] = field(default_factory=dict)
    report: str = ""
    vendor: str = ""
    split: str = ""
    findings: list[dict] = field(default_factory=list)
    patient: str = ""   # the patient (datasets fill it): k-fold folds and bootstraps group by it

    def by_stream(self, stream: str) -> list[SeriesRecord]:
        return [s for s in self.series if s.stream == stream]

    def first(self, stream: str) -> SeriesRecord | None:
        """The stream's main series: the plainest sequence (T2 before STIR / Dixon), then the most slices."""
        items = self.by_stream(stream)
        return min(items, key=lambda s: (STREAM_PREFERENCE.get(s.sequence, 3), -len(s.sop_instance_uids))) if items else None

    def label_vector(self, conditions: tuple[str, ...] = CONDITION_KEYS) -> torch.Tensor:
        return torch.tensor([float(self.labels.get(c, LabelValue.UNCERTAIN)) for c in conditions])


def stream_for(header, sequence: str, plane: str, planes: tuple[str, ...] = (SAGITTAL,)) -> str | None:
    """The encoder stream that reads a series (its first header, type and plane), or None: not MR (a missing
    Modality counts as MR), a plane the model does not read, a localizer or diffusion series."""
    if str(header.get("Modality", "MR") or "MR").upper() != "MR" or not_read_reason(header):
        return None
    return route(sequence, plane, planes)


def record_series(uid: str, datasets: list, cfg: PreprocessConfig, sequence: str | None = None,
                  plane: str | None = None, planes: tuple[str, ...] = (SAGITTAL,),
                  description: str = "") -> SeriesRecord | None:
    """Classify (shared rule table) and preprocess one DICOM series; None if not routed."""
    first = datasets[0]
    sequence = sequence or classify_sequence(first)[0]
    plane = plane or plane_from_orientation(first.get("ImageOrientationPatient"))
    stream = stream_for(first, sequence, plane, planes)
    if stream is None:
        return None
    prep = prepare_series(datasets, cfg)
    return SeriesRecord(uid, sequence, plane, stream, prep.sop_instance_uids, prep.geometry,
                        prep.as_uint8(), description or str(first.get("SeriesDescription", "")))


def record_from_study_input(study, cfg: PreprocessConfig, planes: tuple[str, ...] = (SAGITTAL,)) -> CaseRecord:
    """A spinefm.study.StudyInput (what the backend passes) -> CaseRecord without labels."""
    series = []
    for s in study.series:
        if not s.datasets:
            continue
        rec = record_series(s.series_instance_uid, s.datasets, cfg, s.sequence if s.sequence_rule else None,
                            s.plane if s.sequence_rule else None, planes, s.description)
        if rec is not None:
            series.append(rec)
    return CaseRecord(study.study_instance_uid, series)


# ---------------------------------------------------------------- phantom data

def record_from_phantom(seed: int, index: int, cfg: PreprocessConfig, phantom_config: dict | None = None) -> CaseRecord:
    """spine_phantom.generate_study -> CaseRecord, reading the pixels through its DICOM datasets."""
    import spine_phantom

    config = spine_phantom.PhantomConfig(**phantom_config) if isinstance(phantom_config, dict) else phantom_config
    study = spine_phantom.generate_study(seed, index, config=config)
    truth = study.truth
    series = []
    for s in study.series:
        datasets = list(s.datasets())
        rec = record_series(s.series_instance_uid, datasets, cfg, description=getattr(s, "description", ""))
        if rec is not None:
            series.append(rec)
    split = spine_phantom.split_of(seed, index)
    report = truth.get("report", {})
    return CaseRecord(f"phantom-{seed}-{index}", series, {k: int(v) for k, v in truth.get("labels", {}).items()},
                      report.get("text", "") if isinstance(report, dict) else str(report),
                      str(truth.get("vendor", "")), split, list(truth.get("findings", [])))


def save_record(rec: CaseRecord, path: Path) -> None:
    meta = asdict(rec)
    arrays = {}
    for i, s in enumerate(meta["series"]):
        arrays[f"series_{i}"] = rec.series[i].pixels
        s.pop("pixels")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    tmp.replace(path)


def load_record(path: Path) -> CaseRecord:
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        series = []
        for i, s in enumerate(meta.pop("series")):
            s["geometry"] = Geometry(**s["geometry"])
            series.append(SeriesRecord(pixels=z[f"series_{i}"], **s))
    return CaseRecord(series=series, **meta)


def cache_key(cfg: PreprocessConfig, phantom_config: dict | None = None) -> str:
    key = f"r{cfg.resize}-c{cfg.crop}-p{cfg.low_percentile:g}-{cfg.high_percentile:g}"
    if phantom_config:
        key += "-" + hashlib.sha256(json.dumps(phantom_config, sort_keys=True).encode()).hexdigest()[:8]
    return key


def phantom_cases(seed: int, indices, cfg: PreprocessConfig, cache_dir: str | Path,
                  phantom_config: dict | None = None, progress: bool = False) -> list[CaseRecord]:
    """Generate (once) and load phantom cases; cached as <cache_dir>/<key>/<seed>-<index>.npz."""
    root = Path(cache_dir) / cache_key(cfg, phantom_config)
    out = []
    indices = list(indices)
    it = indices
    if progress:
        from tqdm import tqdm

        it = tqdm(indices, desc="phantoms", leave=False)
    for index in it:
        path = root / f"{seed}-{index}.npz"
        if path.exists():
            try:
                out.append(load_record(path))
                continue
            except Exception as exc:  # a truncated cache file is regenerated
                log.warning("cache file %s unreadable (%s); regenerating", path, exc)
        rec = record_from_phantom(seed, index, cfg, phantom_config)
        save_record(rec, path)
        out.append(rec)
    return out


# ---------------------------------------------------------------- random cases (tests, before phantoms)

def random_cases(n: int, cfg: PreprocessConfig, n_slices: int = 6, seed: int = 0,
                 conditions: tuple[str, ...] = CONDITION_KEYS, streams=("t1", "t2", "synthesizer")) -> list[CaseRecord]:
    """Learnable toy cases: a bright blob whose presence is the first condition's label."""
    g = np.random.default_rng(seed)
    cases = []
    s = cfg.crop
    for i in range(n):
        labels = {c: int(g.integers(-1, 2)) for c in conditions}
        labels[conditions[0]] = i % 2
        series, findings = [], []
        for j, stream in enumerate(streams):
            vol = g.normal(0.3, 0.05, size=(n_slices, s, s)).clip(0, 1).astype(np.float32)
            uid = f"1.2.{i}.{j}"
            sops = [f"{uid}.{k}" for k in range(n_slices)]
            if labels[conditions[0]] == 1:
                k = n_slices // 2
                vol[k, s // 4: s // 2, s // 4: s // 2] = 0.9
                findings.append({"condition": conditions[0], "level": "L4-L5", "label": 1,
                                 "key_slices": [{"series_instance_uid": uid, "sop_instance_uid": sops[k], "slice_index": k}],
                                 "boxes": [{"series_instance_uid": uid, "sop_instance_uid": sops[k], "slice_index": k,
                                            "box": [s // 4, s // 4, s // 2, s // 2]}]})
            prep = prepare_volume(vol * 1000, cfg, sops)
            seq = {"t1": T1, "t2": T2}.get(stream, STIR)
            series.append(SeriesRecord(uid, seq, SAGITTAL, stream, sops, prep.geometry, prep.as_uint8()))
        report = f"case {i}. " + " ".join(f"{c} {'present' if v == 1 else 'absent'}." for c, v in labels.items() if v >= 0)
        cases.append(CaseRecord(f"rand-{i}", series, labels, report, ["A", "B"][i % 2], ["train", "test"][i % 4 == 3], findings))
    return cases


def sample_slices(n: int, k: int, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of at most k of n slices, evenly spread (random phase when training)."""
    if n <= k:
        return torch.arange(n)
    step = n / k
    offset = float(torch.rand(1, generator=generator)) * step if train else step / 2
    return (torch.arange(k) * step + offset).long().clamp(max=n - 1)
