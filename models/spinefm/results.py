"""What ``analyze(study)`` returns: the one contract between models and backend.

Plain dataclasses, JSON-serialisable through ``to_dict``/``from_dict``, no torch.
Pixel boxes are ``[x0, y0, x1, y1]`` in image pixel coordinates
(column, row) of the referenced instance, x1/y1 exclusive.

Fields added later have defaults, so results stored before them load unchanged
(``from_dict``) and ``to_dict`` only gains keys. ``from_dict`` is the one reader of a stored
result: it also takes what older or hand-written dicts look like (a missing field reads as
empty, an unknown key is ignored, an item that names no condition is left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class Call(StrEnum):
    """The model's call on a condition at the bundle's operating points (spinefm.train.operating_points):
    asserted, hedged, not found, or not assessed (the condition failed held-out validation).

    Strings, so results stored as JSON keep their ``status`` values. Not a label (spinefm.conditions.LabelValue).
    """

    PRESENT = "present"
    POSSIBLE = "possible"
    ABSENT = "absent"
    NOT_ASSESSED = "not_assessed"


STATUSES = tuple(Call)


@dataclass
class ConditionPrediction:
    condition: str
    probability: float
    present: bool
    level: str | None = None
    status: str | None = None  # one of STATUSES; None in results written before operating points
    # the model localised the condition but could not name its level (level is None); the note says why
    level_uncertain: bool = False
    level_note: str = ""
    # whether the bundle's held-out operating point supports calling this condition absent (a normal
    # statement in the draft); None in results written before it was recorded (treated as no)
    rule_out: bool | None = None

    @property
    def call(self) -> str:
        """The model's call: its ``status``, or for results written before operating points its ``present`` flag."""
        return Call(self.status) if self.status else (Call.PRESENT if self.present else Call.ABSENT)


@dataclass
class KeySlice:
    condition: str
    series_instance_uid: str
    sop_instance_uid: str
    slice_index: int
    score: float


@dataclass
class Box:
    condition: str
    series_instance_uid: str
    sop_instance_uid: str
    box: list[float]
    score: float
    level: str | None = None
    level_uncertain: bool = False


@dataclass
class SimilarCase:
    case_id: str
    score: float
    report: str


@dataclass
class SeriesUsed:
    series_instance_uid: str
    sequence: str
    plane: str
    encoder: str  # "t1", "t2" or "synthesizer"
    n_slices: int
    description: str = ""  # SeriesDescription
    label: str = ""        # sequence as read (spinefm.sequences.SequenceInfo.label): "Dixon water", "post-contrast T1"


@dataclass
class AnalysisResult:
    model_name: str
    model_version: str
    synthetic_training: bool
    conditions: list[ConditionPrediction] = field(default_factory=list)
    key_slices: list[KeySlice] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    similar_cases: list[SimilarCase] = field(default_factory=list)
    similar_source: str = ""  # "bundle" (its training cases) or the site's bank ("site: 120 signed reports, ...")
    series: list[SeriesUsed] = field(default_factory=list)
    draft_text: str = ""
    draft_backend: str = ""   # who wrote draft_text: "llava/<version>", "template/1.0 (fallback from llava)", ...
    draft_fallback: str = ""  # why the configured drafter did not write it ("" when it did)
    embedding: list[float] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # region of the spine the study shows (spinefm.intake.decide_region): DICOM first, images as fallback
    region: str = ""                 # "cervical", "thoracic and lumbar", "whole", "spine" (not determined); "" before
    regions: list[str] = field(default_factory=list)
    region_source: str = ""          # "dicom" or "image"
    region_dicom: str = ""           # what the DICOM tags say ("lumbar", "spine", "unknown")
    region_image: str = ""           # what the images show ("" when no level could be named)
    region_disagreement: str = ""    # a sentence for the reader when DICOM and images disagree
    coverage: list[str] = field(default_factory=list)  # levels in the field of view, cranio-caudal
    levels_source: str = ""          # "locator" (discs counted on the images), "level_head", or "" (no levels)
    spine_check: dict[str, Any] = field(default_factory=dict)  # the image check (spinefm.vertebrae.SpineLabels)
    # series the bundle wanted (spinefm.intake.series_to_fetch) that the caller could not read, with the reason
    series_skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AnalysisResult":
        """A stored result; one written without ``synthetic_training`` is taken as synthetic-trained
        (nothing claims patient data that did not say so)."""
        data = {"synthetic_training": True, **data}
        values = _fields_of(cls, data)
        for key, kind in _ITEMS.items():
            values[key] = [kind(**_fields_of(kind, item)) for item in data.get(key) or []
                           if isinstance(item, Mapping) and _readable(key, item)]
        return cls(**values)


_ITEMS = {"conditions": ConditionPrediction, "key_slices": KeySlice, "boxes": Box, "similar_cases": SimilarCase,
          "series": SeriesUsed}
_EMPTY = {"str": "", "float": 0.0, "int": 0, "bool": False, "list[float]": list}


def _readable(key: str, item: Mapping[str, Any]) -> bool:
    """Whether a stored item is one: a prediction has a condition and a probability, a box its four corners."""
    if key == "conditions":
        return bool(item.get("condition")) and isinstance(item.get("probability"), (int, float))
    if key == "boxes":
        return bool(item.get("condition")) and len(item.get("box") or ()) == 4
    return True


def _fields_of(kind, item: Mapping[str, Any]) -> dict[str, Any]:
    """The dataclass's fields from ``item``: unknown keys dropped, a missing required field empty."""
    out = {}
    for f in fields(kind):
        if f.name in item:
            out[f.name] = item[f.name]
        elif f.default is MISSING and f.default_factory is MISSING:
            empty = _EMPTY[f.type]
            out[f.name] = empty() if callable(empty) else empty
    return out


class UnsupportedStudy(ValueError):
    """The study cannot be analysed (not MR, no spine sequence, ...). The message says why."""
