"""Ground-truth boxes and key slices, measured from what was drawn.

Why measure instead of trusting the pathology code: a finding's ellipsoid may be
clipped by the tissues it may grow into, a shrunken sac may hide behind the
cord, and a change may be invisible on one sequence and obvious on another. So
for each finding we re-draw the *normal* twin (same patient, no findings) only
inside the finding's footprint, compare per sequence the noise-free signal of
the two tissue maps, and box the pixels that differ. A slice with a box is a key
slice; the sequences with a box are ``visible_on``.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Spine

SIGNAL_THRESHOLD = 0.07  # fraction of the series' brightest tissue signal
MIN_PIXELS = 4
PAD = 1


def _bbox(mask: np.ndarray):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def locate(finding, normal: Spine, plan, labels: np.ndarray, series_list: list) -> list[tuple]:
    """Boxes of one finding on the series sharing one scan plan.

    Returns [(series, slice_index, [x0, y0, x1, y1])], boxes in pixels, x = column,
    end-exclusive, clipped to the image.
    """
    hits: dict[tuple[int, int], list] = {}
    luts = [(k, s.lut, float(s.lut.max()) * SIGNAL_THRESHOLD) for k, s in enumerate(series_list)]
    rows, cols = plan.rows, plan.cols
    for (x0, x1, s0, s1, t0, t1) in finding.footprint:
        if plan.plane == "sagittal":
            _, s_img, t_img = plan.coords[0]
            m = (s_img >= s0) & (s_img <= s1) & (t_img >= t0) & (t_img <= t1)
            if not m.any():
                continue
            r0, r1, c0, c1 = _bbox(m)
            mc = m[r0:r1, c0:c1]
            geo = None
            half = plan.thickness / 2
            for i, (x, _s, _t) in enumerate(plan.coords):
                if x + half < x0 or x - half > x1:
                    continue
                if geo is None:
                    geo = normal.geometry(s_img[r0:r1, c0:c1], t_img[r0:r1, c0:c1])
                norm = normal.labels(x, geo)
                _compare(hits, i, labels[i, r0:r1, c0:c1], norm, mc, luts, r0, c0)
        else:
            for i, (xs, s_row, t_row) in enumerate(plan.coords):
                mr = ((s_row >= s0) & (s_row <= s1) & (t_row >= t0) & (t_row <= t1))[:, 0]
                mcol = ((xs >= x0) & (xs <= x1))[0]
                if not mr.any() or not mcol.any():
                    continue
                ri, ci = np.flatnonzero(mr), np.flatnonzero(mcol)
                r0, r1, c0, c1 = ri[0], ri[-1] + 1, ci[0], ci[-1] + 1
                geo = normal.geometry(s_row[r0:r1], t_row[r0:r1])
                norm = normal.labels(xs[:, c0:c1], geo)
                mc = mr[r0:r1, None] & mcol[None, c0:c1]
                _compare(hits, i, labels[i, r0:r1, c0:c1], norm, mc, luts, r0, c0)
    out = []
    for (k, i), (ya, yb, xa, xb) in sorted(hits.items()):
        box = [max(xa - PAD, 0), max(ya - PAD, 0), min(xb + PAD, cols), min(yb + PAD, rows)]
        out.append((series_list[k], i, box))
    return out


def _compare(hits, i, abn, norm, mask, luts, r0, c0):
    changed = (abn != norm) & mask
    if changed.sum() < MIN_PIXELS:
        return
    for k, lut, thr in luts:
        d = (np.abs(lut[abn] - lut[norm]) > thr) & changed
        if d.sum() < MIN_PIXELS:
            continue
        a, b, c, e = _bbox(d)
        box = (a + r0, b + r0, c + c0, e + c0)
        old = hits.get((k, i))
        if old is not None:
            box = (min(old[0], box[0]), max(old[1], box[1]), min(old[2], box[2]), max(old[3], box[3]))
        hits[(k, i)] = box
