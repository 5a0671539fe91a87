"""Generator settings: one dataclass, with defaults sized for a 200-study training set."""

from __future__ import annotations

from dataclasses import dataclass, field

from spinefm.conditions import CONDITION_KEYS

# Default prevalence per condition, among studies whose regions allow it (see the
# registry's ``regions``). 0.15-0.25 gives every condition enough positives in 200 studies.
DEFAULT_PREVALENCE: dict[str, float] = {
    "canal": 0.22, "neuroforaminal": 0.22, "subarticular": 0.18, "herniation": 0.25,
    "disc_height": 0.22, "spondylolisthesis": 0.18, "par": 0.2, "compression": 0.18,
    "fracture": 0.18, "edema": 0.2, "inflammation": 0.15, "hemangioma": 0.2,
    "lipomatosis": 0.18, "synovial": 0.2, "cyst": 0.18,
    "lesion_intramedullary": 0.25, "lesion_extramedullary": 0.18,
}
assert set(DEFAULT_PREVALENCE) == set(CONDITION_KEYS)

# Which region sets a study covers, with their probabilities.
DEFAULT_REGION_MIX: tuple[tuple[tuple[str, ...], float], ...] = (
    (("lumbar",), 0.45),
    (("cervical",), 0.22),
    (("thoracic",), 0.15),
    (("thoracic", "lumbar"), 0.10),
    (("cervical", "thoracic"), 0.08),
)

ACQUISITIONS = ("fixed", "varied")

VENDORS: tuple[str, ...] = ("SIEMENS", "GE MEDICAL SYSTEMS", "Philips", "CANON_MEC")


@dataclass
class PhantomConfig:
    """What to generate. Every field has a default; pass a subset to override.

    ``regions`` fixes the regions of every study (e.g. ("lumbar",)); None draws
    them from ``region_mix``. ``prevalence`` maps condition key -> probability;
    missing keys use :data:`DEFAULT_PREVALENCE`. ``uncertain_fraction`` is the
    share of drawn findings made subtle and hedged in the report (label -1).
    """

    regions: tuple[str, ...] | None = None
    region_mix: tuple[tuple[tuple[str, ...], float], ...] = DEFAULT_REGION_MIX
    prevalence: dict[str, float] = field(default_factory=dict)
    uncertain_fraction: float = 0.15
    image_size: tuple[int, int] = (256, 256)
    include_axial: bool = True
    include_other_sequence: bool = True
    other_sequence_probability: float = 0.35
    axial_slices_per_disc: int = 3
    max_axial_discs: int = 5
    vendors: tuple[str, ...] = VENDORS
    # Probabilities of mild / moderate / severe for findings that are not uncertain.
    severity_weights: tuple[float, float, float] = (0.45, 0.35, 0.2)
    # Draw no findings at all (the "normal" twin used for ground-truth checks).
    normal: bool = False
    # How the sagittal stack is acquired: "fixed" plans the field of view around the regions
    # (generator 0.1; the default, so existing seeds keep their bytes); "varied" draws what real
    # protocols vary: coverage (planned / partial / 6-9 cm crop), FOV size and offset, pixel
    # spacing 0.4-1.2 mm, matrix, slices, in-plane rotation, intensity scale and bias field,
    # and rare lumbosacral transitional vertebrae (docs/phantoms.md, "Varied acquisitions").
    acquisition: str = "fixed"
    variant_probability: float = 0.06  # "varied" only: share of spines with a transitional vertebra
    # "varied" only: share of studies that keep their sagittal localizer (series 1, large field of view,
    # planned on the ordered region), from which a cropped diagnostic stack can be counted
    localizer_probability: float = 0.0
    # False: BodyPartExamined blank and StudyDescription without the region, as many exports are
    region_tags: bool = True

    def __post_init__(self):
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, not {self.acquisition!r}")

    def prevalence_of(self, key: str) -> float:
        return float(self.prevalence.get(key, DEFAULT_PREVALENCE[key]))
