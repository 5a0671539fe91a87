"""The registry of spine conditions SpineAgent predicts: one place in code.

Keys follow the authors' release (see shared/docs/spineagent-model.md). A site
may add or rename conditions by registering a new :class:`Condition`; every
agent, the phantom generator, the labelers and the backend read this table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum


class LabelValue(IntEnum):
    """A condition's ternary label as data holds it (datasets, ground truth, labelers, verified labels).

    Integers, so labels stored in the database, JSON and exports read 1 / 0 / -1 as they always have.
    Not the model's call on a study (spinefm.results.Call), which is a different thing with similar names.
    """

    PRESENT = 1
    ABSENT = 0
    UNCERTAIN = -1

    @classmethod
    def aggregate(cls, values: Iterable[int]) -> LabelValue:
        """One label of several mentions' values: present if any is, else uncertain if any is, else absent."""
        found = set(values)
        return cls.PRESENT if cls.PRESENT in found else cls.UNCERTAIN if cls.UNCERTAIN in found else cls.ABSENT


LABEL_NAMES = {LabelValue.PRESENT: "present", LabelValue.ABSENT: "absent", LabelValue.UNCERTAIN: "uncertain"}

# Groups as in the paper.
DEGENERATIVE = "degenerative/structural"
ALIGNMENT = "alignment"
LESION = "lesion or mass"
TRAUMA = "traumatic or compression-related"
NARROWING = "canal/foraminal narrowing"

# Where a finding sits: at a disc level ("L4-L5") or a vertebral level ("L3").
DISC_LEVEL = "disc"
VERTEBRA_LEVEL = "vertebra"
CORD_LEVEL = "cord"


@dataclass(frozen=True)
class Condition:
    key: str
    display_name: str
    group: str
    # Sequence types (see spinefm.sequences) on which the finding is best seen.
    sequences: tuple[str, ...]
    # Whether a finding is reported at a disc level, a vertebra, or along the cord.
    level_kind: str
    # Spinal regions where it is typically reported.
    regions: tuple[str, ...] = ("cervical", "thoracic", "lumbar")
    synonyms: tuple[str, ...] = field(default_factory=tuple)


CONDITIONS: tuple[Condition, ...] = (
    Condition("canal", "Spinal canal stenosis", NARROWING, ("T2", "T1"), DISC_LEVEL,
              synonyms=("central canal stenosis", "canal stenosis", "spinal stenosis", "central stenosis")),
    Condition("neuroforaminal", "Neural foraminal narrowing", NARROWING, ("T1", "T2"), DISC_LEVEL,
              synonyms=("foraminal stenosis", "foraminal narrowing", "neuroforaminal stenosis")),
    Condition("subarticular", "Subarticular recess stenosis", NARROWING, ("T2",), DISC_LEVEL,
              synonyms=("lateral recess stenosis", "subarticular stenosis", "subarticular recess narrowing")),
    Condition("herniation", "Disc herniation", DEGENERATIVE, ("T2", "T1"), DISC_LEVEL,
              synonyms=("disc protrusion", "disc extrusion", "herniated disc", "disc herniation")),
    Condition("disc_height", "Disc height loss", DEGENERATIVE, ("T1", "T2"), DISC_LEVEL,
              synonyms=("disc space narrowing", "loss of disc height", "disc height loss")),
    Condition("spondylolisthesis", "Spondylolisthesis", ALIGNMENT, ("T1", "T2"), DISC_LEVEL,
              synonyms=("anterolisthesis", "retrolisthesis", "listhesis")),
    Condition("par", "Pars interarticularis defect", ALIGNMENT, ("T1", "STIR"), VERTEBRA_LEVEL,
              regions=("lumbar",), synonyms=("pars defect", "spondylolysis", "pars interarticularis defect")),
    Condition("compression", "Cord or thecal sac compression", TRAUMA, ("T2",), DISC_LEVEL,
              synonyms=("cord compression", "thecal sac compression", "mass effect on the cord")),
    Condition("fracture", "Vertebral fracture", TRAUMA, ("T1", "STIR"), VERTEBRA_LEVEL,
              synonyms=("compression fracture", "vertebral fracture", "burst fracture")),
    Condition("edema", "Bone marrow edema", TRAUMA, ("STIR", "T2"), VERTEBRA_LEVEL,
              synonyms=("marrow edema", "bone marrow edema", "marrow oedema")),
    Condition("inflammation", "Inflammatory change", DEGENERATIVE, ("STIR", "T2"), DISC_LEVEL,
              synonyms=("discitis", "facet synovitis", "inflammatory change", "osteomyelitis")),
    Condition("hemangioma", "Vertebral hemangioma", LESION, ("T1", "T2"), VERTEBRA_LEVEL,
              synonyms=("hemangioma", "haemangioma")),
    Condition("lipomatosis", "Epidural lipomatosis", LESION, ("T1",), VERTEBRA_LEVEL,
              regions=("thoracic", "lumbar"), synonyms=("epidural lipomatosis", "epidural fat")),
    Condition("synovial", "Facet synovial cyst", LESION, ("T2", "STIR"), DISC_LEVEL,
              regions=("cervical", "lumbar"), synonyms=("synovial cyst", "facet cyst")),
    Condition("cyst", "Other cyst", LESION, ("T2", "STIR"), VERTEBRA_LEVEL,
              synonyms=("tarlov cyst", "perineural cyst", "arachnoid cyst")),
    Condition("lesion_intramedullary", "Intradural intramedullary lesion", LESION, ("T2", "STIR"), CORD_LEVEL,
              regions=("cervical", "thoracic"),
              synonyms=("intramedullary lesion", "cord lesion", "intramedullary signal abnormality", "syrinx")),
    Condition("lesion_extramedullary", "Intradural extramedullary lesion", LESION, ("T2", "T1"), CORD_LEVEL,
              synonyms=("intradural extramedullary lesion", "nerve sheath tumor", "meningioma", "schwannoma")),
)

CONDITION_KEYS: tuple[str, ...] = tuple(c.key for c in CONDITIONS)
_BY_KEY = {c.key: c for c in CONDITIONS}


def get_condition(key: str) -> Condition:
    """Look a condition up by key; a clear KeyError names the known keys."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown condition {key!r}; known: {', '.join(CONDITION_KEYS)}") from None


# Levels in cranio-caudal order, vertebrae and the discs between them.
VERTEBRAE: tuple[str, ...] = (
    tuple(f"C{i}" for i in range(1, 8))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
    + ("S1",)
)
DISC_LEVELS: tuple[str, ...] = tuple(f"{a}-{b}" for a, b in zip(VERTEBRAE[1:-1], VERTEBRAE[2:]))


def region_of_level(level: str) -> str:
    """'L4-L5' -> 'lumbar', 'C7-T1' -> 'cervical' (by the upper vertebra)."""
    head = level.split("-")[0]
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[head[0]]
