"""Scan planning: where the slices go, in patient coordinates, and their label maps.

Sagittal stack: rows run head-to-feet (-z), columns anterior-to-posterior (+y),
slices step along +x (patient right to left); ImageOrientationPatient
[0,1,0, 0,0,-1]. Axial slices: a few per disc, tilted to the disc (at most 30
degrees so the plane still reads as axial); rows +x, columns along the disc's
posterior direction. Geometry is in DICOM LPS millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anatomy import INDEX, REGION_DISCS, REGION_SPAN, Spine

MAX_AXIAL_TILT = np.deg2rad(30.0)


@dataclass
class SliceGeometry:
    position: tuple[float, float, float]     # ImagePositionPatient of pixel (0, 0)
    orientation: tuple[float, ...]           # ImageOrientationPatient
    spacing: tuple[float, float]             # PixelSpacing (row step, column step)
    location: float                          # SliceLocation
    level: str = ""                          # disc level for axial slices


@dataclass
class StackPlan:
    plane: str
    rows: int
    cols: int
    thickness: float
    gap: float
    slices: list[SliceGeometry] = field(default_factory=list)
    # curvilinear coordinates of every slice, for the label function
    coords: list[tuple] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)


def plan_sagittal(spine: Spine, regions: tuple[str, ...], rows: int, cols: int,
                  rng: np.random.Generator) -> StackPlan:
    """A sagittal stack covering the regions, centred so the spine sits behind the middle."""
    tops = [INDEX[REGION_SPAN[r][0]] for r in regions]
    bots = [INDEX[REGION_SPAN[r][1]] for r in regions]
    i0, i1 = min(tops), max(bots)
    s0 = spine.top[i0] - (15.0 if i0 == 0 else 0.0)
    s1 = spine.bottom[i1]
    ss = np.linspace(s0, s1, 50)
    y, z, _ = spine.point(ss)
    extent_z = float(z.max() - z.min())
    fov = max(extent_z * rng.uniform(1.05, 1.15), 200.0 if "cervical" in regions else 260.0)
    spacing = fov / rows
    zc = float((z.max() + z.min()) / 2)
    # the posterior body wall sits at ~55-62% of the width from the anterior (left) edge
    y_left = float(np.median(y)) - spacing * cols * rng.uniform(0.5, 0.57)
    z_top = zc + spacing * rows / 2
    thickness = float(rng.choice([3.0, 3.5, 4.0]))
    gap = float(rng.choice([0.3, 0.4, 0.5, 0.8]))
    n = int(rng.choice([13, 15, 15, 17]))
    step = thickness + gap
    x_off = float(rng.uniform(-1.5, 1.5))
    xs = x_off + (np.arange(n) - (n - 1) / 2) * step
    plan = StackPlan("sagittal", rows, cols, thickness, gap)
    r = np.arange(rows)
    c = np.arange(cols)
    yy = y_left + c[None, :] * spacing + 0 * r[:, None]
    zz = z_top - r[:, None] * spacing + 0 * c[None, :]
    s_img, t_img = spine.project(yy, zz)
    for x in xs:
        plan.slices.append(SliceGeometry(
            position=(float(x), float(y_left), float(z_top)),
            orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
            spacing=(spacing, spacing), location=float(x)))
        plan.coords.append((float(x), s_img, t_img))
    return _ordered(plan)


COVERAGE_MODES = ("planned", "partial", "crop")


def plan_sagittal_varied(spine: Spine, regions: tuple[str, ...], rng: np.random.Generator,
                         min_rows: int = 128, max_rows: int = 512) -> tuple[StackPlan, dict]:
    """A sagittal stack planned the way real protocols vary (generator option ``acquisition="varied"``).

    Coverage: the region's planned span (45%), a random sub-span of at least three vertebrae
    such as C2-T1 or T10-S1 (40%), or a 55-90 mm crop anywhere in the region (15%); the field of
    view is 1.05-1.35x the span along the spine and shifted by up to 12% of itself, its width
    0.55-1.0x its height; pixel spacing 0.4-1.2 mm (square pixels; the matrix follows, 128-512
    rows); in-plane rotation up to 12 degrees; 2.5-4.5 mm slices, gaps 0-1 mm, 11-19 slices,
    the stack off the midline by up to 4 mm. Returns the plan and what was drawn.
    """
    tops = [INDEX[REGION_SPAN[r][0]] for r in regions]
    bots = [INDEX[REGION_SPAN[r][1]] for r in regions]
    i0, i1 = min(tops), max(bots)
    u = rng.random()
    mode = "planned" if u < 0.45 else ("partial" if u < 0.85 else "crop")
    if mode == "planned":
        s0, s1 = spine.top[i0] - (15.0 if i0 == 0 else 0.0), spine.bottom[i1]
    elif mode == "partial":
        lo = max(i0, INDEX["C2"])
        a = int(rng.integers(lo, max(lo + 1, i1 - 1)))
        b = int(rng.integers(min(a + 2, i1), i1 + 1))
        s0, s1 = spine.top[a], spine.bottom[b]
    else:
        centre = rng.uniform(spine.top[max(i0, INDEX["C2"])], spine.bottom[i1])
        half = rng.uniform(55.0, 90.0) / 2
        s0, s1 = centre - half, centre + half
    theta = float(np.deg2rad(rng.uniform(-12.0, 12.0))) if rng.random() < 0.7 else 0.0
    r_dir = np.array([np.cos(theta), np.sin(theta)])    # (y, z) step of one column
    c_dir = np.array([np.sin(theta), -np.cos(theta)])   # (y, z) step of one row (head to feet)
    ss = np.linspace(s0, s1, 60)
    y, z, _ = spine.point(ss)
    pts = np.stack([y, z], 1)
    along = pts @ c_dir
    across = pts @ r_dir
    if mode == "crop":
        fov_rows = float(s1 - s0)
    else:
        fov_rows = float(along.max() - along.min()) * rng.uniform(1.05, 1.35)
    fov_cols = max(fov_rows * rng.uniform(0.55, 1.0), 70.0)
    spacing = float(rng.uniform(0.4, 1.2))
    rows = int(round(fov_rows / spacing))
    if rows > max_rows or rows < min_rows:
        rows = int(np.clip(rows, min_rows, max_rows))
        spacing = fov_rows / rows
    cols = int(np.clip(round(fov_cols / spacing / 8) * 8, 64, max_rows))
    rows = int(round(rows / 8) * 8)
    centre_along = float((along.max() + along.min()) / 2 + rng.uniform(-0.12, 0.12) * fov_rows)
    # the posterior body wall sits at ~45-60% of the width from the anterior (left) edge
    left_across = float(np.median(across)) - spacing * cols * rng.uniform(0.45, 0.6)
    top_along = centre_along - spacing * rows / 2
    origin = left_across * r_dir + top_along * c_dir    # (y, z) of pixel (0, 0)
    thickness = float(rng.choice([2.5, 3.0, 3.0, 3.5, 4.0, 4.0, 4.5]))
    gap = float(rng.choice([0.0, 0.3, 0.4, 0.5, 0.8, 1.0]))
    n = int(rng.choice([11, 13, 15, 15, 17, 19]))
    x_off = float(rng.uniform(-4.0, 4.0))
    xs = x_off + (np.arange(n) - (n - 1) / 2) * (thickness + gap)
    plan = StackPlan("sagittal", rows, cols, thickness, gap)
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    yy = origin[0] + spacing * (c * r_dir[0] + r * c_dir[0])
    zz = origin[1] + spacing * (c * r_dir[1] + r * c_dir[1])
    s_img, t_img = spine.project(yy, zz)
    orientation = (0.0, float(r_dir[0]), float(r_dir[1]), 0.0, float(c_dir[0]), float(c_dir[1]))
    for x in xs:
        plan.slices.append(SliceGeometry(position=(float(x), float(origin[0]), float(origin[1])),
                                         orientation=orientation, spacing=(spacing, spacing), location=float(x)))
        plan.coords.append((float(x), s_img, t_img))
    info = {"coverage_mode": mode, "rotation_deg": round(float(np.rad2deg(theta)), 2),
            "fov_mm": [round(rows * spacing, 1), round(cols * spacing, 1)]}
    return _ordered(plan), info


def plan_localizer(spine: Spine, regions: tuple[str, ...], rng: np.random.Generator) -> StackPlan:
    """The sagittal part of a localizer (scout / survey): planned on the ordered region, not on the
    diagnostic stack, with the large field of view real localizers have (340-480 mm high, 1.1-2.5 mm
    pixels, 1-5 slices of 6-10 mm), so a cropped or partial diagnostic stack can be counted from it."""
    tops = [INDEX[REGION_SPAN[r][0]] for r in regions]
    bots = [INDEX[REGION_SPAN[r][1]] for r in regions]
    y, z, _ = spine.point(np.linspace(spine.top[min(tops)], spine.bottom[max(bots)], 60))
    fov = float(rng.uniform(340.0, 480.0))
    rows = int(rng.choice([192, 256, 256, 320]))
    spacing = fov / rows
    cols = int(round(rows * rng.uniform(0.75, 1.0) / 8) * 8)
    zc = float((z.max() + z.min()) / 2 + rng.uniform(-0.1, 0.1) * fov)
    y_left = float(np.median(y)) - spacing * cols * rng.uniform(0.45, 0.6)
    z_top = zc + spacing * rows / 2
    thickness = float(rng.choice([6.0, 7.0, 8.0, 10.0]))
    gap = float(rng.choice([0.0, 1.0, 2.0, 5.0]))
    n = int(rng.choice([1, 3, 3, 5]))
    xs = float(rng.uniform(-3.0, 3.0)) + (np.arange(n) - (n - 1) / 2) * (thickness + gap)
    plan = StackPlan("sagittal", rows, cols, thickness, gap)
    r, c = np.arange(rows)[:, None], np.arange(cols)[None, :]
    yy = y_left + c * spacing + 0 * r
    zz = z_top - r * spacing + 0 * c
    s_img, t_img = spine.project(yy, zz)
    for x in xs:
        plan.slices.append(SliceGeometry(position=(float(x), y_left, z_top), orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                                         spacing=(spacing, spacing), location=float(x)))
        plan.coords.append((float(x), s_img, t_img))
    return _ordered(plan)


def pixel_of(plan: StackPlan, y: float, z: float) -> tuple[float, float]:
    """(row, column) of patient point (y, z) in a sagittal plan's in-plane grid (any slice)."""
    g = plan.slices[0]
    r_dir, c_dir = np.array(g.orientation[1:3]), np.array(g.orientation[4:6])
    d = np.array([y - g.position[1], z - g.position[2]])
    return float(d @ c_dir / g.spacing[0]), float(d @ r_dir / g.spacing[1])


def axial_levels(spine: Spine, regions: tuple[str, ...], max_discs: int, prefer: list[str]) -> list[str]:
    """Disc levels that get axial slices: the findings' discs first, then evenly spread."""
    from spinefm.conditions import DISC_LEVELS

    avail: list[str] = []
    for r in regions:
        a, b = REGION_DISCS[r]
        ia, ib = INDEX[a], INDEX[b]
        for lvl in DISC_LEVELS:
            up = lvl.split("-")[0]
            if up in INDEX and ia <= INDEX[up] < ib and lvl not in avail:
                avail.append(lvl)
    if "lumbar" in regions and len(regions) == 1:
        ordered = avail[-max_discs:]  # L1-L2 ... L5-S1
    else:
        chosen = [lvl for lvl in prefer if lvl in avail][:max_discs]
        rest = [lvl for lvl in avail if lvl not in chosen]
        k = max_discs - len(chosen)
        if k > 0 and rest:
            idx = np.linspace(0, len(rest) - 1, min(k, len(rest))).round().astype(int)
            chosen += [rest[i] for i in sorted(set(idx.tolist()))]
        ordered = chosen
    return sorted(ordered, key=lambda lvl: INDEX[lvl.split("-")[0]])


def plan_axial(spine: Spine, levels: list[str], rows: int, cols: int, per_disc: int,
               rng: np.random.Generator) -> StackPlan:
    small = levels and levels[0].startswith("C")  # the neck is narrower than the trunk
    fov = float(rng.uniform(140, 170) if small else rng.uniform(160, 200)) * spine.scale
    spacing = fov / rows
    thickness = float(rng.choice([3.0, 4.0]))
    plan = StackPlan("axial", rows, cols, thickness, 0.0)
    c = np.arange(cols)
    xs = (c - (cols - 1) / 2) * spacing
    r = np.arange(rows)
    for lvl in levels:
        i = INDEX[lvl.split("-")[0]]
        sd = spine.disc_center(i)
        offsets = (np.arange(per_disc) - (per_disc - 1) / 2) * thickness
        for off in offsets:
            y0, z0, phi = spine.point(sd + off)
            phi_a = float(np.clip(phi, -MAX_AXIAL_TILT, MAX_AXIAL_TILT))
            ny, nz = np.cos(phi_a), np.sin(phi_a)  # in-plane posterior direction
            # centre the image a bit behind the disc so canal and facets sit mid-image
            cy, cz = y0 + ny * 10.0 * spine.scale, z0 + nz * 10.0 * spine.scale
            u = (r - (rows - 1) / 2) * spacing
            py, pz = cy + u * ny, cz + u * nz
            s_row, t_row = spine.project(py, pz)
            pos = (float(xs[0]), float(py[0]), float(pz[0]))
            plan.slices.append(SliceGeometry(
                position=pos, orientation=(1.0, 0.0, 0.0, 0.0, float(ny), float(nz)),
                spacing=(spacing, spacing), location=float(pz[rows // 2]), level=lvl))
            plan.coords.append((xs[None, :], s_row[:, None], t_row[:, None]))
            plan.levels.append(lvl)
    return _ordered(plan)


def _position_along_normal(g: SliceGeometry) -> float:
    r, c = g.orientation[:3], g.orientation[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    return sum(p * k for p, k in zip(g.position, n))


def _ordered(plan: StackPlan) -> StackPlan:
    """Order slices by position along their normal, as DICOM readers (spinefm.study) sort them,
    so slice_index in the truth equals the index after any reader's sort."""
    order = sorted(range(len(plan.slices)), key=lambda i: _position_along_normal(plan.slices[i]))
    plan.slices = [plan.slices[i] for i in order]
    plan.coords = [plan.coords[i] for i in order]
    if plan.levels:
        plan.levels = [plan.levels[i] for i in order]
    return plan


def label_stack(spine: Spine, plan: StackPlan) -> np.ndarray:
    """Tissue labels for every slice of a plan: uint8 [n, rows, cols]."""
    out = np.empty((len(plan.coords), plan.rows, plan.cols), dtype=np.uint8)
    if plan.plane == "sagittal" and plan.coords:
        _, s_img, t_img = plan.coords[0]
        geo = spine.geometry(s_img, t_img)  # same (s, t) grid for every sagittal slice
        for i, (x, _s, _t) in enumerate(plan.coords):
            out[i] = spine.labels(x, geo)
    else:
        for i, (x, s, t) in enumerate(plan.coords):
            out[i] = spine.labels(x, spine.geometry(s, t))
    return out
