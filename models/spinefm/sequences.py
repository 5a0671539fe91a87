"""Sequence type and imaging plane from DICOM header fields: the one rule table.

Shared by the backend (indexing, job routing) and the model library
(preprocessing, encoder choice). Input is anything with ``.get(keyword)`` —
a pydicom Dataset or a plain dict of DICOM keywords, e.g. from DICOMweb JSON.

Rules are tried in order; the first match wins (documented in docs/sequences.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

T1, T2, STIR, DIXON, OTHER = "T1", "T2", "STIR", "DIXON", "OTHER"
SEQUENCE_TYPES = (T1, T2, STIR, DIXON, OTHER)

SAGITTAL, CORONAL, AXIAL, OBLIQUE = "sagittal", "coronal", "axial", "oblique"


def _text(header: Any, keyword: str) -> str:
    value = header.get(keyword) if hasattr(header, "get") else None
    if value is None:
        return ""
    if hasattr(value, "value"):  # pydicom DataElement
        value = value.value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).lower()
    return str(value).lower()


def _number(header: Any, keyword: str) -> float | None:
    raw = _text(header, keyword).split("\\")[0]
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _describes(header: Any) -> str:
    return " ".join(_text(header, k) for k in ("SeriesDescription", "ProtocolName", "SequenceName"))


_DIXON_WORDS = re.compile(r"dixon|ideal|flex|\bwater\b|\bfat\b|_w\b|_f\b|in[ _-]?phase|opp(osed)?[ _-]?phase|\bip\b|\bop\b")
_STIR_WORDS = re.compile(r"stir|tirm|\bir\b|short tau|fs ?ir")
_POST_WORDS = re.compile(r"post|\+ ?c\b|\bgad|gd\b|contrast|\bc\+")
_T2_WORDS = re.compile(r"t2")
_T1_WORDS = re.compile(r"t1")


@dataclass(frozen=True)
class Rule:
    name: str
    sequence: str
    test: Callable[[Any], bool]
    why: str


def _is_dixon(h: Any) -> bool:
    image_type = _text(h, "ImageType")
    return bool(_DIXON_WORDS.search(_describes(h))) or any(
        t in image_type.split("\\") for t in ("water", "fat", "in_phase", "out_phase", "opp_phase")
    )


def _is_stir(h: Any) -> bool:
    ti = _number(h, "InversionTime")
    ir = "ir" in _text(h, "ScanningSequence").split("\\")
    return bool(_STIR_WORDS.search(_describes(h))) or (ir and ti is not None and 80 <= ti <= 250)


def _is_post_contrast(h: Any) -> bool:
    return bool(_text(h, "ContrastBolusAgent")) or bool(_POST_WORDS.search(_describes(h)))


def _timing(h: Any) -> tuple[float | None, float | None]:
    return _number(h, "RepetitionTime"), _number(h, "EchoTime")


def _t1_by_timing(h: Any) -> bool:
    tr, te = _timing(h)
    return tr is not None and te is not None and tr < 1000 and te < 30


def _t2_by_timing(h: Any) -> bool:
    tr, te = _timing(h)
    return tr is not None and te is not None and tr >= 1500 and te >= 60


RULES: tuple[Rule, ...] = (
    Rule("dixon", DIXON, _is_dixon, "Dixon words in description/protocol or WATER/FAT/IN_PHASE/OUT_PHASE in ImageType"),
    Rule("stir", STIR, _is_stir, "STIR/TIRM in description, or inversion recovery with TI 80-250 ms"),
    Rule("post_contrast", OTHER, _is_post_contrast, "ContrastBolusAgent set or post/+C/gad in description"),
    Rule("t2_name", T2, lambda h: bool(_T2_WORDS.search(_describes(h))), "'t2' in description/protocol/sequence name"),
    Rule("t1_name", T1, lambda h: bool(_T1_WORDS.search(_describes(h))), "'t1' in description/protocol/sequence name"),
    Rule("t2_timing", T2, _t2_by_timing, "TR >= 1500 ms and TE >= 60 ms"),
    Rule("t1_timing", T1, _t1_by_timing, "TR < 1000 ms and TE < 30 ms"),
)


def classify_sequence(header: Any) -> tuple[str, str]:
    """Return (sequence type, name of the rule that decided). Non-MR is OTHER."""
    modality = _text(header, "Modality")
    if modality and modality != "mr":
        return OTHER, "not_mr"
    for rule in RULES:
        if rule.test(header):
            return rule.sequence, rule.name
    return OTHER, "no_rule"


def sequence_type(header: Any) -> str:
    return classify_sequence(header)[0]


def plane_from_orientation(orientation: Any, tolerance: float = 0.8) -> str:
    """Plane from ImageOrientationPatient (six direction cosines).

    The slice normal is row x column; its dominant patient axis gives the plane
    (x: sagittal, y: coronal, z: axial). Oblique when no axis dominates.
    """
    try:
        r = [float(v) for v in list(orientation)[:3]]
        c = [float(v) for v in list(orientation)[3:6]]
    except (TypeError, ValueError):
        return OBLIQUE
    if len(r) != 3 or len(c) != 3:
        return OBLIQUE
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    axis = max(range(3), key=lambda i: abs(n[i]))
    if abs(n[axis]) < tolerance:
        return OBLIQUE
    return (SAGITTAL, CORONAL, AXIAL)[axis]
