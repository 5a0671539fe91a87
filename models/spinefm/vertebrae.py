"""Name the discs and vertebrae a sagittal series shows, by what is visible; place findings on them.

Steps (the network is ``spinefm.heads.locator.SpineLocator``):

1. ``LocatorGrid``: the central sagittal slices resampled to the locator's fixed grid (2 mm),
   turned so the patient's head is up and anterior is left (from ImageOrientationPatient;
   a series stored feet-first or posterior-left is read the same way), windowed at robust
   percentiles. The grid keeps the way back to the original pixels and to patient coordinates.
2. ``detect``: heatmap peaks (local maxima above the threshold, at least 10 mm apart), kept
   when they lie on one smooth chain (the spine), ordered head to feet.
3. ``decode``: the most probable run of consecutive disc labels (C2-C3, C3-C4, ...), one
   missed disc allowed where the gap says so; per-disc posteriors by forward-backward over
   all runs. Labels below ``LocatorConfig.confidence`` are not named ("level uncertain").
4. ``SpineLabels.level_at``: a finding's position (patient coordinates, so any series of the
   study works) projected onto the chain -> the disc or vertebra it sits at, or None with the
   reason, never a level outside the field of view.
5. ``label_study``: where the read series cannot be counted (a crop or partial view with no
   landmark), its discs are named from another sagittal series of the same frame of reference
   with a larger view, a localizer first, as radiologists count from the scout
   (``adopt_levels``: every adopted name sits on a named disc of the other series, one count
   shift for all of them, and a disagreement with the series' own names names nothing).

A chain of at least ``min_discs`` discs with a plausible spacing is the image's evidence that
the study is a spine MR at all (a sagittal knee or brain has no such chain).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from .conditions import DISC_LEVELS, VERTEBRAE
from .heads.locator import DISC_CLASSES, STRIDE, LocatorConfig, SpineLocator, pad_to_multiple
from .preprocess import pixels_from_dataset, window

CELL_MM_FACTOR = STRIDE  # one output cell = STRIDE input pixels
MIN_PEAK_DISTANCE_MM = 10.0
BORDER_MM = 3.0              # peaks closer than this to the image edge (a cut disc, or edge artefact) are ignored
GAP_RANGE_MM = (8.0, 60.0)   # plausible spacing of neighbouring discs


# ---------------------------------------------------------------- geometry

@dataclass
class SliceFrame:
    """Pixel <-> patient mapping of one slice (DICOM LPS millimetres)."""

    position: np.ndarray      # ImagePositionPatient of pixel (0, 0)
    row_dir: np.ndarray       # direction of increasing column index
    col_dir: np.ndarray       # direction of increasing row index
    spacing: tuple[float, float]  # (between rows, between columns)
    spacing_known: bool = True

    @classmethod
    def from_dataset(cls, ds) -> "SliceFrame":
        ipp, iop, ps = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"), ds.get("PixelSpacing")
        known = ps is not None and len(ps) == 2 and all(float(v) > 0 for v in ps)
        spacing = (float(ps[0]), float(ps[1])) if known else (1.0, 1.0)
        try:
            o = np.array([float(v) for v in iop], dtype=np.float64)
            p = np.array([float(v) for v in ipp], dtype=np.float64)
            assert o.shape == (6,) and p.shape == (3,)
        except (TypeError, ValueError, AssertionError):
            o, p = np.array([0.0, 1.0, 0.0, 0.0, 0.0, -1.0]), np.zeros(3)
        return cls(p, o[:3], o[3:], spacing, known)

    def to_patient(self, row: float, col: float) -> np.ndarray:
        return self.position + col * self.spacing[1] * self.row_dir + row * self.spacing[0] * self.col_dir

    def to_pixel(self, point) -> tuple[float, float]:
        """(row, column) of a patient point projected onto this slice's plane."""
        d = np.asarray(point, dtype=np.float64) - self.position
        return float(d @ self.col_dir / self.spacing[0]), float(d @ self.row_dir / self.spacing[1])


@dataclass
class LocatorGrid:
    """Central slices of one series on the locator's grid, and the way back to the original pixels."""

    pixels: np.ndarray        # (k, H, W) float32 in [0, 1], head up, anterior left
    frame: SliceFrame         # the central original slice
    shape: tuple[int, int]    # original (rows, columns)
    scaled: tuple[int, int]   # after resampling to mm per pixel, before turning
    transpose: bool
    flip_rows: bool
    flip_cols: bool
    mm: float

    def to_original(self, i: float, j: float) -> tuple[float, float]:
        """Grid pixel (row i, column j) -> original (row, column)."""
        h, w = (self.scaled[1], self.scaled[0]) if self.transpose else self.scaled
        if self.flip_rows:
            i = h - 1 - i
        if self.flip_cols:
            j = w - 1 - j
        if self.transpose:
            i, j = j, i
        sr, sc = self.shape[0] / self.scaled[0], self.shape[1] / self.scaled[1]
        return (i + 0.5) * sr - 0.5, (j + 0.5) * sc - 0.5

    def from_original(self, r: float, c: float) -> tuple[float, float]:
        sr, sc = self.shape[0] / self.scaled[0], self.shape[1] / self.scaled[1]
        i, j = (r + 0.5) / sr - 0.5, (c + 0.5) / sc - 0.5
        if self.transpose:
            i, j = j, i
        h, w = (self.scaled[1], self.scaled[0]) if self.transpose else self.scaled
        if self.flip_rows:
            i = h - 1 - i
        if self.flip_cols:
            j = w - 1 - j
        return i, j

    def to_patient(self, i: float, j: float) -> np.ndarray:
        return self.frame.to_patient(*self.to_original(i, j))

    def from_patient(self, point) -> tuple[float, float]:
        return self.from_original(*self.frame.to_pixel(point))


def central_indices(n: int, k: int) -> list[int]:
    mid = (n - 1) / 2
    order = sorted(range(n), key=lambda i: (abs(i - mid), i))
    return sorted(order[:k])


def locator_grid(datasets: list, cfg: LocatorConfig, volume: np.ndarray | None = None) -> LocatorGrid:
    """The central ``cfg.n_slices`` slices of a sagittal series (ordered along the normal) on the locator grid.

    ``volume`` (n, rows, cols) may be passed when the pixels are already decoded.
    """
    idx = central_indices(len(datasets), cfg.n_slices)
    if volume is None:
        vol = np.stack([pixels_from_dataset(datasets[i]) for i in idx]).astype(np.float32)
    else:
        vol = np.asarray(volume, dtype=np.float32)[idx]
    frame = SliceFrame.from_dataset(datasets[idx[len(idx) // 2]])
    rows, cols = vol.shape[-2:]
    h2 = max(8, int(round(rows * frame.spacing[0] / cfg.mm)))
    w2 = max(8, int(round(cols * frame.spacing[1] / cfg.mm)))
    x = torch.from_numpy(window(vol))[:, None]
    x = F.interpolate(x, size=(h2, w2), mode="bilinear", align_corners=False, antialias=True)[:, 0].numpy()
    # turn so rows run head -> feet (-z) and columns anterior -> posterior (+y)
    transpose = abs(frame.row_dir[2]) > abs(frame.row_dir[1])
    row_axis, col_axis = (frame.row_dir, frame.col_dir) if transpose else (frame.col_dir, frame.row_dir)
    if transpose:
        x = x.transpose(0, 2, 1)
    flip_rows, flip_cols = bool(row_axis[2] > 0), bool(col_axis[1] < 0)
    if flip_rows:
        x = x[:, ::-1]
    if flip_cols:
        x = x[:, :, ::-1]
    return LocatorGrid(np.ascontiguousarray(x, dtype=np.float32), frame, (rows, cols), (h2, w2), transpose,
                       flip_rows, flip_cols, cfg.mm)


# ---------------------------------------------------------------- network outputs

@torch.no_grad()
def locator_maps(locator: SpineLocator, grid: LocatorGrid, temperature: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(disc probability (h, w), level log-probabilities (C, h, w)) on the 4 mm cells, averaged over the slices."""
    locator.eval()
    x = pad_to_multiple(torch.from_numpy(grid.pixels)[:, None])
    out = locator(x)
    h, w = (grid.pixels.shape[-2] + STRIDE - 1) // STRIDE, (grid.pixels.shape[-1] + STRIDE - 1) // STRIDE
    heat = torch.sigmoid(out["heat"][:, 0, :h, :w]).mean(0)
    t = float(temperature if temperature is not None else getattr(locator, "temperature", torch.tensor(1.0)))
    logp = torch.log_softmax(out["level"][:, :, :h, :w] / t, dim=1).mean(0)
    return heat.numpy(), logp.numpy()


def cell_to_grid(u: float, v: float) -> tuple[float, float]:
    """Output cell centre -> grid pixel coordinates."""
    return u * STRIDE + (STRIDE - 1) / 2, v * STRIDE + (STRIDE - 1) / 2


# ---------------------------------------------------------------- detection

@dataclass
class Peak:
    u: int
    v: int
    score: float
    logp: np.ndarray = field(repr=False)


def find_peaks(heat: np.ndarray, logp: np.ndarray, cfg: LocatorConfig,
               grid_shape: tuple[int, int] | None = None) -> list[Peak]:
    """Local maxima above the threshold, at least MIN_PEAK_DISTANCE_MM apart (stronger first), not within
    BORDER_MM of the image edge (``grid_shape``: the grid's (rows, columns) before padding)."""
    t = torch.from_numpy(heat)[None, None]
    local = (F.max_pool2d(t, 3, 1, 1) == t)[0, 0].numpy() & (heat >= cfg.heat_threshold)
    if grid_shape is not None:
        gi, gj = cell_to_grid(np.arange(heat.shape[0]), np.arange(heat.shape[1]))
        inside_r = (gi * cfg.mm >= BORDER_MM) & ((grid_shape[0] - 1 - gi) * cfg.mm >= BORDER_MM)
        inside_c = (gj * cfg.mm >= BORDER_MM) & ((grid_shape[1] - 1 - gj) * cfg.mm >= BORDER_MM)
        local &= inside_r[:, None] & inside_c[None, :]
    us, vs = np.nonzero(local)
    order = np.argsort(-heat[us, vs])
    cell_mm = cfg.mm * STRIDE
    kept: list[Peak] = []
    for k in order:
        u, v = int(us[k]), int(vs[k])
        if all(math.hypot(u - p.u, v - p.v) * cell_mm >= MIN_PEAK_DISTANCE_MM for p in kept):
            lp = logp[:, max(u - 1, 0): u + 2, max(v - 1, 0): v + 2].reshape(logp.shape[0], -1)
            kept.append(Peak(u, v, float(heat[u, v]), np.log(np.exp(lp).mean(1) + 1e-12)))
    return kept


MAX_TURN_DEG = 50.0          # the spine's course turns less than this from one disc to the next
STEP_RATIO = (0.45, 2.5)     # next spacing relative to the previous one (2.x: one disc not detected)


def _angle_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    na, nb = math.hypot(*a), math.hypot(*b)
    if na < 1e-9 or nb < 1e-9:
        return 0.0
    return math.degrees(math.acos(max(-1.0, min(1.0, (a[0] * b[0] + a[1] * b[1]) / (na * nb)))))


def _grow(start: Peak, peaks: list[Peak], cell_mm: float) -> list[Peak]:
    """A head-to-feet path of peaks through ``start``: each step goes on along the course (turning
    less than MAX_TURN_DEG, spacing within STEP_RATIO of the last one), the best-fitting candidate first."""
    path, used = [start], {id(start)}
    for sign in (1, -1):  # down the rows, then up
        cur, prev = start, None
        while True:
            best = None
            for q in peaks:
                if id(q) in used:
                    continue
                d = ((q.u - cur.u) * sign, (q.v - cur.v) * sign)
                dist = math.hypot(*d) * cell_mm
                if d[0] <= 0 or not GAP_RANGE_MM[0] <= dist <= 2.2 * GAP_RANGE_MM[1]:
                    continue
                if prev is None:
                    turn = _angle_deg(d, (1.0, 0.0))  # first step: roughly along the rows (head to feet)
                    if turn > 60.0 or dist > GAP_RANGE_MM[1]:
                        continue
                    cost = dist / 30.0 + turn / 60.0
                else:
                    turn = _angle_deg(d, prev)
                    ratio = math.hypot(*d) / max(math.hypot(*prev), 1e-9)
                    if turn > MAX_TURN_DEG or not STEP_RATIO[0] <= ratio <= STEP_RATIO[1]:
                        continue
                    cost = turn / MAX_TURN_DEG + abs(math.log(ratio))
                cost -= 0.3 * q.score
                if best is None or cost < best[0]:
                    best = (cost, q, d)
            if best is None:
                break
            _, q, d = best
            used.add(id(q))
            path.append(q)
            cur, prev = q, d
    return sorted(path, key=lambda p: (p.u, p.v))


def chain(peaks: list[Peak], cfg: LocatorConfig, starts: int = 3) -> list[Peak]:
    """The peaks on one smooth head-to-feet course (the spine), ordered by row.

    The course is grown from each of the ``starts`` strongest peaks, step by step along the spine
    (it may curve: lordosis, kyphosis, the lumbosacral angle), and the longest path is kept
    (ties: the higher summed heat). Peaks off it (duplicates within a wide disc, bowel, vessels,
    the other end of a knee) are dropped.
    """
    if len(peaks) < 2:
        return list(peaks)
    cell_mm = cfg.mm * STRIDE
    paths = [_grow(p, peaks, cell_mm) for p in sorted(peaks, key=lambda p: -p.score)[:starts]]
    return max(paths, key=lambda path: (len(path), sum(p.score for p in path)))


# ---------------------------------------------------------------- decoding

def _transitions(gaps: np.ndarray) -> list[dict[int, float]]:
    """Per consecutive pair: allowed label steps (1, or 2 for a missed disc) and their log-costs.

    A gap is compared with its neighbouring gaps (spacing grows down the spine): about one
    spacing makes a missed disc very unlikely (cost 9), about two spacings makes it likely
    (cost 0.5) and a single step unlikely.
    """
    out = []
    for i, g in enumerate(gaps):
        ref = [gaps[j] for j in (i - 1, i + 1) if 0 <= j < len(gaps)]
        base = float(np.median(ref)) if ref else float(g)
        ratio = g / max(base, 1e-6)
        skip = 9.0 - 8.5 * float(np.clip((ratio - 1.0) / 0.8, 0.0, 1.0))
        one = 8.0 * max(0.0, ratio - 1.5)
        out.append({1: -one, 2: -skip})
    return out


def decode(logp: np.ndarray, gaps: np.ndarray) -> tuple[list[int], np.ndarray, float]:
    """Most probable run of increasing labels for ordered detections.

    logp (n, C): per-detection label log-probabilities; gaps (n-1,) distances in mm.
    Returns (labels, per-detection posterior of its label, posterior of the whole run).
    """
    n, c = logp.shape
    if n == 0:
        return [], np.zeros(0), 0.0
    trans = _transitions(gaps)
    neg = -1e9
    # Viterbi
    best = logp[0].copy()
    back = np.zeros((n, c), dtype=int)
    for i in range(1, n):
        cand = np.full((len(trans[i - 1]), c), neg)
        for k, (step, cost) in enumerate(sorted(trans[i - 1].items())):
            cand[k, step:] = best[:-step] + cost
        arg = cand.argmax(0)
        steps = np.array(sorted(trans[i - 1]))
        back[i] = steps[arg]
        best = cand.max(0) + logp[i]
    labels = [int(best.argmax())]
    for i in range(n - 1, 0, -1):
        labels.append(labels[-1] - int(back[i, labels[-1]]))
    labels = labels[::-1]
    # forward-backward (log-sum-exp) for posteriors
    fwd = np.zeros((n, c))
    fwd[0] = logp[0]
    for i in range(1, n):
        acc = np.full(c, neg)
        for step, cost in trans[i - 1].items():
            shifted = np.full(c, neg)
            shifted[step:] = fwd[i - 1][:-step] + cost
            acc = np.logaddexp(acc, shifted)
        fwd[i] = acc + logp[i]
    bwd = np.zeros((n, c))
    for i in range(n - 2, -1, -1):
        acc = np.full(c, neg)
        for step, cost in trans[i].items():
            shifted = np.full(c, neg)
            shifted[:-step] = bwd[i + 1][step:] + logp[i + 1][step:] + cost
            acc = np.logaddexp(acc, shifted)
        bwd[i] = acc
    total = np.logaddexp.reduce(fwd[-1])
    post = np.array([math.exp(fwd[i, labels[i]] + bwd[i, labels[i]] - total) for i in range(n)])
    path_score = logp[0, labels[0]] + sum(logp[i, labels[i]] + trans[i - 1][labels[i] - labels[i - 1]]
                                          for i in range(1, n))
    return labels, post, float(math.exp(min(0.0, path_score - total)))


# ---------------------------------------------------------------- result

@dataclass
class DiscMark:
    level: str | None          # None: level uncertain
    label: str                 # the decoded label even when uncertain (for the record)
    confidence: float          # posterior of the label
    row: float                 # original pixel coordinates on the locator series' central slice
    col: float
    patient: list[float]
    score: float               # heatmap value
    counted_on: str = ""       # SeriesInstanceUID whose discs named this one ("" = its own series)


@dataclass
class SpineLabels:
    """What the locator saw on one series."""

    series_instance_uid: str
    sop_instance_uid: str
    discs: list[DiscMark] = field(default_factory=list)
    is_spine: bool = False
    reason: str = ""               # why the images do not confirm a spine (or "")
    run_confidence: float = 0.0    # posterior of the whole decoded run
    spacing_known: bool = True
    counted_on: str = ""           # the series the names were counted on, when not this one (adopt_levels)
    counted_on_name: str = ""      # that series as a reader knows it: 'localizer (series 1)'
    count_note: str = ""           # why another series could not name this one's discs ("" when not tried or fine)
    count_conflict: bool = False   # another series of the study counts these discs differently
    grid: LocatorGrid | None = field(default=None, repr=False)

    @property
    def named(self) -> list[DiscMark]:
        return [d for d in self.discs if d.level]

    @property
    def uncertain(self) -> bool:
        return any(d.level is None for d in self.discs)

    @property
    def not_confirmed(self) -> str:
        """Why the images did not confirm a spine ("" when they did): what ``intake.decide_region`` reports."""
        return "" if self.is_spine else self.reason

    def visible_levels(self) -> list[str]:
        """Named discs and the vertebrae between and just around them, cranio-caudal."""
        out: list[str] = []
        for d in self.named:
            up, low = d.level.split("-")
            out += [lv for lv in (up, d.level, low) if (lv == d.level or lv in VERTEBRAE) and lv not in out]
        return sorted(out, key=_position)

    def to_dict(self) -> dict:
        return {"series_instance_uid": self.series_instance_uid, "sop_instance_uid": self.sop_instance_uid,
                "is_spine": self.is_spine, "reason": self.reason, "run_confidence": round(self.run_confidence, 4),
                "spacing_known": self.spacing_known, "counted_on": self.counted_on, "counted_on_name": self.counted_on_name,
                "count_note": self.count_note,
                "count_conflict": self.count_conflict,
                "discs": [{**asdict(d), "confidence": round(d.confidence, 4), "score": round(d.score, 4),
                           "row": round(d.row, 1), "col": round(d.col, 1),
                           "patient": [round(v, 2) for v in d.patient]} for d in self.discs]}

    # -- placing a finding
    def _along(self, point) -> tuple[float, float, list[float]] | None:
        """(position along the chain in mm from the first disc, distance off it, disc positions) of a patient point."""
        if self.grid is None or len(self.discs) < 2:
            return None
        pts = np.array([self.grid.from_patient(d.patient) for d in self.discs]) * self.grid.mm
        q = np.array(self.grid.from_patient(point)) * self.grid.mm
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        best = None
        last = len(pts) - 2
        for k in range(last + 1):
            a, ab = pts[k], pts[k + 1] - pts[k]
            length = float(np.linalg.norm(ab))
            t = float((q - a) @ ab / max(length * length, 1e-9))
            # inside the chain clip to the segment; above the first / below the last disc extrapolate
            t = float(np.clip(t, -np.inf if k == 0 else 0.0, np.inf if k == last else 1.0))
            d = float(np.linalg.norm(q - (a + t * ab)))
            if best is None or d < best[1]:
                best = (cum[k] + t * length, d)
        return best[0], best[1], cum.tolist()

    def level_at(self, point, kind: str) -> tuple[str | None, str]:
        """Level of a finding at a patient point: kind "disc" -> a disc level, else a vertebra.

        Returns (level, "") or (None, why): outside the imaged chain, off the spine, or a disc
        the model could not name with confidence.
        """
        if not self.is_spine:
            return None, "no spine chain found on the images"
        where = self._along(point)
        if where is None:
            return None, "too few discs detected to place levels"
        pos, off, cum = where
        gaps = np.diff(cum)
        gap = float(np.median(gaps)) if len(gaps) else 30.0
        if off > 1.5 * gap + 20.0:
            return None, "finding lies off the spine"
        if kind == "disc":
            k = int(np.argmin([abs(pos - c) for c in cum]))
            if abs(pos - cum[k]) > 0.4 * (gaps[min(k, len(gaps) - 1)] if len(gaps) else gap):
                return None, "finding lies between discs"
            d = self.discs[k]
            return (d.level, "") if d.level else (None, "disc level uncertain")
        # vertebra / cord: between discs k and k+1 -> the vertebra below disc k
        if pos < cum[0] - gap or pos > cum[-1] + gap:
            return None, "finding lies beyond the discs in view"
        if pos < cum[0]:
            d = self.discs[0]
            return (d.level.split("-")[0], "") if d.level else (None, "level uncertain")
        k = int(np.searchsorted(cum, pos, side="right") - 1)
        d = self.discs[min(k, len(self.discs) - 1)]
        if not d.level:
            return None, "level uncertain"
        low = d.level.split("-")[1]
        return (low, "") if low in VERTEBRAE else (None, "level below the labelled spine")


def _position(level: str) -> float:
    head = level.split("-")[0]
    base = VERTEBRAE.index(head) if head in VERTEBRAE else len(VERTEBRAE)
    return base + (0.5 if "-" in level else 0.0)


def label_series(locator: SpineLocator, datasets: list, series_instance_uid: str, cfg: LocatorConfig | None = None,
                 volume: np.ndarray | None = None) -> SpineLabels:
    """Run the locator on one sagittal series (datasets ordered along the normal) and decode its levels."""
    cfg = cfg or locator.cfg
    grid = locator_grid(datasets, cfg, volume)
    heat, logp = locator_maps(locator, grid)
    idx = central_indices(len(datasets), cfg.n_slices)
    sop = str(datasets[idx[len(idx) // 2]].get("SOPInstanceUID", ""))
    out = SpineLabels(series_instance_uid, sop, spacing_known=grid.frame.spacing_known, grid=grid)
    peaks = chain(find_peaks(heat, logp, cfg, grid.pixels.shape[-2:]), cfg)
    cell_mm = cfg.mm * STRIDE
    if len(peaks) >= 2:
        gaps = np.array([math.hypot(b.u - a.u, b.v - a.v) * cell_mm for a, b in zip(peaks[:-1], peaks[1:])])
    else:
        gaps = np.zeros(0)
    logp_all = np.stack([p.logp for p in peaks]) if peaks else np.zeros((0, len(DISC_CLASSES)))
    labels, post, run = decode(cfg.evidence * logp_all, gaps)
    out.run_confidence = run
    for p, lab, q in zip(peaks, labels, post):
        i, j = cell_to_grid(p.u, p.v)
        r, c = grid.to_original(i, j)
        name = DISC_CLASSES[lab]
        ok = q >= cfg.confidence and grid.frame.spacing_known and name in DISC_LEVELS
        out.discs.append(DiscMark(name if ok else None, name, float(q), r, c,
                                  grid.frame.to_patient(r, c).tolist(), p.score))
    med = float(np.median(gaps)) if len(gaps) else 0.0
    if len(peaks) < cfg.min_discs:
        out.reason = f"{len(peaks)} intervertebral disc(s) found on the images (a spine shows at least {cfg.min_discs})"
    elif not GAP_RANGE_MM[0] <= med <= GAP_RANGE_MM[1]:
        out.reason = f"disc-like structures {med:.0f} mm apart, not a spine's spacing"
    else:
        out.is_spine = True
    return out


REGION_DISCS = {"cervical": [lv for lv in DISC_LEVELS if lv.startswith("C")],
                "thoracic": [lv for lv in DISC_LEVELS if lv.startswith("T")],
                "lumbar": [lv for lv in DISC_LEVELS if lv.startswith("L")]}


def regions_from_discs(discs: list[str]) -> tuple[str, ...]:
    """Regions an image covers: those with at least half their discs (and at least two) in view;
    if none qualifies, the region with the most discs in view; () when no disc is named."""
    counts = {r: sum(d in discs for d in ds) for r, ds in REGION_DISCS.items()}
    out = tuple(r for r, ds in REGION_DISCS.items() if counts[r] >= max(2, math.ceil(len(ds) / 2)))
    if out:
        return out
    best = max(counts, key=counts.get)
    return (best,) if counts[best] else ()


# ---------------------------------------------------------------- counting from another series

def _in_plane(a, b, normal: np.ndarray) -> float:
    """Distance between two patient points with the component along ``normal`` (the slice normal) removed."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(d - (d @ normal) * normal))


def adopt_levels(own: SpineLabels, other: SpineLabels, match_fraction: float = 0.4) -> SpineLabels:
    """``own``'s discs named from ``other``'s (same frame of reference, e.g. the localizer).

    Each of ``own``'s discs is matched to the nearest named disc of ``other`` in the sagittal plane,
    within ``match_fraction`` of a disc spacing. The matches must agree on one count shift between
    ``own``'s decoded run and ``other``'s names; that shift then names the matched discs, the discs
    between them and one disc beyond each end (the run's own spacing says those are the neighbours).
    A shift that contradicts a name ``own`` gave itself, or matches that disagree, name nothing:
    the returned labels keep ``own``'s names and say why in ``count_note``. A view where ``own`` found no
    disc at all (one disc, cut at the edges) takes ``other``'s named discs that lie inside it.
    """
    if own.grid is None:
        return replace(own, count_note="this series shows no disc to name")
    if not other.named:
        return replace(own, count_note=f"series {other.series_instance_uid} names no disc")
    frame = own.grid.frame
    normal = np.cross(frame.row_dir, frame.col_dir)
    normal = normal / max(float(np.linalg.norm(normal)), 1e-9)
    pts = [np.asarray(d.patient) for d in own.discs]
    ref = [np.asarray(d.patient) for d in other.named]
    gaps = [_in_plane(a, b, normal) for a, b in zip(pts[:-1], pts[1:])]
    ref_gaps = [_in_plane(a, b, normal) for a, b in zip(ref[:-1], ref[1:])]
    gap = float(np.median(gaps or ref_gaps or [30.0]))
    if not own.discs:  # a view too small for the detector (one disc, cut at the edges): the scout names
        return _counted_elsewhere(own, other, _missed_discs(own, other, set(), normal, match_fraction * gap))
    matches: dict[int, tuple[DiscMark, int]] = {}
    for i, (d, p) in enumerate(zip(own.discs, pts)):
        dist = [_in_plane(p, q, normal) for q in ref]
        j = int(np.argmin(dist))
        if dist[j] <= match_fraction * gap:
            matches[i] = (other.named[j], DISC_CLASSES.index(other.named[j].level) - DISC_CLASSES.index(d.label))
    if not matches:
        return replace(own, count_note=f"no disc of series {other.series_instance_uid} lies on this series' discs")
    shifts = {k for _, k in matches.values()}
    if len(shifts) > 1:
        return replace(own, count_note="the other series' discs do not line up with this series' run")
    shift = shifts.pop()
    renamed = []
    for d in own.discs:
        k = DISC_CLASSES.index(d.label) + shift
        renamed.append(DISC_CLASSES[k] if 0 <= k < len(DISC_CLASSES) else None)
    if any(d.level and d.level != name for d, name in zip(own.discs, renamed)):
        return replace(own, count_conflict=True,
                       count_note=f"series {other.series_instance_uid} counts the discs differently; no level is named")
    first, last = min(matches) - 1, max(matches) + 1
    confidence = min(m.confidence for m, _ in matches.values())
    discs = []
    for i, (d, name) in enumerate(zip(own.discs, renamed)):
        if d.level or not first <= i <= last or name not in DISC_LEVELS:
            discs.append(d)
        else:
            discs.append(replace(d, level=name, label=name, confidence=confidence,
                                 counted_on=other.series_instance_uid))
    discs += _missed_discs(own, other, {d.label for d in discs}, normal, match_fraction * gap)
    return _counted_elsewhere(own, other, discs)


def _counted_elsewhere(own: SpineLabels, other: SpineLabels, discs: list[DiscMark]) -> SpineLabels:
    """``own`` with ``discs`` (head to feet on its grid); a view that took any name from ``other`` is a
    spine where ``other`` shows one (its discs lie in this view, in one patient coordinate system)."""
    if not discs:
        return replace(own, count_note=f"no named disc of series {other.series_instance_uid} lies in this view")
    discs = sorted(discs, key=lambda d: own.grid.from_patient(d.patient)[0])  # whatever the names
    adopted = any(d.counted_on for d in discs)
    return replace(own, discs=discs, is_spine=own.is_spine or (adopted and other.is_spine),
                   reason="" if adopted and other.is_spine else own.reason,
                   counted_on=other.series_instance_uid if adopted else "", count_note="")


def _missed_discs(own: SpineLabels, other: SpineLabels, have: set[str], normal: np.ndarray, tol: float) -> list[DiscMark]:
    """Named discs of ``other`` that lie inside ``own``'s field of view (centre at least BORDER_MM in)
    where ``own`` found none: its detector missed them (often at the edge), the other series did not."""
    frame, (rows, cols) = own.grid.frame, own.grid.shape
    mr, mc = BORDER_MM / frame.spacing[0], BORDER_MM / frame.spacing[1]
    out = []
    for q in other.named:
        if q.level in have or any(_in_plane(q.patient, d.patient, normal) <= tol for d in own.discs):
            continue
        r, c = frame.to_pixel(q.patient)
        if mr <= r <= rows - 1 - mr and mc <= c <= cols - 1 - mc:
            out.append(DiscMark(q.level, q.level, q.confidence, r, c, frame.to_patient(r, c).tolist(), 0.0,
                                counted_on=other.series_instance_uid))
    return out


def sagittal_part(datasets: list) -> list:
    """The sagittal instances of a series (a 3-plane localizer holds all three planes), ordered along their normal."""
    from .sequences import SAGITTAL, plane_from_orientation
    from .study import slice_position

    return sorted((ds for ds in datasets if plane_from_orientation(ds.get("ImageOrientationPatient")) == SAGITTAL),
                  key=slice_position)


def field_height_mm(datasets: list) -> float:
    """Rows x row spacing of a series' first instance (0 when unknown): how much of the spine it can show."""
    try:
        return float(datasets[0].Rows) * float(datasets[0].PixelSpacing[0])
    except (AttributeError, IndexError, TypeError, ValueError):
        return 0.0


def series_name(ds) -> str:
    """'localizer (series 1)': a series as the reader finds it in the viewer."""
    desc = str(ds.get("SeriesDescription", "") or "").strip() or "unnamed series"
    number = ds.get("SeriesNumber")
    return f"{desc} (series {number})" if number not in (None, "") else desc


def label_study(locator: SpineLocator, series: list[tuple[str, list]], cfg: LocatorConfig | None = None,
                max_others: int = 4) -> SpineLabels | None:
    """Levels of a study: the first series of ``series`` ((uid, datasets), the one the model reads), its
    discs named from the others (localizers, larger views) when it cannot count them itself.

    The others are tried largest field of view first, only those sharing the read series' frame of
    reference (positions in one patient coordinate system), at most ``max_others`` of them. The first
    that lines up names (or confirms) the discs and adds those this series missed; one that counts
    differently first leaves every disc unnamed. Consulting every series was measured and named nothing
    more often: the weaker views' disagreements vetoed right counts (docs/models.md).
    """
    if not series or not series[0][1]:
        return None
    uid, datasets = series[0]
    own = label_series(locator, datasets, uid, cfg)
    frame = str(datasets[0].get("FrameOfReferenceUID", "") or "")
    others = []
    for other_uid, other_ds in series[1:]:
        part = sagittal_part(other_ds)
        if part and frame and str(part[0].get("FrameOfReferenceUID", "") or "") == frame:
            others.append((field_height_mm(part), other_uid, part))
    notes = []
    for _, other_uid, part in sorted(others, key=lambda o: -o[0])[:max_others]:
        try:
            other = label_series(locator, part, other_uid, cfg)
        except Exception as exc:  # pydicom and its plugins raise many kinds; a broken scout must not lose the read
            notes.append(f"series {other_uid} could not be read ({type(exc).__name__})")
            continue
        fused = adopt_levels(own, other)
        if fused.count_conflict:  # two views count differently: name nothing rather than guess which is right
            return replace(own, discs=[replace(d, level=None) for d in own.discs], count_note=fused.count_note,
                           count_conflict=True)
        if not fused.count_note:  # lined up: names adopted (and discs this series missed added), or confirmed
            if fused.counted_on:
                fused.counted_on_name = series_name(part[0])
            return fused
        notes.append(fused.count_note)
    return replace(own, count_note="; ".join(notes)) if notes else own
