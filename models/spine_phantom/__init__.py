"""Synthetic spine MRI phantoms with ground truth (issue 3).

Honest by construction: every file is marked SYNTHETIC. A parametric spine is
drawn as tissue label maps, each sequence is rendered from per-tissue PD/T1/T2
with real signal equations, the 17 conditions of ``spinefm.conditions`` are
drawn with levels and severities, and truth (labels, key slices, boxes, a
radiologist-style report) is measured from what was drawn.

    >>> from spine_phantom import generate_study, write_study
    >>> study = generate_study(seed=1, index=0)
    >>> study.truth["labels"]["herniation"] in (-1, 0, 1)
    True
"""

__version__ = "0.1.0"

from .config import DEFAULT_PREVALENCE, PhantomConfig  # noqa: E402
from .ids import EVAL_SEED, EVAL_STUDIES, split_of  # noqa: E402
from .study import PhantomSeries, PhantomStudy, generate_study, write_study  # noqa: E402

__all__ = ["PhantomConfig", "PhantomStudy", "PhantomSeries", "generate_study", "write_study", "split_of",
           "EVAL_SEED", "EVAL_STUDIES", "DEFAULT_PREVALENCE", "__version__"]
