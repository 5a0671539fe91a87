"""Tissue classes and their MR properties: the one table every sequence is rendered from.

The anatomy and the pathologies only draw integer tissue labels; how a tissue
looks on T1, T2, STIR, Dixon or post-contrast T1 follows from these physical
parameters through the signal equations in :mod:`spine_phantom.physics`. That is
what makes some findings visible on one sequence and not another (fat bright on
T1 and dark on STIR, edema dark on T1 and bright on STIR, ...).

Values are rough 1.5 T literature figures. T2 is the *effective* T2 seen by a
fast spin echo readout (fat stays bright on FSE T2 through J-coupling, so fat's
T2 here is longer than its true T2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tissue:
    label: int
    name: str
    pd: float         # proton density, relative
    t1: float         # ms
    t2: float         # ms, effective for FSE
    fat: float = 0.0  # fat fraction (Dixon water image = (1 - fat) * signal; fat-sat suppresses it)
    texture: float = 0.0  # relative amplitude of the tissue's intensity texture
    enhance: float = 0.0  # gadolinium uptake (mmol/l-ish); shortens T1 on post-contrast T1


_TABLE = (
    Tissue(0, "air", 0.0, 1000, 1, texture=0.0),
    Tissue(1, "fat", 1.0, 260, 115, fat=0.95, texture=0.05),
    Tissue(2, "muscle", 0.78, 870, 45, texture=0.10),
    Tissue(3, "marrow", 0.92, 380, 95, fat=0.6, texture=0.2),
    Tissue(4, "cortex", 0.06, 1000, 6),
    Tissue(5, "annulus", 0.6, 900, 45, texture=0.05),
    Tissue(6, "nucleus", 0.95, 1150, 170, texture=0.05),
    Tissue(7, "csf", 1.0, 3500, 1800),
    Tissue(8, "cord", 0.72, 760, 85, texture=0.03),
    Tissue(9, "ligament", 0.22, 950, 12),
    Tissue(10, "nerve", 0.75, 850, 80),
    Tissue(11, "viscera", 0.85, 700, 65, texture=0.25, enhance=0.12),
    Tissue(12, "vessel", 0.04, 1400, 50),   # flowing blood: flow void on spin echo
    Tissue(13, "facet_fluid", 0.9, 2500, 600),
    # --- pathological tissues ---
    Tissue(20, "edema", 0.96, 1200, 130, fat=0.2, texture=0.06, enhance=0.5),
    Tissue(21, "edema_faint", 0.94, 700, 110, fat=0.4, texture=0.08, enhance=0.25),
    Tissue(22, "hemangioma", 0.95, 420, 190, fat=0.55, texture=0.2, enhance=0.6),
    Tissue(23, "fluid", 1.0, 3200, 1500),                 # cyst, synovial cyst, pars gap fluid
    Tissue(24, "tumor", 0.85, 950, 120, texture=0.08, enhance=1.2),
    Tissue(25, "cord_lesion", 0.9, 1300, 200, texture=0.05, enhance=0.3),
    Tissue(26, "nucleus_dry", 0.65, 850, 55, texture=0.05),  # desiccated (degenerated) nucleus
    Tissue(27, "inflam", 0.98, 1700, 260, texture=0.08, enhance=1.0),  # discitis fluid/phlegmon
    Tissue(28, "herniated", 0.8, 1000, 85, texture=0.05, enhance=0.1),  # extruded disc material
    Tissue(29, "fracture_edema", 0.96, 1300, 140, fat=0.15, texture=0.05, enhance=0.4),
    Tissue(30, "sclerosis", 0.15, 900, 20),                   # osteophyte / hypertrophic bone
    Tissue(31, "fluid_faint", 0.95, 1500, 250),
    Tissue(32, "brain", 0.8, 700, 80, texture=0.04),
    Tissue(33, "lung", 0.08, 1200, 20, texture=0.3),
)

TISSUES = {t.name: t for t in _TABLE}
N_LABELS = max(t.label for t in _TABLE) + 1

# Integer constants for the drawing code (T.FAT, T.MARROW, ...).
class T:  # noqa: D101 - namespace of label ids
    pass


for _t in _TABLE:
    setattr(T, _t.name.upper(), _t.label)

NAMES = {t.label: t.name for t in _TABLE}


def property_arrays() -> dict[str, np.ndarray]:
    """Per-label lookup arrays (index = tissue label) for vectorised rendering."""
    out = {k: np.zeros(N_LABELS, dtype=np.float64) for k in ("pd", "t1", "t2", "fat", "texture", "enhance")}
    out["t1"][:] = 1000.0
    out["t2"][:] = 1.0
    for t in _TABLE:
        for k in out:
            out[k][t.label] = getattr(t, k)
    return out


# Tissue sets that pathologies may overwrite (they grow into these, never into others).
BONE = (T.MARROW, T.CORTEX)
CANAL_CONTENT = (T.CSF, T.FAT, T.NERVE)
