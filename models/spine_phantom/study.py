"""One synthetic study: anatomy + findings -> label maps -> series pixels -> truth.

``generate_study(seed, index)`` is deterministic in (seed, index): independent
random streams for anatomy, findings, scan planning, noise and report wording
(so the normal twin of a study, ``PhantomConfig(normal=True)``, has the same
patient, slices and noise, only without findings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spinefm.conditions import CONDITION_KEYS, LabelValue

from . import __version__
from .anatomy import NAMES, VARIANTS, Spine, apply_variant, make_spine
from .config import PhantomConfig
from .dicom import instance_datasets
from .ids import patient_id, patient_name, split_of, study_datetime, uid
from .pathology import Finding, apply_finding, sample_findings
from .physics import Protocol, render_stack, smooth_field, tissue_signals
from .protocols import VENDOR_STYLES, protocol_for
from .report import write_report
from .scan import (SliceGeometry, StackPlan, axial_levels, label_stack, pixel_of, plan_axial, plan_localizer,
                   plan_sagittal, plan_sagittal_varied)
from .truth import locate

SEQUENCE_ORDER = ("T1", "T2", "STIR", "DIXON", "OTHER")


@dataclass
class PhantomSeries:
    series_instance_uid: str
    sequence: str
    plane: str
    description: str
    pixels: np.ndarray                  # uint16 [n_slices, rows, cols], 12-bit values
    sop_instance_uids: list[str]
    number: int
    protocol: Protocol
    geometry: list[SliceGeometry]
    thickness: float
    gap: float
    pixel_spacing: tuple[float, float]
    window: tuple[float, float]
    levels: list[str] = field(default_factory=list)  # disc level of each axial slice
    lut: np.ndarray | None = None
    study: "PhantomStudy | None" = field(default=None, repr=False)

    def datasets(self) -> list:
        """Full pydicom datasets (with file meta), one per slice; built on demand."""
        return instance_datasets(self.study, self)


@dataclass
class PhantomStudy:
    seed: int
    index: int
    regions: tuple[str, ...]
    vendor: str
    model_name: str
    field_strength: float
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    age: int
    study_instance_uid: str
    frame_of_reference_uid: str
    study_date: str
    study_time: str
    accession: str
    study_id: str
    split: str
    series: list[PhantomSeries] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    truth: dict = field(default_factory=dict)
    label_maps: dict = field(default_factory=dict)   # plane -> uint8 tissue labels [n, rows, cols]
    plans: dict = field(default_factory=dict)        # plane -> StackPlan
    spine: Spine | None = field(default=None, repr=False)
    acquisition: dict = field(default_factory=dict)  # what the "varied" planner drew (coverage, rotation, ...)

    @property
    def study_dir(self) -> str:
        return f"seed{self.seed}_{self.index:04d}"

    def datasets(self) -> list:
        return [ds for s in self.series for ds in s.datasets()]


def _regions(rng: np.random.Generator, cfg: PhantomConfig) -> tuple[str, ...]:
    if cfg.regions:
        return tuple(cfg.regions)
    options = [r for r, _ in cfg.region_mix]
    w = np.array([p for _, p in cfg.region_mix], dtype=float)
    return tuple(options[int(rng.choice(len(options), p=w / w.sum()))])


def _level_name(spine: Spine, s: float) -> str:
    k = int(np.clip(np.searchsorted(spine.top, s, side="right") - 1, 0, len(spine.h) - 1))
    if s <= spine.bottom[k]:
        return NAMES[k]
    return f"{NAMES[k]}-{NAMES[k + 1]}"


def _bias(rng: np.random.Generator, rows: int, cols: int, posterior_axis: int) -> np.ndarray:
    """Receive-coil sensitivity: strongest at the posterior (spine) coil, plus a smooth wobble."""
    n = cols if posterior_axis == 1 else rows
    u = np.linspace(0, 1, n)
    coil = 0.55 + 0.6 * np.exp(-(1 - u) / rng.uniform(0.35, 0.7))
    f = (coil[None, :] if posterior_axis == 1 else coil[:, None]) * np.ones((rows, cols))
    f = f * (1 + 0.12 * smooth_field(rng, (rows, cols), 3))
    return (f / f.max()).astype(np.float32)


def _texture(rng: np.random.Generator, n: int, rows: int, cols: int) -> np.ndarray:
    pad = 24
    coarse = smooth_field(rng, (rows + pad, cols + pad), 14)
    fine = smooth_field(rng, (rows + pad, cols + pad), 60)
    field_ = (0.55 * coarse + 0.45 * fine).astype(np.float32)
    out = np.empty((n, rows, cols), dtype=np.float32)
    for i in range(n):
        dy, dx = (7 * i) % pad, (11 * i) % pad
        out[i] = field_[dy:dy + rows, dx:dx + cols]
    return out


def generate_study(seed: int, index: int, config: PhantomConfig | None = None) -> PhantomStudy:
    """Generate one study (pixels, truth, report) deterministically from (seed, index)."""
    cfg = config or PhantomConfig()
    rows, cols = cfg.image_size
    streams = np.random.SeedSequence([int(seed), int(index), 20240917]).spawn(6)
    r_anat, r_find, r_scan, r_noise, r_text, r_draw = (np.random.default_rng(s) for s in streams)

    regions = _regions(r_anat, cfg)
    vendor = str(cfg.vendors[int(r_anat.integers(len(cfg.vendors)))])
    style = VENDOR_STYLES.get(vendor, VENDOR_STYLES["SIEMENS"])
    model = str(style.models[int(r_anat.integers(len(style.models)))])
    field_strength = 3.0 if ("3T" in model or r_anat.random() < 0.3) else 1.5
    age = int(r_anat.integers(22, 86))
    sex = "F" if r_anat.random() < 0.5 else "M"
    spine = make_spine(r_anat)
    varied = cfg.acquisition == "varied"
    # the varied acquisition draws from its own stream, so "fixed" studies keep their bytes
    r_var = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 20240917, 2]))
    if varied and r_var.random() < cfg.variant_probability:
        apply_variant(spine, str(r_var.choice(VARIANTS[1:])))
    normal = spine.copy()
    date, time = study_datetime(seed, index)

    findings = [] if cfg.normal else sample_findings(r_find, regions, cfg)
    for f in findings:
        apply_finding(spine, f, r_draw)

    # scan planning (independent of the findings, so the normal twin matches)
    if varied:
        sag, acquisition = plan_sagittal_varied(spine, regions, r_var)
    else:
        sag, acquisition = plan_sagittal(spine, regions, rows, cols, r_scan), {"coverage_mode": "fixed"}
    other = None
    if cfg.include_other_sequence and r_scan.random() < cfg.other_sequence_probability:
        other = "DIXON" if r_scan.random() < 0.5 else "OTHER"
    prefer = [f.level for f in findings if "-" in f.level]
    plans = {"sagittal": sag}
    if cfg.include_axial:
        prefer_levels = prefer if not cfg.normal else []
        levels = axial_levels(spine, regions, cfg.max_axial_discs, prefer_levels)
        plans["axial"] = plan_axial(spine, levels, rows, cols, cfg.axial_slices_per_disc, r_scan)

    study = PhantomStudy(
        seed=seed, index=index, regions=regions, vendor=style.manufacturer, model_name=model,
        field_strength=field_strength, patient_id=patient_id(seed, index), patient_name=patient_name(seed, index),
        birth_date=f"{int(date[:4]) - age}{date[4:]}", sex=sex, age=age,
        study_instance_uid=uid(seed, index, "study"), frame_of_reference_uid=uid(seed, index, "for"),
        study_date=date, study_time=time, accession=f"PH{seed % 1000:03d}{index:05d}",
        study_id=f"{index % 100000}", split=split_of(seed, index), spine=spine, plans=plans,
        acquisition=acquisition)

    seq_planes = [("T1", "sagittal"), ("T2", "sagittal"), ("STIR", "sagittal")]
    if other:
        seq_planes.append((other, "sagittal"))
    if cfg.include_axial:
        seq_planes.append(("T2", "axial"))
    protocols = [protocol_for(seq, plane, r_scan) for seq, plane in seq_planes]

    study.label_maps = {plane: label_stack(spine, plan) for plane, plan in plans.items()}
    textures = {plane: _texture(r_noise, len(plan.slices), plan.rows, plan.cols) for plane, plan in plans.items()}
    biases = {"sagittal": _bias(r_noise, sag.rows, sag.cols, 1), "axial": _bias(r_noise, rows, cols, 0)}
    scale, max_value = 1.0, 4095
    if varied:  # vendors scale differently (some into 16 bits), and coils and patients shade unevenly
        scale, max_value = float(np.exp(r_var.uniform(np.log(0.25), np.log(4.0)))), 65535
        extra = 1 + r_var.uniform(0.0, 0.4) * smooth_field(r_var, (sag.rows, sag.cols), 2)
        biases["sagittal"] = (biases["sagittal"] * extra / (biases["sagittal"] * extra).max()).astype(np.float32)
        study.acquisition["intensity_scale"] = round(scale, 3)
    for number, ((seq, plane), prot) in enumerate(zip(seq_planes, protocols), start=2):
        plan = plans[plane]
        snr = float(r_noise.uniform(14, 40)) * (1.3 if field_strength > 2 else 1.0)
        gain = style.gain * float(r_noise.uniform(0.85, 1.15)) * scale
        pixels = render_stack(study.label_maps[plane], prot, r_noise, texture=textures[plane],
                              bias=biases[plane], snr=snr, gain=gain, max_value=max_value)
        sample = pixels[:, ::4, ::4]
        lo, hi = np.percentile(sample, [1.0, 99.7])
        sid = uid(seed, index, "series", number)
        study.series.append(PhantomSeries(
            series_instance_uid=sid, sequence=seq, plane=plane, description=style.names[(seq, plane)],
            pixels=pixels, sop_instance_uids=[uid(seed, index, "sop", number, i) for i in range(len(plan.slices))],
            number=number, protocol=prot, geometry=plan.slices, thickness=plan.thickness, gap=plan.gap,
            pixel_spacing=plan.slices[0].spacing, window=(float((lo + hi) / 2), float(max(hi - lo, 10) * 1.1)),
            levels=list(plan.levels), lut=tissue_signals(prot).astype(np.float32), study=study))

    # ground truth: measure what was drawn; drop findings nothing shows
    kept = []
    for f in findings:
        hits = []
        for plane, plan in plans.items():
            ser = [s for s in study.series if s.plane == plane]
            hits += locate(f, normal, plan, study.label_maps[plane], ser)
        if hits:
            kept.append((f, hits))
    study.findings = [f for f, _ in kept]
    conus = _level_name(spine, spine.conus_s)
    anatomy = anatomy_truth(spine, sag)
    report = write_report(regions, study.series, study.findings, conus, r_text,
                          disc_levels=anatomy["visible_discs"] if varied else None)
    r_loc = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 20240917, 3]))
    localizer_anatomy = None
    if varied and r_loc.random() < cfg.localizer_probability:  # its own stream: the other series keep their bytes
        localizer, localizer_anatomy = _localizer_series(study, spine, regions, style, r_loc)
        study.series.append(localizer)
    study.truth = _truth(study, kept, report, conus)
    study.truth["anatomy"] = {"variant": spine.variant, **study.acquisition, **anatomy}
    if localizer_anatomy is not None:  # the same record on the localizer's own grid (its pixels differ)
        study.truth["localizer_anatomy"] = {"variant": spine.variant, **localizer_anatomy}
    if not cfg.region_tags:
        study.truth["region_tags"] = False
    return study


def _localizer_series(study: PhantomStudy, spine: Spine, regions, style,
                      rng: np.random.Generator) -> tuple[PhantomSeries, dict]:
    """Series 1: the sagittal localizer, low resolution and noisy, kept in the study as archives keep it;
    with its anatomy truth (``anatomy_truth`` on its own grid)."""
    plan = plan_localizer(spine, regions, rng)
    prot = protocol_for("LOCALIZER", "sagittal", rng)
    labels = label_stack(spine, plan)
    pixels = render_stack(labels, prot, rng, texture=_texture(rng, len(plan.slices), plan.rows, plan.cols),
                          bias=_bias(rng, plan.rows, plan.cols, 1), snr=float(rng.uniform(8, 20)),
                          gain=style.gain * float(rng.uniform(0.7, 1.3)))
    lo, hi = np.percentile(pixels[:, ::4, ::4], [1.0, 99.7])
    seed, index = study.seed, study.index
    return PhantomSeries(
        series_instance_uid=uid(seed, index, "series", 1), sequence="LOCALIZER", plane="sagittal",
        description=style.names[("LOCALIZER", "sagittal")], pixels=pixels,
        sop_instance_uids=[uid(seed, index, "sop", 1, i) for i in range(len(plan.slices))], number=1,
        protocol=prot, geometry=plan.slices, thickness=plan.thickness, gap=plan.gap,
        pixel_spacing=plan.slices[0].spacing, window=(float((lo + hi) / 2), float(max(hi - lo, 10) * 1.1)),
        lut=tissue_signals(prot).astype(np.float32), study=study), anatomy_truth(spine, plan)


LANDMARK_MARGIN_MM = 4.0  # a disc centre this far inside the image: most of the disc shows


def anatomy_truth(spine: Spine, plan: StackPlan) -> dict:
    """Where every vertebral body and disc centre (C2 ... S1, and S1-S2 when mobile) lies on the
    sagittal grid, and which of them the field of view shows (centre at least LANDMARK_MARGIN_MM inside)."""
    names = list(NAMES[NAMES.index("C2"): NAMES.index("S1") + 1])
    discs = [f"{a}-{b}" for a, b in zip(names[:-1], names[1:])]
    if not spine.fused[NAMES.index("S1")]:
        discs.append("S1-S2")
    margin = LANDMARK_MARGIN_MM / plan.slices[0].spacing[0]

    def where(levels):
        out = {}
        for lv in levels:
            r, c = pixel_of(plan, *spine.landmark(lv))
            out[lv] = [round(r, 2), round(c, 2)]
        return out

    def inside(points):
        return [lv for lv, (r, c) in points.items()
                if margin <= r <= plan.rows - 1 - margin and margin <= c <= plan.cols - 1 - margin]

    d, v = where(discs), where(names)
    vis_d, vis_v = inside(d), inside(v)
    return {"grid": [plan.rows, plan.cols], "pixel_spacing": round(float(plan.slices[0].spacing[0]), 6),
            "discs": d, "vertebrae": v, "visible_discs": vis_d, "visible_vertebrae": vis_v,
            "coverage": f"{vis_v[0]}-{vis_v[-1]}" if vis_v else ""}


def _truth(study: PhantomStudy, kept, report: dict, conus: str) -> dict:
    labels = {k: LabelValue.ABSENT for k in CONDITION_KEYS}
    for f, _ in kept:
        if f.label == LabelValue.PRESENT or labels[f.condition] == LabelValue.ABSENT:
            labels[f.condition] = LabelValue.PRESENT if f.label == LabelValue.PRESENT else LabelValue.UNCERTAIN
    findings = []
    for f, hits in kept:
        boxes, keys, seqs = [], [], set()
        for ser, i, box in hits:
            ref = {"series_instance_uid": ser.series_instance_uid, "sop_instance_uid": ser.sop_instance_uids[i],
                   "slice_index": int(i)}
            keys.append(ref)
            boxes.append({**ref, "box": [int(v) for v in box]})
            seqs.add(ser.sequence)
        findings.append({
            "condition": f.condition, "level": f.level, "severity": f.severity, "label": int(f.label),
            "side": f.side, "detail": f.detail,
            "visible_on": [s for s in SEQUENCE_ORDER if s in seqs],
            "key_slices": keys, "boxes": boxes})
    return {
        "synthetic": True,
        "generator": f"spine_phantom {__version__}",
        "seed": int(study.seed), "index": int(study.index), "split": study.split,
        "patient_id": study.patient_id, "patient_name": study.patient_name,
        "study_instance_uid": study.study_instance_uid, "study_date": study.study_date,
        "vendor": study.vendor, "model": study.model_name, "field_strength": study.field_strength,
        "age": study.age, "sex": study.sex,
        "regions": list(study.regions), "conus_level": conus,
        "series": [{
            "series_instance_uid": s.series_instance_uid, "sequence": s.sequence, "plane": s.plane,
            "description": s.description, "series_number": s.number,
            "sop_instance_uids": list(s.sop_instance_uids),
            "pixel_spacing": [round(float(v), 6) for v in s.pixel_spacing],
            "rows": int(s.pixels.shape[1]), "columns": int(s.pixels.shape[2]),
            "slice_thickness": float(s.thickness),
            **({"levels": s.levels} if s.plane == "axial" else {}),
        } for s in study.series],
        "labels": labels,
        "findings": findings,
        "report": report,
    }


def write_study(study: PhantomStudy, out_dir) -> Path:
    """Write ``<out>/<study_dir>/<series_dir>/<n>.dcm`` and ``truth.json``; return the study folder."""
    import pydicom

    root = Path(out_dir) / study.study_dir
    for s in study.series:
        d = root / f"{s.number:02d}_{s.sequence}_{s.plane}"
        d.mkdir(parents=True, exist_ok=True)
        for i, ds in enumerate(s.datasets(), start=1):
            pydicom.dcmwrite(d / f"{i:03d}.dcm", ds, enforce_file_format=True)
    (root / "truth.json").write_text(json.dumps(study.truth, indent=1) + "\n")
    return root
