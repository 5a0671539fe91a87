"""Sagittal MR phantoms of body parts that are not the spine: a knee and a brain.

Why: a study whose DICOM tags do not name the body part must be recognised as a spine
MR from its images before a spine draft is written, so the image check needs negatives
to learn from and to be tested on. These are drawn like the spine phantoms (tissue labels
rendered with the same signal equations, noise and bias, DICOM from the same writer) but
with simple geometry: the knee has femur, tibia, patella, cartilage, menisci, cruciate and
patellar tendon, fat pad, joint fluid, muscles and vessels; the brain has scalp, skull with
diploe, cortex, ventricles, corpus callosum, brainstem and cord, cerebellum, airway, tongue,
and at the lower edge the C2 body with the dens and the C2-C3 disc, as a real sagittal
brain shows (one or two disc-like structures must not make it a spine).

    generate_nonspine(seed, index, kind="knee")  ->  PhantomStudy (regions == ("knee",))
"""

from __future__ import annotations

import numpy as np

from .ids import patient_id, patient_name, split_of, study_datetime, uid
from .physics import render_stack, smooth_field, tissue_signals
from .protocols import VENDOR_STYLES, protocol_for
from .scan import SliceGeometry
from .study import PhantomSeries, PhantomStudy, _bias, _texture
from .tissues import T

KINDS = ("knee", "brain")
BODY_PARTS = {"knee": "KNEE", "brain": "HEAD"}
DESCRIPTIONS = {"knee": {"T1": "t1_tse_sag", "T2": "t2_tse_fs_sag"}, "brain": {"T1": "t1_se_sag", "T2": "t2_tse_sag"}}


def _ellipse(z, y, cz, cy, rz, ry):
    return ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 <= 1


def _band(z, y, z0, y0, z1, y1, half):
    """Points within ``half`` mm of the segment (z0, y0)-(z1, y1)."""
    dz, dy = z1 - z0, y1 - y0
    t = np.clip(((z - z0) * dz + (y - y0) * dy) / (dz * dz + dy * dy), 0, 1)
    return (z - z0 - t * dz) ** 2 + (y - y0 - t * dy) ** 2 <= half * half


def knee_labels(z: np.ndarray, y: np.ndarray, x: float, s: float, rng_shape: np.ndarray) -> np.ndarray:
    """Tissue labels of a sagittal knee slice: z mm down from the joint line, y mm posterior, x lateral."""
    lab = np.full(z.shape, T.AIR, dtype=np.uint8)
    k = 1.0 - 0.35 * (x / (45 * s)) ** 2  # bones narrow away from the midline
    depth = 58 * s * (1 + 0.05 * rng_shape[0])
    body = np.abs(y) <= depth * np.sqrt(np.clip(1 - (z / (400 * s)) ** 2, 0, 1))
    lab[body] = T.FAT
    inner = np.abs(y) <= depth - (6 + 4 * rng_shape[1]) * s
    lab[inner & (y > 12 * s)] = T.MUSCLE                                     # hamstrings, gastrocnemius
    lab[inner & (y < -18 * s) & (z < -45 * s)] = T.MUSCLE                   # quadriceps
    lab[inner & _band(z, y, -75 * s, 34 * s, 60 * s, 30 * s, 3.5 * s)] = T.VESSEL  # popliteal vessels
    lab[inner & _ellipse(z, y, -48 * s, -24 * s, 20 * s, 4 * s)] = T.FLUID   # suprapatellar recess
    lab[inner & (z > -8 * s) & (z < 25 * s) & (y > -36 * s) & (y < -14 * s)] = T.FAT  # Hoffa's fat pad
    fem = (_ellipse(z, y, -24 * s, 6 * s, 25 * s * k, 27 * s * k) | ((z < -24 * s) & (np.abs(y - 4 * s) < 14 * s * k)))
    tib = ((z > 2 * s) & (z < 38 * s) & (np.abs(y - 4 * s) < 32 * s * k)) | ((z >= 38 * s) & (np.abs(y - 8 * s) < 15 * s * k))
    tib &= ~_ellipse(z, y, 2 * s, 4 * s, 3 * s, 32 * s * k) | (z > 4 * s)
    pat = _ellipse(z, y, -30 * s, -40 * s, 21 * s, 9 * s) & (np.abs(x) < 25 * s)
    for bone in (fem, tib, pat):
        lab[bone] = T.CORTEX
        shrink = bone.copy()
        for axis in (0, 1):
            shrink &= np.roll(bone, 3, axis) & np.roll(bone, -3, axis)
        lab[shrink] = T.MARROW
    cart = (_ellipse(z, y, -24 * s, 6 * s, 27.5 * s * k, 29.5 * s * k) & ~fem & (z > -40 * s))
    cart |= (z >= 2 * s - 2.5) & (z < 2 * s) & (np.abs(y - 4 * s) < 30 * s * k)
    lab[cart & (lab != T.AIR)] = T.ANNULUS                                   # articular cartilage
    lab[(z > -1 * s) & (z < 1 * s) & (np.abs(y - 4 * s) < 28 * s * k) & ~fem & ~tib] = T.FLUID  # joint fluid
    for cy in (-22 * s, 28 * s):                                             # meniscal horns
        lab[_ellipse(z, y, 0.5 * s, cy, 3 * s, 7 * s) & (np.abs(x) > 8 * s)] = T.LIGAMENT
    lab[_band(z, y, -32 * s, -41 * s, -62 * s, -30 * s, 3 * s)] = T.LIGAMENT  # quadriceps tendon
    lab[_band(z, y, -9 * s, -43 * s, 33 * s, -30 * s, 2.5 * s)] = T.LIGAMENT  # patellar tendon
    if abs(x) < 10 * s:
        lab[_band(z, y, -8 * s, 18 * s, 22 * s, 27 * s, 3 * s) & ~tib] = T.LIGAMENT   # posterior cruciate
        lab[_band(z, y, -18 * s, 10 * s, 4 * s, -6 * s, 2.5 * s) & ~fem & ~tib] = T.LIGAMENT  # anterior cruciate
    return lab


def brain_labels(z: np.ndarray, y: np.ndarray, x: float, s: float, rng_shape: np.ndarray) -> np.ndarray:
    """Tissue labels of a sagittal head slice: z mm down from the vertex region's centre, y mm posterior."""
    lab = np.full(z.shape, T.AIR, dtype=np.uint8)
    w = np.sqrt(max(0.0, 1 - (x / (70 * s)) ** 2))
    rz, ry = 100 * s * w, 92 * s * w * (1 + 0.05 * rng_shape[0])
    head = _ellipse(z, y, -10 * s, 0, rz, ry)
    neck = (z > 40 * s) & (y > -60 * s) & (y < 70 * s)
    lab[head | neck] = T.FAT
    lab[neck & (y > 10 * s)] = T.MUSCLE
    lab[neck & (y < -20 * s) & (z > 80 * s)] = T.MUSCLE                     # tongue, floor of mouth
    lab[_ellipse(z, y, 55 * s, -52 * s, 18 * s, 12 * s)] = T.AIR               # nasopharynx
    lab[_band(z, y, 60 * s, -30 * s, 140 * s, -25 * s, 6 * s)] = T.AIR          # airway
    skull = _ellipse(z, y, -10 * s, 0, rz - 5 * s, ry - 5 * s) & (z < 45 * s)
    lab[skull] = T.CORTEX
    lab[_ellipse(z, y, -10 * s, 0, rz - 7 * s, ry - 7 * s) & (z < 45 * s)] = T.MARROW   # diploe
    lab[_ellipse(z, y, -10 * s, 0, rz - 10 * s, ry - 10 * s) & (z < 45 * s)] = T.CORTEX
    brain = _ellipse(z, y, -10 * s, 0, rz - 12 * s, ry - 12 * s) & (z < 40 * s)
    lab[brain] = T.CSF
    lab[_ellipse(z, y, -10 * s, 0, rz - 14 * s, ry - 14 * s) & (z < 38 * s)] = T.BRAIN
    lab[_ellipse(z, y, 32 * s, 42 * s, 24 * s, 30 * s * w)] = T.BRAIN           # cerebellum
    if abs(x) < 18 * s:
        lab[_ellipse(z, y, -22 * s, 2 * s, 12 * s, 30 * s)] = T.CSF             # lateral ventricle
        lab[_ellipse(z, y, -22 * s, 2 * s, 6 * s, 22 * s)] = T.BRAIN
        lab[_band(z, y, -36 * s, -28 * s, -36 * s, 28 * s, 3 * s)] = T.CORD      # corpus callosum
    if abs(x) < 9 * s:
        lab[_band(z, y, 0, 8 * s, 70 * s, 18 * s, 8 * s)] = T.CORD               # brainstem
        lab[_band(z, y, 70 * s, 18 * s, 160 * s, 22 * s, 5 * s)] = T.CORD        # cervical cord
        lab[_ellipse(z, y, 30 * s, 26 * s, 5 * s, 4 * s)] = T.CSF                # fourth ventricle
        lab[_band(z, y, 70 * s, 10 * s, 160 * s, 14 * s, 1.5 * s)] = T.CSF
        lab[_band(z, y, 70 * s, 26 * s, 160 * s, 30 * s, 1.5 * s)] = T.CSF
    if abs(x) < 14 * s:                                                           # C1 arch, dens, C2, C2-C3 disc
        lab[_ellipse(z, y, 78 * s, -12 * s, 6 * s, 5 * s)] = T.MARROW
        lab[_ellipse(z, y, 80 * s, 40 * s, 5 * s, 6 * s)] = T.MARROW
        lab[_band(z, y, 76 * s, -2 * s, 110 * s, 0, 5 * s)] = T.MARROW
        lab[(z > 110 * s) & (z < 135 * s) & (np.abs(y + 4 * s) < 8 * s)] = T.MARROW
        lab[(z >= 135 * s) & (z < 140 * s) & (np.abs(y + 4 * s) < 8 * s)] = T.NUCLEUS
        lab[(z >= 140 * s) & (np.abs(y + 4 * s) < 8 * s)] = T.MARROW
    return lab


def generate_nonspine(seed: int, index: int, kind: str = "knee", image_size: tuple[int, int] | None = None,
                      body_part: str | None = None) -> PhantomStudy:
    """A sagittal T1 + T2 study of a knee or a brain (SYNTHETIC), deterministic in (seed, index, kind).

    ``body_part`` overrides BodyPartExamined ("" leaves it blank, as many exports do).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 20240917, 3, KINDS.index(kind)]))
    vendor = str(rng.choice(list(VENDOR_STYLES)))
    style = VENDOR_STYLES[vendor]
    s = float(rng.uniform(0.9, 1.1))
    shape = rng.uniform(-1, 1, 4)
    if kind == "knee":
        fov, size, centre = rng.uniform(140, 180), int(rng.choice([256, 320])), (rng.uniform(-15, 15), rng.uniform(-5, 5))
        draw = knee_labels
    else:
        fov, size, centre = rng.uniform(220, 260), 256, (rng.uniform(0, 25), rng.uniform(-10, 10))
        draw = brain_labels
    rows = cols = int(size) if image_size is None else image_size[0]
    if image_size is not None:
        cols = image_size[1]
    spacing = float(fov / rows)
    n = int(rng.choice([15, 17, 19, 21]))
    thickness = float(rng.choice([3.0, 3.5, 4.0]))
    xs = (np.arange(n) - (n - 1) / 2) * (thickness + 0.4) + rng.uniform(-3, 3)
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    z = centre[0] + (r - rows / 2) * spacing + 0 * c
    y = centre[1] + (c - cols / 2) * spacing + 0 * r
    labels = np.stack([draw(z, y, float(x), s, shape) for x in xs])
    date, time = study_datetime(seed, 100000 + index)
    age = int(rng.integers(20, 85))
    study = PhantomStudy(
        seed=seed, index=index, regions=(kind,), vendor=style.manufacturer, model_name=style.models[0],
        field_strength=1.5, patient_id=f"{patient_id(seed, index)}-{kind.upper()}", patient_name=patient_name(seed, index),
        birth_date=f"{int(date[:4]) - age}{date[4:]}", sex="F" if rng.random() < 0.5 else "M", age=age,
        study_instance_uid=uid(seed, index, "nonspine", kind, "study"), frame_of_reference_uid=uid(seed, index, kind, "for"),
        study_date=date, study_time=time, accession=f"NS{seed % 1000:03d}{index:05d}", study_id=str(index),
        split=split_of(seed, index))
    y0, z0 = float(y[0, 0]), -float(z[0, 0])  # patient z points up; rows run down
    geometry = [SliceGeometry(position=(float(x), y0, z0), orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                              spacing=(spacing, spacing), location=float(x)) for x in xs]
    texture = _texture(rng, n, rows, cols)
    bias = _bias(rng, rows, cols, 1) * (1 + 0.1 * smooth_field(rng, (rows, cols), 2)).astype(np.float32)
    for number, seq in enumerate(("T1", "T2"), start=2):
        prot = protocol_for(seq, "sagittal", rng)
        pixels = render_stack(labels, prot, rng, texture=texture, bias=bias, snr=float(rng.uniform(15, 35)),
                              gain=style.gain)
        lo, hi = np.percentile(pixels[:, ::4, ::4], [1.0, 99.7])
        study.series.append(PhantomSeries(
            series_instance_uid=uid(seed, index, "nonspine", kind, number), sequence=seq, plane="sagittal",
            description=DESCRIPTIONS[kind][seq], pixels=pixels,
            sop_instance_uids=[uid(seed, index, "nonspine", kind, number, i) for i in range(n)], number=number,
            protocol=prot, geometry=geometry, thickness=thickness, gap=0.4, pixel_spacing=(spacing, spacing),
            window=(float((lo + hi) / 2), float(max(hi - lo, 10) * 1.1)), lut=tissue_signals(prot).astype(np.float32),
            study=study))
    study.truth = {"synthetic": True, "kind": kind, "spine": False, "regions": [], "vendor": study.vendor,
                   "body_part": BODY_PARTS[kind] if body_part is None else body_part,
                   "region_tags": body_part != "",
                   "study_instance_uid": study.study_instance_uid,
                   "series": [{"series_instance_uid": x.series_instance_uid, "sequence": x.sequence,
                               "description": x.description} for x in study.series]}
    return study
