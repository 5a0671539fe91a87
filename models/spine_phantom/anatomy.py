"""A parametric spine and the tissue label map it makes at any point.

Why this shape: every structure is defined in *curvilinear* coordinates around
the spine's centreline (the line of the posterior vertebral body walls):
``s`` = arc length down the spine (mm), ``t`` = distance from the line
(positive = posterior), ``x`` = patient left-right (mm, + = left as in DICOM LPS).
One vectorised function, :meth:`Spine.labels`, then answers "which tissue is at
(x, s, t)" for a whole image at once; sagittal slices (fixed x) and axial slices
through the discs (fixed s, nearly) are cut from the same 3D model, so the
series of a study agree with each other.

Patient variation: overall size, lordosis/kyphosis, disc heights, canal size,
fat thickness, conus level. Pathologies (see :mod:`pathology`) edit the per-level
tables, add smooth ``bumps`` to the s-profiles and draw ``blobs``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .tissues import T

# ---------------------------------------------------------------------------
# Level table: name, kind, body height, AP depth, half width, disc height below,
# canal AP, canal half width, spinous length, spinous slope, region.
# Millimetres for an average adult; scaled per patient.
# ---------------------------------------------------------------------------
_LEVELS: list[tuple] = []


def _add(name, kind, h, d, hw, disc, cap, chw, sp, slope, region):
    _LEVELS.append((name, kind, h, d, hw, disc, cap, chw, sp, slope, region))


_add("C1", "atlas", 11, 10, 8, 0.0, 20, 13, 10, 0.0, "cervical")
_add("C2", "vertebra", 16, 15, 8.5, 4.5, 17, 12, 26, 0.35, "cervical")
for _i, _h in zip(range(3, 8), (13.5, 13.5, 13.5, 14, 15)):
    _add(f"C{_i}", "vertebra", _h, 15.5 + 0.3 * _i, 8.5 + 0.3 * _i, 5.0 + (0.3 if _i in (5, 6) else 0),
         15.5 - 0.2 * _i, 12, 18 + (12 if _i == 7 else 2 * (_i - 3)), 0.25, "cervical")
for _i in range(1, 13):
    _add(f"T{_i}", "vertebra", 16 + 0.65 * _i, 17 + 0.9 * _i, 12 + 0.6 * _i, 3.8 + 0.25 * _i,
         14.5, 8.0 + (0.25 * (_i - 9) if _i > 9 else 0), 36 - (0.6 * (_i - 8) if _i > 8 else 0),
         (0.95 if _i < 10 else 0.45), "thoracic")
for _i, _d in zip(range(1, 6), (9.5, 10.5, 11.0, 11.5, 10.5)):
    _add(f"L{_i}", "vertebra", 26 + 0.6 * _i, 30 + 0.9 * _i, 21 + 0.8 * _i, _d,
         17.0 - 0.2 * _i, 10.5 + 0.3 * _i, 30, 0.12, "lumbar")
for _i, (_h, _d, _hw) in enumerate(((28, 33, 48), (23, 26, 42), (18, 20, 34), (14, 14, 24), (11, 10, 16)), start=1):
    _add(f"S{_i}", "sacral", _h, _d, _hw, 1.6, 12 - 1.3 * _i, 13 - 1.2 * _i, 12 - _i, 0.0, "sacral")
_add("Co", "coccyx", 20, 9, 8, 0.0, 3, 4, 4, 0.0, "sacral")

NAMES: tuple[str, ...] = tuple(r[0] for r in _LEVELS)
INDEX = {n: i for i, n in enumerate(NAMES)}

# Tangent angle (deg) of the centreline at each vertebra, travelling caudally:
# negative = heading anterior. Encodes cervical lordosis, thoracic kyphosis,
# lumbar lordosis and the sacral kyphosis.
_PHI = {
    "C1": -22, "C2": -16, "C3": -10, "C4": -5, "C5": 1, "C6": 7, "C7": 13,
    "T1": 17, "T2": 19, "T3": 19, "T4": 17, "T5": 14, "T6": 10, "T7": 6, "T8": 2, "T9": -2,
    "T10": -6, "T11": -9, "T12": -12, "L1": -14, "L2": -12, "L3": -6, "L4": 3, "L5": 15,
    "S1": 38, "S2": 50, "S3": 56, "S4": 56, "S5": 50, "Co": 35,
}
_REGION_OF_PHI = {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}

REGION_SPAN = {  # vertebrae a region's sagittal field of view runs between (top, bottom)
    "cervical": ("C1", "T2"),
    "thoracic": ("C7", "L1"),
    "lumbar": ("T12", "S3"),
}
REGION_DISCS = {
    "cervical": ("C2", "T1"),   # disc levels C2-C3 ... C7-T1
    "thoracic": ("T1", "L1"),   # T1-T2 ... T12-L1
    "lumbar": ("T12", "S1"),    # T12-L1 ... L5-S1
}


@dataclass
class Bump:
    """A smooth change of one s-profile: ``kind`` add|mul|step around ``s0``.

    add/mul: raised-cosine bump of half width ``w``; step: ``value`` for s < s0,
    fading to 0 across [s0 - w, s0 + w] (used for listhesis shifts).
    """

    param: str
    s0: float
    w: float
    value: float
    kind: str = "add"
    side: float = 0.0  # 0: both sides; -1 / +1: only x < 0 / x > 0 (for lateral changes)


@dataclass
class Blob:
    """An ellipsoid of one tissue in (x, s, t), written only over ``allowed`` tissues.

    ``mirror`` draws it at -x too. ``spinal`` blobs move with listhesis shifts.
    """

    tissue: int
    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    allowed: tuple[int, ...] | None = None
    mirror: bool = False
    tag: str = ""


@dataclass
class Spine:
    """One patient's spine: per-level tables, the centreline, profile bumps and blobs."""

    scale: float
    h: np.ndarray          # body heights
    depth: np.ndarray
    hw: np.ndarray
    disc: np.ndarray       # disc height below each level
    canal_ap: np.ndarray
    canal_hw: np.ndarray
    sp_len: np.ndarray
    slope: np.ndarray
    wedge: np.ndarray      # fraction of anterior height lost (fracture)
    nucleus: np.ndarray    # tissue label of each disc's nucleus
    annulus: np.ndarray
    concavity: np.ndarray  # endplate cupping depth per vertebra, mm
    disc_loss: np.ndarray  # fraction of disc height lost (degeneration), drawn as endplate sclerosis
    post_fat: float        # posterior epidural fat in the lumbar canal, mm
    subcut: float          # subcutaneous fat thickness, mm
    conus_s: float         # conus tip position along s
    s_grid: np.ndarray     # centreline samples
    y_grid: np.ndarray
    z_grid: np.ndarray
    phi_grid: np.ndarray
    organ_waves: np.ndarray = field(default_factory=lambda: np.zeros((4, 4)))  # (wx, ws, wt, phase)
    # discs drawn as bone (the fused sacrum and coccyx); a lumbarised S1 frees the S1-S2 disc
    fused: np.ndarray = field(default_factory=lambda: (_KIND == 2) | (_KIND == 3))
    variant: str = "none"  # anatomical variant (apply_variant): none, sacralised_L5, lumbarised_S1
    bumps: list[Bump] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)

    # ----------------------------------------------------------- geometry
    @property
    def top(self) -> np.ndarray:
        """s of each body's superior endplate."""
        lengths = np.empty(2 * len(self.h))
        lengths[0::2] = self.h
        lengths[1::2] = self.disc
        ends = np.cumsum(lengths)
        return ends[0::2] - self.h

    @property
    def bottom(self) -> np.ndarray:
        return self.top + self.h

    def disc_center(self, i: int) -> float:
        return float(self.bottom[i] + self.disc[i] / 2)

    def body_center(self, i: int) -> float:
        return float(self.top[i] + self.h[i] / 2)

    def point(self, s: float | np.ndarray):
        """(y, z) of the centreline and tangent angle phi at arc length s."""
        y = np.interp(s, self.s_grid, self.y_grid)
        z = np.interp(s, self.s_grid, self.z_grid)
        phi = np.interp(s, self.s_grid, self.phi_grid)
        return y, z, phi

    def project(self, y: np.ndarray, z: np.ndarray, iterations: int = 4):
        """Patient (y, z) -> curvilinear (s, t), by Newton steps onto the centreline."""
        s = np.interp(-z, -self.z_grid, self.s_grid)  # z decreases along s
        for _ in range(iterations):
            py, pz, phi = self.point(s)
            s = s + (y - py) * np.sin(phi) - (z - pz) * np.cos(phi)
            s = np.clip(s, self.s_grid[0], self.s_grid[-1])
        py, pz, phi = self.point(s)
        t = (y - py) * np.cos(phi) + (z - pz) * np.sin(phi)
        return s, t

    def landmark(self, level: str) -> tuple[float, float]:
        """Patient (y, z) of a vertebral body's centre ("L4") or a disc's centre ("L4-L5"), mid-AP."""
        k = INDEX[level.split("-")[0]]
        if "-" in level:
            s, depth = self.disc_center(k), (self.depth[k] + self.depth[min(k + 1, len(self.h) - 1)]) / 2
        else:
            s, depth = self.body_center(k), self.depth[k]
        y, z, phi = self.point(s)
        t = -float(depth) / 2  # the normal to the centreline points posterior: (cos phi, sin phi)
        return float(y + t * np.cos(phi)), float(z + t * np.sin(phi))

    def copy(self) -> "Spine":
        return copy.deepcopy(self)

    # ----------------------------------------------------------- profiles
    def _centers(self) -> np.ndarray:
        return self.top + self.h / 2

    def profile(self, s: np.ndarray) -> dict[str, np.ndarray]:
        """Smooth per-s quantities (interpolated between vertebra centres, plus bumps)."""
        c = self._centers()
        sc = self.scale
        p = {
            "depth": np.interp(s, c, self.depth),
            "canal_ap": np.interp(s, c, self.canal_ap),
            "canal_hw": np.interp(s, c, self.canal_hw),
            "slope": np.interp(s, c, self.slope),
            "sp_len": np.interp(s, c, self.sp_len),
        }
        reg = np.interp(s, c, _REGION_CODE)  # 0 cervical, 1 thoracic, 2 lumbar, 3 sacral
        p["region"] = reg
        lumbar = np.clip(reg - 1.0, 0, 1)
        p["sac_front"] = 0.6 + 0.6 * lumbar
        p["sac_back"] = 1.0 + (self.post_fat - 1.0) * lumbar
        p["sac_hw"] = p["canal_hw"] - 1.2 - 1.0 * lumbar
        cord = np.interp(s, c, _CORD_AP) * sc
        taper = np.clip((self.conus_s - s) / (28 * sc), 0, 1) ** 0.6
        p["cord_ap"] = cord * taper
        p["cord_hw"] = np.interp(s, c, _CORD_W) * sc * np.clip(taper * 1.2, 0, 1)
        p["cord_dt"] = np.zeros_like(s)
        p["shift"] = np.zeros_like(s)
        p["lf"] = np.full_like(s, 1.8 * sc)
        p["sac_scale"] = np.ones_like(s)
        p["cord_scale"] = np.ones_like(s)
        p["foramen"] = np.zeros_like(s)
        p["subcut"] = self.subcut * (0.45 + 0.55 * np.clip(p["region"] - 0.0, 0, 1))  # thin in the neck
        p["skin_post"] = np.interp(s, c, _SKIN_POST) * sc + p["subcut"]
        p["skin_ant"] = -np.interp(s, c, _SKIN_ANT) * sc - p["depth"]
        p["torso_hw"] = np.interp(s, c, _TORSO_HW) * sc + p["subcut"]
        # sac ends at mid S2
        s2 = INDEX["S2"]
        p["sac_end"] = np.clip((self.top[s2] + 0.5 * self.h[s2] - s) / 6.0, 0, 1)
        for b in self.bumps:
            if b.side:
                continue
            _apply_bump(p, b, s)
        return p

    # ----------------------------------------------------------- labels
    def geometry(self, s: np.ndarray, t: np.ndarray, prof: dict | None = None) -> dict:
        """Everything about (s, t) that does not depend on x, computed once per image grid.

        A sagittal stack shares one (s, t) grid across all its slices, so this is
        the expensive part done once; :meth:`labels` then only does the x tests.
        """
        p = self.profile(s) if prof is None else prof
        sc = self.scale
        n = len(self.h)
        top, bot = self.top, self.bottom
        g: dict = {"p": p, "s": s, "t": t}
        region = p["region"]
        g["region"] = region
        # soft tissue envelope (superellipse: flat back, rounded flanks)
        tcb = (p["skin_post"] + p["skin_ant"]) / 2
        hb = (p["skin_post"] - p["skin_ant"]) / 2
        g["env_out"] = np.abs((t - tcb) / hb) ** 3
        g["env_in"] = np.abs((t - tcb) / np.maximum(hb - p["subcut"], 1)) ** 3
        g["post_t"] = 0.55 * p["canal_ap"]
        g["front_t"] = -p["depth"] - 5 * sc
        g["ql_dt2"] = ((t - 0.3 * p["canal_ap"]) / (11 * sc)) ** 2
        g["airway_t"] = (region < 0.5) & (t < -p["depth"] - 7 * sc) & (t > -p["depth"] - 22 * sc)
        thor = (region > 0.5) & (region < 1.6)
        g["thor"] = thor
        aorta_t = -p["depth"] - np.where(thor, -0.2 * p["depth"], 9 * sc)
        g["aorta_dt2"] = (t - aorta_t) ** 2
        g["aorta_x"] = np.where(thor, 14 * sc + 0.2 * p["depth"], 13 * sc)
        g["aorta_ok"] = (region > 0.8) & (region < 2.55)
        g["ivc_dt2"] = (t + p["depth"] + 8 * sc) ** 2
        g["ivc_ok"] = (region > 1.9) & (region < 2.6)
        lumb = np.clip(region - 1.5, 0, 1) * np.clip(3.0 - region, 0, 1) * 2
        g["psoas_r"] = (3 + 13 * lumb * np.clip((s - self.top[INDEX["L1"]]) / 80.0, 0.2, 1.0)) * sc
        g["psoas_x"] = np.interp(s, self._centers(), self.hw) + 6 * sc
        g["psoas_dt2"] = ((t + 0.5 * p["depth"]) / (g["psoas_r"] * 1.25)) ** 2
        g["psoas_ok"] = lumb > 0.2

        ts = t - p["shift"]
        g["ts"] = ts
        k = np.clip(np.searchsorted(top, s, side="right") - 1, 0, n - 1)
        kind = _KIND[k]
        g["kind"] = kind
        g["k"] = k
        in_body_s = (s <= bot[k]) & (s >= top[k])
        depth = self.depth[k]
        g["hw"] = self.hw[k]
        g["depth_k"] = depth
        # endplates are gently concave (biconvex discs); a fracture wedges the superior one down
        u = np.clip((ts + depth / 2) / (depth / 2), -1, 1)
        cup = self.concavity[k] * (1 - u * u)
        s_top = top[k] + self.wedge[k] * self.h[k] * np.clip(-ts / depth, 0, 1) + cup
        s_bot = bot[k] - cup
        hs = (s_bot - s_top) / 2
        cs = (s_bot + s_top) / 2
        g["in_body"] = in_body_s & (kind != 1)
        g["body_ds"] = s - cs
        g["body_hs"] = hs
        g["body_dt"] = ts + depth / 2
        g["collapse_s"] = in_body_s & ((s < s_top) | (s > s_bot)) & (kind == 0)
        g["collapse_nuc"] = np.where(s < cs, self.nucleus[np.maximum(k - 1, 0)], self.nucleus[k])
        g["collapse_core"] = np.abs(u) < 0.55
        # basivertebral vein: a small fatty notch in the middle of the posterior body wall
        g["bvv"] = in_body_s & (kind == 0) & (np.abs(s - (top[k] + bot[k]) / 2) < 1.3 * sc) & (ts > -4 * sc) & (ts < -0.3 * sc)
        # disc below vertebra k
        nxt = np.minimum(k + 1, n - 1)
        dlen = np.maximum(top[nxt] - bot[k], 1e-3)
        ddepth = (self.depth[k] + self.depth[nxt]) / 2 + 1.0 * sc
        g["in_disc"] = (s > bot[k]) & (k < n - 1)
        dhw_tab = (self.hw + self.hw[np.minimum(np.arange(n) + 1, n - 1)]) / 2 + 0.5 * sc
        g["dhw_tab"] = dhw_tab
        g["dhw"] = dhw_tab[k]
        g["ddepth"] = ddepth
        dcs = bot[k] + dlen / 2
        g["disc_ds"] = s - dcs
        g["disc_hl"] = dlen / 2 + 0.01
        g["disc_dt"] = ts + ddepth / 2 - 0.5 * sc
        loss = self.disc_loss[k]
        g["disc_keep"] = np.abs(s - dcs) <= dlen / 2 * (1 - loss)
        g["nuc_u2"] = ((s - dcs) / (dlen * 0.36 * (1 - loss) + 1e-3)) ** 2 + 10.0 * (dlen * (1 - loss) < 3 * sc)
        g["nuc_dt"] = ts + 0.45 * ddepth
        g["annulus"] = self.annulus[k]
        g["nucleus"] = self.nucleus[k]
        g["sacral"] = self.fused[k]
        # atlas and dens (only near C1)
        c2 = INDEX["C2"]
        g["atlas"] = kind == 1
        g["dens_t"] = (np.abs(ts + 0.45 * self.depth[c2]) < 0.27 * self.depth[c2]) & (
            ((kind == 1) & (s > top[k] - 4 * sc)) | ((s < top[c2]) & (s > top[c2] - 6 * sc)))
        g["arch_st"] = (kind == 1) & (((s - cs) / (0.45 * self.h[k])) ** 2
                                       + ((ts + self.depth[c2] + 3.5 * sc) / (3.5 * sc)) ** 2 < 1)
        g["parch_st"] = (kind == 1) & (((s - cs) / (0.4 * self.h[k])) ** 2
                                        + ((ts - p["canal_ap"] - 3.5 * sc) / (3.5 * sc)) ** 2 < 1)
        # skull base above C1: clivus in front, occipital bone behind, brainstem and cerebellum
        d_up = top[0] - 1.0 * sc - s
        skull = d_up > 0
        g["skull"] = skull
        c2d = self.depth[INDEX["C2"]]
        g["clivus"] = skull & (np.abs(ts + 0.55 * c2d + 0.7 * d_up) < 4.5 * sc) & (d_up > 3 * sc)
        t_occ = p["canal_ap"] + 4 * sc + 0.9 * d_up
        g["occ_bone"] = skull & (ts > t_occ) & (ts < t_occ + 6 * sc)
        g["occ_core"] = skull & (ts > t_occ + 1.2 * sc) & (ts < t_occ + 4.8 * sc)
        g["brain"] = skull & (ts > -0.3 * c2d - 0.7 * d_up) & (ts < t_occ)
        # pseudo-random organ pattern (bowel loops, heart chambers): a few plane waves in (x, s, t);
        # the x part is added in labels() by the angle-sum identity so this stays x-independent
        ang = self.organ_waves[:, 1:2, None] * s[None] + self.organ_waves[:, 2:3, None] * t[None] + self.organ_waves[:, 3:4, None]
        g["wave_sin"] = np.sin(ang)
        g["wave_cos"] = np.cos(ang)
        t4, t10 = INDEX["T4"], INDEX["T10"]
        g["heart"] = np.clip(np.minimum(s - top[t4], bot[t10] - s) / 25.0, 0, 1)
        g["chest"] = (s > top[INDEX["T1"]] - 10 * sc) & (s < top[INDEX["T11"]] + 0.5 * self.h[INDEX["T11"]])
        g["med_dt2"] = np.square((t + p["depth"] + 70 * sc) / ((30 + 45 * g["heart"]) * sc))

        # canal, sac, cord
        cap = p["canal_ap"]
        lf = p["lf"]
        g["cap"], g["chw"], g["lf"] = cap, p["canal_hw"], lf
        g["canal_t"] = (ts >= 0) & (ts <= cap) & (kind != 3)
        g["canal_dt4"] = np.abs((ts - cap / 2) / (cap / 2)) ** 4
        sac_f = p["sac_front"]
        sac_b = cap - lf - p["sac_back"]
        sac_c = (sac_f + sac_b) / 2
        sac_half = np.maximum((sac_b - sac_f) / 2, 0) * p["sac_scale"] * p["sac_end"]
        g["sac_hw"] = np.maximum(p["sac_hw"], 0.1) * np.clip(p["sac_scale"], 0.2, 1) * p["sac_end"]
        g["sac_dt2"] = np.square((ts - sac_c) / (sac_half + 1e-6))
        g["sac_ok"] = sac_half > 0.2
        cord_half = p["cord_ap"] / 2 * p["cord_scale"]
        g["cord_dt2"] = ((ts - sac_c - p["cord_dt"]) / (cord_half + 1e-6)) ** 2
        g["cord_hw"] = p["cord_hw"] / 2 * np.clip(p["cord_scale"], 0.5, 1.5) ** 0.5 + 1e-6
        g["cord_ok"] = cord_half > 0.3
        g["cauda_t"] = (s > self.conus_s - 10 * sc) & (ts > sac_c - 0.1 * sac_half)
        g["lig_t"] = g["canal_t"] & (ts > cap - lf)

        # posterior elements
        has_arch = (kind == 0) | (kind == 1)
        g["has_arch"] = has_arch
        lam_th = 5.0 * sc
        pillar_w = np.where(region < 0.5, 9.0, np.where(region < 1.5, 7.0, 9.0)) * sc
        g["pillar_w"] = pillar_w
        a_start = top + 0.2 * self.h
        a_end = bot + 0.35 * self.disc
        ka = np.clip(np.searchsorted(a_start, s, side="right") - 1, 0, n - 1)
        in_arch = (s >= a_start[ka]) & (s <= a_end[ka]) & ((_KIND[ka] == 0) | (_KIND[ka] == 1))
        g["lamina_st"] = in_arch & (ts > cap) & (ts < cap + lam_th)
        g["sac_plate"] = (kind == 2) & (ts > cap) & (ts < cap + 7 * sc)
        g["flav_st"] = ~in_arch & has_arch & (ts > cap - lf) & (ts < cap + 0.8 * lam_th) & (ts > 0)
        ts_rel = ts - cap
        g["ts_rel"] = ts_rel
        s_adj = s - p["slope"] * np.maximum(ts_rel, 0)
        sp_off = np.where(_REGION_ID == 2, 0.12, 0.0) * self.h
        centers = top + self.h * 0.5 + sp_off
        kc = np.clip(np.searchsorted(centers, s_adj, side="right") - 1, 0, n - 1)
        kc2 = np.minimum(kc + 1, n - 1)
        kc = np.where(np.abs(s_adj - centers[kc2]) < np.abs(s_adj - centers[kc]), kc2, kc)
        lumbar_sp = _REGION_ID[kc] == 2
        sp_h = self.h[kc] * np.where(lumbar_sp, 0.72, np.where(_REGION_ID[kc] == 0, 0.6, 0.42))
        taper = np.where(lumbar_sp, 1.0, np.clip(1.1 - 0.5 * ts_rel / (self.sp_len[kc] + 1e-6), 0.45, 1))
        d_sp = np.abs(s_adj - centers[kc])
        in_sp_s = d_sp < sp_h / 2 * taper
        g["spin_st"] = in_sp_s & (ts_rel > 0) & (ts_rel < self.sp_len[kc]) & (_KIND[kc] == 0)
        g["tip_t"] = ts_rel < p["sp_len"] + 2 * sc
        g["spin_inner"] = g["spin_st"] & (ts_rel > 1.0 * sc) & (ts_rel < self.sp_len[kc] - 1.0 * sc) & \
            (d_sp < sp_h / 2 * taper - 1.0 * sc)
        kp = k
        pc_s = top[kp] + 0.3 * self.h[kp]
        g["ped_st"] = (((s - pc_s) / (0.2 * self.h[kp])) ** 2
                       + ((ts - 0.25 * cap) / (0.33 * cap + 1.5 * sc)) ** 2 < 1) & (kind == 0)
        g["foramen_t"] = (ts >= -0.5 * sc) & (ts < 0.6 * cap) & has_arch
        g["root_st"] = ((s - (top[kp] + 0.62 * self.h[kp])) / (2.6 * sc)) ** 2 + ((ts - 0.3 * cap) / (2.6 * sc)) ** 2 < 1
        pil_t0 = 0.5 * cap
        pil_t1 = cap + lam_th + 3.0 * sc
        g["pillar_t"] = (ts > pil_t0) & (ts < pil_t1) & has_arch
        g["pillar_core_t"] = (ts > pil_t0 + 1.0 * sc) & (ts < pil_t1 - 1.0 * sc)
        s_j = bot + self.disc / 2
        kj = np.clip(np.searchsorted(s_j, s, side="left"), 0, n - 1)
        tm = (pil_t0 + pil_t1) / 2
        g["joint_a"] = s - s_j[np.maximum(kj - 1, 0)] + 0.55 * (ts - tm)
        g["joint_b"] = s - s_j[kj] + 0.55 * (ts - tm)
        g["lam_core_t"] = (ts > cap + 1.0 * sc) & (ts < cap + lam_th - 1.0 * sc)
        for key, val in g.items():
            if isinstance(val, np.ndarray) and val.dtype == np.float64:
                g[key] = val.astype(np.float32)
        # the column only exists in a band around the centreline: crop its work to that box
        band = (ts > -p["depth"] - 14 * sc) & (ts < cap + p["sp_len"] + 12 * sc)
        band = np.broadcast_to(band, s.shape)
        if band.any():
            rows = np.flatnonzero(band.any(axis=1))
            cols = np.flatnonzero(band.any(axis=0))
            rs, cs = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
        else:
            rs, cs = slice(0, 0), slice(0, 0)
        col = {}
        for key, val in g.items():
            if isinstance(val, np.ndarray) and val.ndim == 2:
                col[key] = val[rs, :] if val.shape[1] == 1 else val[rs, cs]
            else:
                col[key] = val
        g["crop"] = (rs, cs)
        g["col"] = col
        return g

    def labels(self, x, geo: dict) -> np.ndarray:
        """Tissue label at lateral position(s) ``x`` on a precomputed :meth:`geometry` grid."""
        g = geo
        p = g["p"]
        s, ts = g["s"], g["ts"]
        x = float(x) if np.ndim(x) == 0 else np.asarray(x, dtype=np.float32)
        shape = np.broadcast_shapes(np.shape(x), s.shape, g["t"].shape)
        ax = np.abs(x)
        sc = self.scale
        lab = np.zeros(shape, dtype=np.uint8)
        region = g["region"]

        # ---- soft tissues (not attached to the vertebrae) -------------------
        hw_t = p["torso_hw"]
        q = np.square(ax / hw_t)
        inside = q * q + g["env_out"] <= 1.0
        q = np.square(ax / np.maximum(hw_t - p["subcut"], 1))
        inner = q * q + g["env_in"] <= 1.0
        np.copyto(lab, T.FAT, where=inside)
        cerv = region < 0.5
        # compartment borders curve forward away from the midline (smooth axial outlines)
        bend = np.square(ax / (90 * sc)) * (30 * sc)
        posterior = g["t"] > g["post_t"] - 0.6 * bend
        front = inner & (g["t"] < g["front_t"] - bend)
        np.copyto(lab, T.MUSCLE, where=inner & posterior)  # erector spinae, multifidus
        band = inner & ~posterior & ~front
        np.copyto(lab, T.MUSCLE, where=band & cerv)  # longus colli, scalenes
        np.copyto(lab, T.VISCERA, where=front)
        np.copyto(lab, T.MUSCLE, where=front & cerv)
        np.copyto(lab, T.AIR, where=front & g["airway_t"] & (ax < 8 * sc))
        # organ patterns in front of the spine
        wx = self.organ_waves[:, 0]
        if np.ndim(x) == 0:
            wave = np.tensordot(np.cos(wx * x), g["wave_sin"], 1) + np.tensordot(np.sin(wx * x), g["wave_cos"], 1)
        else:
            wave = sum(g["wave_sin"][j] * np.cos(wx[j] * x) + g["wave_cos"][j] * np.sin(wx[j] * x) for j in range(len(wx)))
        belly = front & ~g["chest"] & ~cerv
        np.copyto(lab, T.FAT, where=belly & (wave > 1.9))           # mesenteric fat
        np.copyto(lab, T.FLUID_FAINT, where=belly & (wave < -2.4))  # fluid-filled bowel
        chest = front & g["chest"]
        heart = g["heart"]
        med_rx = (18 + 40 * heart) * sc
        med = chest & (np.square(ax / med_rx) + g["med_dt2"] < 1)
        np.copyto(lab, T.LUNG, where=chest & ~med)
        np.copyto(lab, T.LUNG, where=band & g["chest"] & (ax > g["hw"] + 6 * sc))
        np.copyto(lab, T.VESSEL, where=med & (heart > 0.3) & (wave > 0.5) & (g["t"] < -g["depth_k"] - 25 * sc))  # chambers
        # vessels and muscles last, over the organ patterns
        np.copyto(lab, T.VESSEL, where=(front | band) & g["aorta_ok"] & ((x - g["aorta_x"]) ** 2 + g["aorta_dt2"] < (9 * sc) ** 2))
        np.copyto(lab, T.VESSEL, where=(front | band) & g["ivc_ok"] & (((x + 16 * sc) / 1.3) ** 2 + g["ivc_dt2"] < (8 * sc) ** 2))
        psoas = g["psoas_ok"] & ((((ax - g["psoas_x"] - g["psoas_r"]) / g["psoas_r"]) ** 2 + g["psoas_dt2"]) < 1)
        np.copyto(lab, T.MUSCLE, where=psoas & inner)
        ql = g["psoas_ok"] & ((((ax - g["psoas_x"] - 38 * sc) / (13 * sc)) ** 2 + g["ql_dt2"]) < 1)
        np.copyto(lab, T.MUSCLE, where=ql & inner)
        if cerv.any():  # carotid arteries and jugular veins: flow voids beside the spine
            neck = front | band
            for xo, to, rv in ((12.0, 0.25, 3.5), (19.0, 0.1, 5.0)):
                v = (np.square(ax - (g["hw"] + xo * sc)) + np.square(g["t"] + g["depth_k"] * (1 + to) + 4 * sc)) < (rv * sc) ** 2
                np.copyto(lab, T.VESSEL, where=neck & cerv & v)

        # ---- the spinal column, computed only inside its band ------------------
        full_lab, full_x = lab, x
        rs, cs = g["crop"]
        if np.ndim(x) != 0:  # axial: also crop the columns to the spine's lateral extent
            cols = np.flatnonzero(np.abs(x[0]) < 75 * sc)
            cs = slice(int(cols[0]), int(cols[-1]) + 1) if cols.size else slice(0, 0)
            x = x[:, cs]
            ax = np.abs(x)
        lab = lab[rs, cs]
        if lab.size:
            self._column(lab, x, ax, g["col"], sc)
        lab, x = full_lab, full_x

        # ---- pathology blobs -------------------------------------------------
        for b in self.blobs:
            self._draw_blob(lab, b, x, s, ts)
        np.copyto(lab, T.AIR, where=~inside)
        return lab

    def _column(self, lab, x, ax, g, sc):
        """Vertebrae, discs, canal, cord and posterior elements (in place on a cropped view)."""
        s, ts = g["s"], g["ts"]
        shape = lab.shape
        # ---- vertebral bodies and discs --------------------------------------
        if np.ndim(x) == 0:  # sagittal: one x, look the lateral factor up per vertebra
            k = g["k"]
            fx = _lateral(ax, self.hw)[k]
            dfx = _lateral(ax, g["dhw_tab"])[k]
        else:
            fx = _lateral(ax, g["hw"])
            dfx = _lateral(ax, g["dhw"])
        half = g["depth_k"] / 2 * fx
        body_ok = g["in_body"] & (fx > 0)
        r = 2.5 * sc
        body = body_ok & _rrect(g["body_ds"], g["body_dt"], g["body_hs"], half, r)
        inner_b = body_ok & _rrect(g["body_ds"], g["body_dt"], g["body_hs"] - 1.1 * sc, half - 1.1 * sc, r - 1.0 * sc)
        dhalf = g["ddepth"] / 2 * dfx
        disc = g["in_disc"] & (dfx > 0) & _rrect(g["disc_ds"], g["disc_dt"], g["disc_hl"], dhalf, 1.0 * sc)
        collapse = g["collapse_s"] & ~body & (np.abs(g["body_dt"]) < half) & (fx > 0)
        nucleus = disc & (g["nuc_u2"] + (g["nuc_dt"] / (0.3 * g["ddepth"] * dfx + 1e-3)) ** 2
                          + np.square(ax / (0.62 * g["dhw"])) < 1)
        np.copyto(lab, g["annulus"], where=disc)
        np.copyto(lab, T.ANNULUS, where=collapse)
        np.copyto(lab, g["collapse_nuc"], where=collapse & g["collapse_core"] & (fx > 0.5))
        np.copyto(lab, g["nucleus"], where=nucleus)
        np.copyto(lab, T.CORTEX, where=disc & g["sacral"])
        np.copyto(lab, T.SCLEROSIS, where=disc & ~g["disc_keep"])
        np.copyto(lab, T.CORTEX, where=body)
        np.copyto(lab, T.MARROW, where=inner_b)
        np.copyto(lab, T.FAT, where=g["bvv"] & inner_b & (ax < 3 * sc))
        if g["skull"].any():
            np.copyto(lab, T.BRAIN, where=g["brain"] & (ax < 60 * sc))
            np.copyto(lab, T.CORTEX, where=(g["clivus"] & (ax < 14 * sc)) | (g["occ_bone"] & (ax < 55 * sc)))
            np.copyto(lab, T.MARROW, where=g["occ_core"] & (ax < 52 * sc))
        atlas_bits = (g["dens_t"] & (ax < 5.5 * sc)) | (g["arch_st"] & (ax < 12 * sc)) | (g["parch_st"] & (ax < 14 * sc))
        np.copyto(lab, T.MARROW, where=atlas_bits)

        # ---- canal, sac, cord -----------------------------------------------
        chw = g["chw"]
        q = np.square(ax / chw)
        canal = g["canal_t"] & (q * q + g["canal_dt4"] <= 1)
        np.copyto(lab, T.FAT, where=canal)
        sac = g["sac_ok"] & (np.square(ax / (g["sac_hw"] + 1e-6)) + g["sac_dt2"] <= 1)
        np.copyto(lab, T.CSF, where=sac)
        cord = g["cord_ok"] & ((ax / g["cord_hw"]) ** 2 + g["cord_dt2"] <= 1)
        np.copyto(lab, T.CORD, where=cord)
        cauda = sac & ~cord & g["cauda_t"] & (np.sin(1.3 * x / sc + 0.9 * ts / sc) * np.cos(0.9 * x / sc) > 0.45)
        np.copyto(lab, T.NERVE, where=cauda)
        np.copyto(lab, T.LIGAMENT, where=canal & g["lig_t"] & (ax < chw - 1.0 * sc))

        # ---- posterior elements ---------------------------------------------
        pw = g["pillar_w"]
        sp_hw = 3.2 * sc
        lamina = g["lamina_st"] & (ax < chw + pw)
        np.copyto(lab, T.LIGAMENT, where=g["flav_st"] & (ax < chw + 2 * sc))
        spin = g["spin_st"] & (ax < sp_hw)
        plate = g["sac_plate"] & (ax < chw + 6 * sc)
        mus = lab == T.MUSCLE
        inter = (ax < 0.6 * sc) & (g["ts_rel"] > 2.5 * sc) & g["tip_t"] & mus
        np.copyto(lab, T.LIGAMENT, where=inter)
        np.copyto(lab, T.FAT, where=(ax < 5 * sc) & ~g["tip_t"] & mus)
        ped = g["ped_st"] & (ax > chw - 1.5 * sc) & (ax < chw + pw - 1.0 * sc)
        foramen = g["foramen_t"] & (ax >= chw) & (ax < chw + pw - 1.0 * sc)
        np.copyto(lab, T.FAT, where=foramen & ~ped)
        np.copyto(lab, T.NERVE, where=foramen & g["root_st"] & ~ped)
        xm = chw + pw / 2
        pillar = g["pillar_t"] & (ax >= chw + 0.5 * sc) & (ax < chw + pw)
        jx = 0.45 * (ax - xm)
        joint = pillar & ((np.abs(g["joint_a"] + jx) < 0.8 * sc) | (np.abs(g["joint_b"] + jx) < 0.8 * sc))
        bone = (lamina | spin | ped | pillar | plate) & ~joint
        core = (lamina & g["lam_core_t"]) | (g["spin_inner"] & (ax < sp_hw - 1.0 * sc)) \
            | (ped & (ax > chw) & (ax < chw + pw - 2.0 * sc)) \
            | (pillar & g["pillar_core_t"] & (ax > chw + 1.5 * sc) & (ax < chw + pw - 1.0 * sc)) \
            | (plate & (g["ts_rel"] > 1.0 * sc) & (g["ts_rel"] < 6 * sc))
        np.copyto(lab, T.CORTEX, where=bone)
        np.copyto(lab, T.MARROW, where=bone & core)
        np.copyto(lab, T.FACET_FLUID, where=joint)

        # ---- lateral changes: foraminal narrowing, lateral recess -------------
        for b in self.bumps:
            if not b.side:
                continue
            on_side = (x * b.side) > 0
            amt = b.value * _cos_bump(s, b.s0, b.w)
            if b.param == "foramen":
                fz = foramen & on_side & (amt > 0.02)
                np.copyto(lab, T.ANNULUS, where=fz & (ts < amt * 0.6 * g["cap"]))
                np.copyto(lab, T.SCLEROSIS, where=fz & (ts > 0.6 * g["cap"] * (1 - 0.6 * amt)))
            elif b.param == "recess":
                zone = canal & on_side & (amt > 0.02) & (ax > chw - (2 + 6 * amt) * sc) & (ts > g["cap"] * (0.9 - 0.6 * amt))
                np.copyto(lab, T.LIGAMENT, where=zone)
                np.copyto(lab, T.SCLEROSIS, where=zone & (ax > chw - (1 + 3 * amt) * sc) & (ts > g["cap"] * (1.0 - 0.35 * amt)))


    def _draw_blob(self, lab, b: Blob, x, s, ts):
        cx, cs_, ct = b.center
        rx, rs, rt = b.radii
        xs = [cx, -cx] if b.mirror and cx != 0 else [cx]
        st = ((s - cs_) / rs) ** 2 + ((ts - ct) / rt) ** 2
        if st.min() > 1:
            return
        for xc in xs:
            m = ((x - xc) / rx) ** 2 + st <= 1
            if b.allowed is not None:
                m &= np.isin(lab, b.allowed)
            np.copyto(lab, b.tissue, where=m)


_REGION_CODE = np.array([{"cervical": 0.0, "thoracic": 1.0, "lumbar": 2.0, "sacral": 3.0}[r[10]] for r in _LEVELS])
_REGION_ID = _REGION_CODE.astype(int)
_KIND = np.array([{"vertebra": 0, "atlas": 1, "sacral": 2, "coccyx": 3}[r[1]] for r in _LEVELS])
_CORD_AP = np.array([8.5 if r[10] == "cervical" else (7.0 if r[10] == "thoracic" else 7.5) for r in _LEVELS])
_CORD_W = np.array([12.5 if r[10] == "cervical" else (8.5 if r[10] == "thoracic" else 9.0) for r in _LEVELS])
_SKIN_POST = np.array([{"cervical": 50, "thoracic": 58, "lumbar": 58, "sacral": 36}[r[10]] for r in _LEVELS], float)
_SKIN_ANT = np.array([{"cervical": 48, "thoracic": 170, "lumbar": 160, "sacral": 140}[r[10]] for r in _LEVELS], float)
_TORSO_HW = np.array([{"cervical": 58, "thoracic": 150, "lumbar": 140, "sacral": 160}[r[10]] for r in _LEVELS], float)
# neck to chest: the anterior chest wall and shoulders widen over C7-T3, not in one step
for _name, _ant, _hw in (("C7", 62, 75), ("T1", 95, 110), ("T2", 130, 135), ("T3", 155, 145)):
    _j = [r[0] for r in _LEVELS].index(_name)
    _SKIN_ANT[_j], _TORSO_HW[_j] = _ant, _hw


def _lateral(ax, hw):
    """How much of a body's AP depth is left at lateral distance ax (kidney-ish superellipse)."""
    return np.clip(1 - (ax / hw) ** 2.5, 0, 1) ** 0.4


def _cos_bump(s, s0, w):
    u = np.clip(np.abs(s - s0) / max(w, 1e-6), 0, 1)
    return 0.5 * (1 + np.cos(np.pi * u))


def _apply_bump(p, b: Bump, s):
    if b.kind == "step":
        u = np.clip((s - (b.s0 - b.w)) / (2 * b.w), 0, 1)
        p[b.param] = p[b.param] + b.value * (1 - (3 * u ** 2 - 2 * u ** 3))
    elif b.kind == "mul":
        p[b.param] = p[b.param] * (1 + (b.value - 1) * _cos_bump(s, b.s0, b.w))
    else:
        p[b.param] = p[b.param] + b.value * _cos_bump(s, b.s0, b.w)


def _rrect(ds, dt, hs, ht, r):
    """Inside a rectangle of half sizes (hs, ht) with corner radius r (all broadcastable)."""
    r = np.minimum(np.minimum(r, hs), ht)
    r = np.maximum(r, 1e-3)
    qs = np.maximum(np.abs(ds) - (hs - r), 0)
    qt = np.maximum(np.abs(dt) - (ht - r), 0)
    return (qs * qs + qt * qt <= r * r) & (hs > 0) & (ht > 0)


def make_spine(rng: np.random.Generator) -> Spine:
    """Draw one patient's spine (sizes, curvature, discs, fat, conus level)."""
    scale = float(rng.uniform(0.88, 1.12))
    n = len(_LEVELS)
    arr = lambda j: np.array([r[j] for r in _LEVELS], dtype=np.float64)  # noqa: E731
    jitter = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    h = arr(2) * scale * jitter(0.95, 1.05)
    depth = arr(3) * scale * jitter(0.95, 1.05)
    hw = arr(4) * scale
    disc = arr(5) * scale * jitter(0.85, 1.15) * rng.uniform(0.9, 1.1)
    canal_ap = arr(6) * scale * rng.uniform(0.9, 1.12)
    canal_hw = arr(7) * scale * rng.uniform(0.92, 1.08)
    sp_len = arr(8) * scale * jitter(0.9, 1.1)
    slope = arr(9)
    # curvature: scale each region's bend separately, integrate angles along the spine
    phi_base = np.array([_PHI[r[0]] for r in _LEVELS], dtype=np.float64)
    bend = {"cervical": rng.uniform(0.3, 1.4), "thoracic": rng.uniform(0.6, 1.5),
            "lumbar": rng.uniform(0.55, 1.35), "sacral": rng.uniform(0.8, 1.15)}
    dphi = np.diff(phi_base) * np.array([bend[r[10]] for r in _LEVELS[1:]])
    phi = np.concatenate([[phi_base[0] * bend["cervical"]], phi_base[0] * bend["cervical"] + np.cumsum(dphi)])
    phi += rng.uniform(-4, 4)  # patient tilt on the table
    lengths = np.empty(2 * n)
    lengths[0::2] = h
    lengths[1::2] = disc
    tops = np.cumsum(lengths)[0::2] - h
    centers = tops + h / 2
    s_grid = np.arange(-120.0, tops[-1] + h[-1] + 160.0, 1.0)
    phi_grid = np.deg2rad(np.interp(s_grid, centers, phi))
    # smooth the angle so the centreline bends gently (no kinks at vertebra centres)
    kern = np.hanning(31)
    kern /= kern.sum()
    padded = np.pad(phi_grid, 15, mode="edge")
    phi_grid = np.convolve(padded, kern, mode="valid")
    y_grid = np.concatenate([[0.0], np.cumsum(np.sin(phi_grid[:-1]))])
    z_grid = -np.concatenate([[0.0], np.cumsum(np.cos(phi_grid[:-1]))])
    s0 = s_grid[0]
    # conus tip around the L1-L2 disc (T12 to L2 in the population)
    l1 = INDEX["L1"]
    conus = tops[l1] + h[l1] + rng.uniform(-0.8, 0.6) * h[l1]
    nucleus = np.full(n, T.NUCLEUS, dtype=np.uint8)
    annulus = np.full(n, T.ANNULUS, dtype=np.uint8)
    # mild age-related desiccation at a random lower level now and then (not a finding)
    spine = Spine(scale=scale, h=h, depth=depth, hw=hw, disc=disc, canal_ap=canal_ap, canal_hw=canal_hw,
                  sp_len=sp_len, slope=slope, wedge=np.zeros(n), nucleus=nucleus, annulus=annulus,
                  concavity=np.where(_KIND == 0, 0.05 * h, 0.0) * (np.arange(n) != INDEX["C2"]),
                  disc_loss=np.zeros(n),
                  post_fat=float(rng.uniform(2.5, 4.5) * scale), subcut=float(rng.uniform(6, 30)),
                  conus_s=float(conus), s_grid=s_grid - 0.0 + s0 * 0, y_grid=y_grid, z_grid=z_grid,
                  phi_grid=phi_grid)
    spine.s_grid = s_grid
    lam = rng.uniform(40, 75, 4)
    direction = rng.normal(size=(4, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    spine.organ_waves = np.column_stack([direction * (2 * np.pi / lam)[:, None], rng.uniform(0, 2 * np.pi, 4)])
    return spine


VARIANTS = ("none", "sacralised_L5", "lumbarised_S1")


def apply_variant(spine: Spine, variant: str) -> Spine:
    """A lumbosacral transitional vertebra, in place (the names stay anatomical, counted from C2).

    sacralised_L5: a rudimentary, desiccated L5-S1 disc (L5 half-fused to the sacrum);
    lumbarised_S1: a mobile S1-S2 disc (disc tissue instead of the fused bone), so six
    lumbar-type discs show above the sacrum and counting up from the sacrum is off by one.
    Both are real (LSTV, roughly 10-20% of people); labelling tools must not be fooled.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    l5, s1 = INDEX["L5"], INDEX["S1"]
    if variant == "sacralised_L5":
        spine.disc[l5] *= 0.35
        spine.nucleus[l5] = T.NUCLEUS_DRY
    elif variant == "lumbarised_S1":
        spine.fused[s1] = False
        spine.disc[s1] = 0.7 * spine.disc[l5]
        spine.concavity[s1] = 0.0
    spine.variant = variant
    return spine
