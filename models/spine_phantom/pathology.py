"""The 17 conditions as drawable findings: choose level and severity, then edit the spine.

Each finding changes the *tissue* model (never pixels), so every sequence shows
it according to its physics, and the ground-truth box is measured afterwards
from what was actually drawn (see :mod:`truth`). ``footprint`` boxes in (x, s, t)
millimetres bound where a finding may change tissue; they limit the box search.

Conditions come from ``spinefm.conditions`` (the registry): keys, level kinds
(disc / vertebra / cord) and allowed regions are read there, not repeated here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinefm.conditions import CONDITIONS, CORD_LEVEL, DISC_LEVEL, LabelValue, get_condition

from .anatomy import INDEX, NAMES, Blob, Bump, Spine
from .config import PhantomConfig
from .tissues import BONE, CANAL_CONTENT, T

SEVERITIES = ("mild", "moderate", "severe")
_MAG = {"mild": 0.33, "moderate": 0.62, "severe": 1.0}
SUBTLE_MAG = 0.22

# Vertebrae whose discs / bodies may carry a finding, per region (kept off the image edges).
REGION_VERTEBRAE = {
    "cervical": ("C2", "C3", "C4", "C5", "C6", "C7"),
    "thoracic": tuple(f"T{i}" for i in range(1, 13)),
    "lumbar": ("L1", "L2", "L3", "L4", "L5"),
}
REGION_DISC_UPPER = {
    "cervical": ("C2", "C3", "C4", "C5", "C6", "C7"),
    "thoracic": tuple(f"T{i}" for i in range(1, 12)),
    "lumbar": ("T12", "L1", "L2", "L3", "L4", "L5"),
}
# Where degenerative disc disease concentrates (weights by upper vertebra of the disc).
_DISC_WEIGHT = {"C5": 3.5, "C6": 3.0, "C4": 1.5, "C3": 1.0, "C2": 0.4, "C7": 0.6,
                "L4": 3.5, "L5": 3.0, "L3": 1.5, "L2": 0.8, "L1": 0.5, "T12": 0.4}
_CONDITION_LEVEL_WEIGHT = {
    "spondylolisthesis": {"L4": 4, "L5": 3, "L3": 1, "C3": 1, "C4": 1, "C5": 0.6},
    "par": {"L5": 6, "L4": 2.5, "L3": 0.5},
    "fracture": {"T11": 2, "T12": 3, "L1": 3, "L2": 1.5, "T7": 1, "T8": 1, "C5": 1, "C6": 1},
    "synovial": {"L4": 5, "L5": 2, "L3": 1, "C6": 1, "C5": 1, "C4": 1},
    "cyst": {"S1": 4},
}


@dataclass
class Finding:
    condition: str
    level: str
    severity: str
    label: int                 # 1 present, -1 uncertain (subtle, hedged in the report)
    side: str = "central"      # central | left | right | bilateral
    detail: dict = field(default_factory=dict)
    # where the finding may change tissue: list of (x0, x1, s0, s1, t0, t1) in mm
    footprint: list[tuple[float, float, float, float, float, float]] = field(default_factory=list)

    @property
    def magnitude(self) -> float:
        return SUBTLE_MAG if self.label == LabelValue.UNCERTAIN else _MAG[self.severity]


def _levels_for(cond_key: str, regions: tuple[str, ...]) -> list[str]:
    cond = get_condition(cond_key)
    out: list[str] = []
    for r in regions:
        if r not in cond.regions:
            continue
        if cond.level_kind == DISC_LEVEL:
            for up in REGION_DISC_UPPER[r]:
                lvl = f"{up}-{NAMES[INDEX[up] + 1]}"
                if lvl not in out:
                    out.append(lvl)
        else:
            verts = list(REGION_VERTEBRAE[r])
            if cond.level_kind == CORD_LEVEL and r == "lumbar" and cond_key == "lesion_intramedullary":
                verts = []
            for v in verts:
                if v not in out:
                    out.append(v)
    if cond_key == "cyst" and "lumbar" in regions:
        out.append("S1")
    if cond_key == "par":
        out = [v for v in out if v.startswith("L")]
    if cond_key == "lesion_intramedullary":
        out = [v for v in out if v[0] in "CT" and v not in ("T11", "T12")]
    return out


def _weight(cond_key: str, level: str) -> float:
    up = level.split("-")[0]
    table = _CONDITION_LEVEL_WEIGHT.get(cond_key)
    if table is not None:
        return table.get(up, 0.3)
    if get_condition(cond_key).level_kind == DISC_LEVEL:
        return _DISC_WEIGHT.get(up, 0.7)
    return 1.0


# Which "slot" a condition occupies at its level, so incompatible findings do not pile up.
_SLOT = {"herniation": "disc", "inflammation": "disc", "fracture": "marrow", "edema": "marrow",
         "hemangioma": "marrow", "lesion_extramedullary": "sac", "lesion_intramedullary": "cord",
         "lipomatosis": "sac", "synovial": "recess", "subarticular": "recess", "cyst": "foramen",
         "neuroforaminal": "foramen", "spondylolisthesis": "align", "par": "pars",
         "disc_height": "height", "canal": "canal", "compression": "canal"}


def sample_findings(rng: np.random.Generator, regions: tuple[str, ...], config: PhantomConfig) -> list[Finding]:
    """Draw findings: each condition present with its prevalence, at a plausible level."""
    findings: list[Finding] = []
    used: set[tuple[str, str]] = set()
    for cond in CONDITIONS:
        u = rng.random()
        levels = _levels_for(cond.key, regions)
        if u >= config.prevalence_of(cond.key) or not levels:
            continue
        w = np.array([_weight(cond.key, lv) for lv in levels], dtype=float)
        order = rng.choice(len(levels), size=len(levels), replace=False, p=w / w.sum())
        level = None
        for i in order:
            lv = levels[i]
            vert = lv.split("-")[0]
            keys = {(_SLOT[cond.key], lv), (_SLOT[cond.key], vert)}
            if not keys & used:
                level = lv
                used |= keys
                break
        if level is None:
            continue
        w_sev = np.asarray(config.severity_weights, dtype=float)
        severity = str(rng.choice(SEVERITIES, p=w_sev / w_sev.sum()))
        label = LabelValue.UNCERTAIN if rng.random() < config.uncertain_fraction else LabelValue.PRESENT
        if label == LabelValue.UNCERTAIN:
            severity = "mild"
        side = "central"
        if cond.key in ("neuroforaminal", "subarticular", "synovial", "cyst"):
            side = str(rng.choice(["left", "right", "bilateral"], p=[0.4, 0.35, 0.25]))
            if cond.key in ("synovial", "cyst"):
                side = "left" if side == "bilateral" else side
        elif cond.key == "par":
            side = "bilateral" if rng.random() < 0.75 else str(rng.choice(["left", "right"]))
        elif cond.key == "herniation":
            side = str(rng.choice(["central", "left", "right"], p=[0.4, 0.3, 0.3]))
        findings.append(Finding(cond.key, level, severity, label, side))
    # cord or thecal sac compression comes with canal stenosis at the same level
    comp = [f for f in findings if f.condition == "compression"]
    for f in comp:
        if not any(g.condition == "canal" for g in findings):
            label = LabelValue.PRESENT if f.label == LabelValue.PRESENT else LabelValue.UNCERTAIN
            findings.append(Finding("canal", f.level, "severe" if f.severity == "severe" else "moderate", label,
                                    "central"))
    return findings


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

def _sides(side: str) -> list[float]:
    return {"left": [1.0], "right": [-1.0], "bilateral": [1.0, -1.0], "central": [0.0]}[side]


def _profile_at(spine: Spine, s: float) -> dict:
    p = spine.profile(np.array([s], dtype=float))
    return {k: float(v[0]) for k, v in p.items()}


def apply_finding(spine: Spine, f: Finding, rng: np.random.Generator) -> None:
    """Edit ``spine`` in place to show finding ``f`` and set ``f.footprint``."""
    sc = spine.scale
    m = f.magnitude
    up = f.level.split("-")[0]
    i = INDEX[up]
    h, depth, hw = float(spine.h[i]), float(spine.depth[i]), float(spine.hw[i])
    dlen = float(spine.disc[i])
    s_d = spine.disc_center(i)
    s_v = spine.body_center(i)
    top, bot = float(spine.top[i]), float(spine.bottom[i])
    p_d = _profile_at(spine, s_d)
    p_v = _profile_at(spine, s_v)
    cap, chw = p_d["canal_ap"], p_d["canal_hw"]
    pw = (9.0 if p_d["region"] < 0.5 else (7.0 if p_d["region"] < 1.5 else 9.0)) * sc
    fp = f.footprint
    key = f.condition
    subtle = f.label == LabelValue.UNCERTAIN

    if key == "canal":
        spine.bumps.append(Bump("sac_scale", s_d, dlen / 2 + 7 * sc, 1 - 0.25 - 0.45 * m, "mul"))
        spine.bumps.append(Bump("lf", s_d, dlen / 2 + 8 * sc, (1.2 + 3.5 * m) * sc))
        spine.blobs.append(Blob(T.ANNULUS, (0.0, s_d, 0.0), (chw * 0.85, dlen / 2 + 1.5 * sc, (1.5 + 2.5 * m) * sc),
                                CANAL_CONTENT + (T.LIGAMENT,)))
        fp.append((-chw - 1, chw + 1, s_d - dlen / 2 - 9 * sc, s_d + dlen / 2 + 9 * sc, -2.0, cap + 2))
    elif key == "neuroforaminal":
        for sd in _sides(f.side):
            spine.bumps.append(Bump("foramen", s_d - 0.25 * dlen - 0.2 * h, 0.55 * h + dlen, 0.35 + 0.6 * m, side=sd))
            x0, x1 = sorted((sd * (chw - 1), sd * (chw + pw + 1)))
            fp.append((x0, x1, s_d - 0.7 * h - dlen, s_d + dlen, -2.0, 0.75 * cap))
    elif key == "subarticular":
        for sd in _sides(f.side):
            spine.bumps.append(Bump("recess", s_d, dlen / 2 + 6 * sc, 0.35 + 0.65 * m, side=sd))
            x0, x1 = sorted((sd * (chw - 10 * sc), sd * (chw + 1)))
            fp.append((x0, x1, s_d - dlen / 2 - 8 * sc, s_d + dlen / 2 + 8 * sc, 0.1 * cap, cap + 2))
    elif key == "herniation":
        size = (2.5 + 5.0 * m) * sc
        xc = {"central": 0.0, "left": 4.0 * sc, "right": -4.0 * sc}[f.side]
        migrate = 0.0
        if f.severity == "severe" and not subtle:
            migrate = float(rng.choice([-1, 1])) * 0.25 * h
            f.detail["migration"] = "superior" if migrate < 0 else "inferior"
        f.detail["type"] = "extrusion" if f.severity == "severe" else "protrusion"
        f.detail["size_mm"] = round(size, 1)
        rx, rs, rt = (5.0 + 3.0 * m) * sc, dlen / 2 + (0.5 + 2 * m) * sc + abs(migrate) / 2, size / 2 + 1.5 * sc
        spine.blobs.append(Blob(T.HERNIATED, (xc, s_d + migrate / 2, size / 2 - 1.5 * sc), (rx, rs, rt),
                                CANAL_CONTENT + (T.LIGAMENT,)))
        fp.append((xc - rx - 1, xc + rx + 1, s_d + migrate / 2 - rs - 2, s_d + migrate / 2 + rs + 2, -3.0, size + 2))
    elif key == "disc_height":
        loss = 0.25 + 0.45 * m
        spine.disc_loss[i] = loss
        spine.nucleus[i] = T.NUCLEUS_DRY
        f.detail["loss_pct"] = int(round(100 * loss, -1))
        fp.append((-hw - 2, hw + 2, bot - 1.5, bot + dlen + 1.5, -depth - 3, 2.0))
    elif key == "spondylolisthesis":
        retro = rng.random() < 0.12
        d = (0.1 + 0.2 * m) * depth * (-0.6 if retro else 1.0)
        f.detail["direction"] = "retrolisthesis" if retro else "anterolisthesis"
        f.detail["grade"] = "I" if abs(d) < 0.25 * depth else "II"
        f.detail["mm"] = round(abs(d), 1)
        above = spine.body_center(i - 1)
        spine.bumps.append(Bump("shift", s_d, dlen / 2 + 1.0, -d, "step"))
        spine.bumps.append(Bump("shift", above, 0.45 * float(spine.h[i - 1]), d, "step"))
        fp.append((-hw - 2, hw + 2, top - 4, s_d + dlen / 2 + 6, -depth - abs(d) - 4, cap + abs(d) + 2))
    elif key == "par":
        tm = 0.5 * (0.5 * cap + cap + 8 * sc)
        for sd in _sides(f.side):
            xc = sd * (chw + pw / 2)
            spine.blobs.append(Blob(T.FLUID if not subtle else T.FLUID_FAINT, (xc, top + 0.7 * h, tm),
                                    (pw * 0.75, (0.9 + 0.9 * m) * sc, cap * 0.45 + 4 * sc), BONE + (T.FACET_FLUID,)))
            if m > 0.5:
                spine.blobs.append(Blob(T.EDEMA_FAINT, (xc, top + 0.7 * h, tm), (pw * 0.7, 4.5 * sc, cap * 0.4 + 3 * sc),
                                        (T.MARROW,)))
            x0, x1 = sorted((sd * (chw - 1), sd * (chw + pw + 1)))
            fp.append((x0, x1, top + 0.7 * h - 7 * sc, top + 0.7 * h + 7 * sc, 0.3 * cap - 2, cap + 9 * sc))
    elif key == "compression":
        cord = p_d["cord_ap"] > 1.0
        f.detail["structure"] = "cord" if cord else "thecal sac"
        spine.bumps.append(Bump("sac_scale", s_d, dlen / 2 + 6 * sc, 0.3 - 0.15 * m, "mul"))
        if cord:
            spine.bumps.append(Bump("cord_scale", s_d, dlen / 2 + 5 * sc, 1 - 0.25 - 0.3 * m, "mul"))
        spine.blobs.append(Blob(T.SCLEROSIS, (0.0, s_d, 0.0), (chw * 0.7, dlen / 2 + 2 * sc, (1.5 + 2.5 * m) * sc),
                                CANAL_CONTENT + (T.LIGAMENT,)))
        fp.append((-chw - 1, chw + 1, s_d - dlen / 2 - 9 * sc, s_d + dlen / 2 + 9 * sc, -2.0, cap + 2))
    elif key == "fracture":
        wedge = 0.12 + 0.33 * m
        spine.wedge[i] = wedge
        acute = rng.random() < 0.6 or subtle
        f.detail["loss_pct"] = int(round(100 * wedge / 5) * 5)
        f.detail["acute"] = bool(acute)
        if acute:
            spine.blobs.append(Blob(T.FRACTURE_EDEMA, (0.0, top + wedge * h * 0.5 + (3 + 2 * m) * sc, -depth / 2),
                                    (hw * 1.1, (3.0 + 3.0 * m) * sc, depth * 0.6), (T.MARROW,)))
        fp.append((-hw - 2, hw + 2, top - 3, bot + 2, -depth - 3, 2.0))
    elif key == "edema":
        where = rng.choice(["superior", "inferior", "diffuse"])
        f.detail["pattern"] = "endplate" if where != "diffuse" else "diffuse"
        sc_ = {"superior": 0.25, "inferior": 0.75, "diffuse": 0.5}[where]
        rs = h * (0.18 + 0.22 * m) if where != "diffuse" else h * (0.3 + 0.2 * m)
        c = (float(rng.uniform(-0.25, 0.25)) * hw, top + sc_ * h, -depth * 0.5)
        r = (hw * (0.5 + 0.3 * m), rs, depth * (0.25 + 0.2 * m))
        spine.blobs.append(Blob(T.EDEMA if not subtle else T.EDEMA_FAINT, c, r, (T.MARROW,)))
        fp.append((c[0] - r[0] - 1, c[0] + r[0] + 1, c[1] - r[1] - 1, c[1] + r[1] + 1, c[2] - r[2] - 1, c[2] + r[2] + 1))
    elif key == "inflammation":
        spine.nucleus[i] = T.INFLAM
        spine.annulus[i] = T.INFLAM if m > 0.5 else T.ANNULUS
        nb = float(spine.top[i + 1])
        for sc_s in (bot, nb):
            spine.blobs.append(Blob(T.EDEMA if not subtle else T.EDEMA_FAINT, (0.0, sc_s, -depth / 2),
                                    (hw * 0.8, (3 + 5 * m) * sc, depth * 0.42), (T.MARROW, T.CORTEX)))
        fp.append((-hw - 2, hw + 2, bot - 10 * sc, nb + 10 * sc, -depth - 3, 2.0))
    elif key == "hemangioma":
        r = (2.8 + 4.5 * m) * sc
        c = (float(rng.uniform(-0.3, 0.3)) * hw, s_v + float(rng.uniform(-0.15, 0.15)) * h,
             -depth * float(rng.uniform(0.4, 0.6)))
        f.detail["size_mm"] = round(2 * r, 0)
        spine.blobs.append(Blob(T.HEMANGIOMA, c, (r, r, r), (T.MARROW,)))
        fp.append((c[0] - r - 1, c[0] + r + 1, c[1] - r - 1, c[1] + r + 1, c[2] - r - 1, c[2] + r + 1))
    elif key == "lipomatosis":
        w = 0.7 * h + dlen
        spine.bumps.append(Bump("sac_back", s_v, w, (2.5 + 5.0 * m) * sc))
        fp.append((-chw - 1, chw + 1, s_v - w - 2, s_v + w + 2, -1.0, p_v["canal_ap"] + 1))
    elif key == "synovial":
        sd = _sides(f.side)[0]
        r = (2.2 + 3.0 * m) * sc
        c = (sd * (chw - 0.5 * r), s_d - 1.0, cap - 0.6 * r)
        allowed = CANAL_CONTENT + (T.LIGAMENT, T.SCLEROSIS, T.FACET_FLUID, T.MUSCLE)
        spine.blobs.append(Blob(T.LIGAMENT, c, (r + 0.9, r + 0.9, r + 0.9), allowed))
        spine.blobs.append(Blob(T.FLUID if not subtle else T.FLUID_FAINT, c, (r, r, r), allowed + (T.LIGAMENT,)))
        f.detail["size_mm"] = round(2 * r, 0)
        fp.append((c[0] - r - 2, c[0] + r + 2, c[1] - r - 2, c[1] + r + 2, c[2] - r - 2, c[2] + r + 2))
    elif key == "cyst":
        sd = _sides(f.side)[0]
        if up == "S1":
            r = (3.5 + 4.0 * m) * sc
            c = (sd * 3.0 * sc, s_v + 0.45 * h, p_v["canal_ap"] * 0.5)
            f.detail["type"] = "Tarlov"
            rr = (r * 0.8, r * 1.2, r * 0.9)
        else:
            r = (2.8 + 3.2 * m) * sc
            c = (sd * (p_v["canal_hw"] + pw * 0.45), top + 0.62 * h, 0.3 * p_v["canal_ap"])
            f.detail["type"] = "perineural"
            rr = (r, r, r)
        allowed = (T.FAT, T.NERVE, T.CSF, T.LIGAMENT) + (BONE if m > 0.5 else ())
        spine.blobs.append(Blob(T.FLUID if not subtle else T.FLUID_FAINT, c, rr, allowed))
        f.detail["size_mm"] = round(2 * r, 0)
        fp.append((c[0] - rr[0] - 1, c[0] + rr[0] + 1, c[1] - rr[1] - 1, c[1] + rr[1] + 1, c[2] - rr[2] - 1, c[2] + rr[2] + 1))
    elif key == "lesion_intramedullary":
        sac_c = (p_v["sac_front"] + p_v["canal_ap"] - p_v["lf"] - p_v["sac_back"]) / 2
        rs = (5.0 + 14.0 * m) * sc
        c = (0.0, s_v, sac_c)
        r = (p_v["cord_hw"] / 2 * 0.75, rs, p_v["cord_ap"] / 2 * 0.75)
        if m > 0.5:
            spine.bumps.append(Bump("cord_scale", s_v, rs + 4 * sc, 1.15 + 0.2 * m, "mul"))
        spine.blobs.append(Blob(T.CORD_LESION if not subtle else T.FLUID_FAINT, c, r, (T.CORD,)))
        f.detail["length_mm"] = round(2 * rs, 0)
        fp.append((-p_v["cord_hw"] / 2 - 3, p_v["cord_hw"] / 2 + 3, s_v - rs - 6, s_v + rs + 6, 0.0, p_v["canal_ap"]))
    elif key == "lesion_extramedullary":
        sac_f = p_v["sac_front"]
        sac_b = p_v["canal_ap"] - p_v["lf"] - p_v["sac_back"]
        sac_c = (sac_f + sac_b) / 2
        dorsal = rng.random() < 0.6
        r = min((2.8 + 3.0 * m) * sc, 0.42 * (sac_b - sac_f))
        tc = sac_c + (0.55 if dorsal else -0.55) * (sac_b - sac_f) / 2
        xc = float(rng.uniform(-2, 2)) * sc
        f.detail["position"] = "dorsal" if dorsal else "ventral"
        f.detail["size_mm"] = round(2 * r, 0)
        if p_v["cord_ap"] > 1.0:
            spine.bumps.append(Bump("cord_dt", s_v, r + 5 * sc, (-1 if dorsal else 1) * r * 0.5))
            spine.bumps.append(Bump("cord_scale", s_v, r + 4 * sc, 0.8, "mul"))
        spine.blobs.append(Blob(T.TUMOR, (xc, s_v, tc), (r * 1.1, r * 1.4, r), (T.CSF, T.NERVE, T.CORD, T.FAT)))
        fp.append((xc - 1.1 * r - 4, xc + 1.1 * r + 4, s_v - 1.4 * r - 7, s_v + 1.4 * r + 7, -0.5, p_v["canal_ap"] + 1))
    else:  # pragma: no cover - the registry grew a condition we cannot draw yet
        raise NotImplementedError(f"no phantom drawing for condition {key!r}")
