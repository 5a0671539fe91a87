"""Sequence type and imaging plane from DICOM header fields: the one rule table.

Shared by the backend (indexing, job routing) and the model library
(preprocessing, encoder choice). Input is anything with ``.get(keyword)`` —
a pydicom Dataset or a plain dict of DICOM keywords, e.g. from DICOMweb JSON.

Physics tags decide first (ImageType, DiffusionBValue, ContrastBolusAgent,
ScanningSequence / ScanOptions with InversionTime, RepetitionTime and EchoTime),
then vendor series-description conventions (Siemens ``t2_tse_sag``, GE
``SAG T2 FSE``, Philips ``T2W_TSE SAG``, Canon / Hitachi ``Sag T2 FSE``,
``T2WI_SAG``), because names are free text typed by technologists and timings
are what the scanner did. Rules are tried in order; the first match wins
(documented, one row per rule, in docs/sequences.md).

Types stay the five the backend stores (T1, T2, STIR, DIXON, OTHER);
:func:`describe_sequence` adds the detail: the Dixon image (water, fat, in,
opp), post-contrast, and why a series is OTHER (localizer, diffusion, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

T1, T2, STIR, DIXON, OTHER = "T1", "T2", "STIR", "DIXON", "OTHER"
SEQUENCE_TYPES = (T1, T2, STIR, DIXON, OTHER)

SAGITTAL, CORONAL, AXIAL, OBLIQUE = "sagittal", "coronal", "axial", "oblique"

# details of OTHER (and of DIXON)
POST_CONTRAST, LOCALIZER, DIFFUSION, FLAIR, GRADIENT_ECHO, PROTON_DENSITY = (
    "post_contrast", "localizer", "diffusion", "flair", "gradient_echo", "proton_density")
DIXON_PARTS = ("water", "fat", "in", "opp")


def _text(header: Any, keyword: str) -> str:
    value = header.get(keyword) if hasattr(header, "get") else None
    if value is None:
        return ""
    if hasattr(value, "value"):  # pydicom DataElement
        value = value.value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).lower()
    return str(value).lower()


def _tokens(header: Any, keyword: str) -> list[str]:
    return [t.strip() for t in _text(header, keyword).split("\\") if t.strip()]


def _number(header: Any, keyword: str) -> float | None:
    raw = _text(header, keyword).split("\\")[0]
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _describes(header: Any) -> str:
    """Series description, protocol and sequence name, with '_' and '-' read as word breaks."""
    text = " ".join(_text(header, k) for k in ("SeriesDescription", "ProtocolName", "SequenceName"))
    return re.sub(r"[_\-/]+", " ", text)


_FAT_SUPPRESSION = re.compile(r"fat ?sat|fatsat|fat ?supp?|water ?exc|\bspir\b|\bspair\b|\bfs\b")
_DIXON_WORDS = re.compile(r"dixon|\bideal\b|\bflex\b|fat ?sep|\bwfs\b|\bwater\b|\bfat\b|in ?phase|inphase|"
                          r"opp(osed)? ?phase|out ?(of )?phase")
_DIXON_NAME_PARTS = (("water", re.compile(r"water|\bw\b")), ("fat", re.compile(r"\bfat\b|\bf\b")),
                     ("in", re.compile(r"in ?phase|inphase|\bip\b|\bin\b")),
                     ("opp", re.compile(r"opp(osed)?|out ?(of )?phase|\bop\b|\bopp\b")))
_DIXON_TYPE_PARTS = {"water": "water", "w": "water", "fat": "fat", "f": "fat", "in_phase": "in", "ip": "in",
                     "out_phase": "opp", "opp_phase": "opp", "op": "opp"}
_STIR_WORDS = re.compile(r"stir|tirm|\bir\b|short tau")
_PRE_WORDS = re.compile(r"\bpre ?(gad|gd|contrast|c\b)|non ?contrast|\bw ?o\b( contrast)?|without( contrast)?|\bpre\b")
_POST_WORDS = re.compile(r"\bpost\b|\+ ?c\b|\+ ?gd|\bgad|\bgd\b|contrast|\bc ?\+|\bce\b|\bkm\b|mdc")
_LOCALIZER_WORDS = re.compile(r"locali[sz]er|\bscout\b|\bsurvey\b|3 ?pl(ane)? ?loc|tri ?pilot|\bloc\b|aahead|aascout")
_DIFFUSION_WORDS = re.compile(r"\bdwi\b|diff|\bdti\b|\btrace|\badc\b|\bb ?\d{3,4}\b|ep2d diff")
_FLAIR_WORDS = re.compile(r"flair|\btirm dark")
_GRE_WORDS = re.compile(r"\bgre\b|medic|merge|t2 ?\*|t2 ?star|\bswi\b|\bme2d\b|\bfl2d\b|\bhemo")
_PD_WORDS = re.compile(r"\bpd\b|proton density|\bpdw\b")
_T2_WORDS = re.compile(r"t2(?!\d)")
_T1_WORDS = re.compile(r"t1(?!\d)")


@dataclass(frozen=True)
class Rule:
    name: str
    sequence: str
    test: Callable[[Any], bool]
    why: str
    detail: str = ""  # what an OTHER (or DIXON) series is, when the rule knows


@dataclass(frozen=True)
class SequenceInfo:
    """One series' type, the rule that decided, and the detail the draft and the reader see."""

    sequence: str          # one of SEQUENCE_TYPES
    rule: str
    detail: str = ""       # water / fat / in / opp for DIXON; post_contrast, localizer, ... for OTHER
    contrast: bool = False
    weighting: str = ""    # for post-contrast series: T1 / T2 by the plain rules, when they tell

    @property
    def label(self) -> str:
        """'T1', 'post-contrast T1', 'Dixon water', 'STIR', 'diffusion', ..."""
        if self.sequence == DIXON:
            name = f"Dixon {self.detail}" if self.detail else "Dixon"
        elif self.sequence == OTHER and self.detail == POST_CONTRAST:
            return f"post-contrast {self.weighting}".strip()
        elif self.sequence == OTHER:
            name = {PROTON_DENSITY: "proton density", GRADIENT_ECHO: "gradient echo"}.get(self.detail, self.detail or "other")
        else:
            name = self.sequence
        return name


# ---------------------------------------------------------------- physics tests

def _image_type_localizer(h: Any) -> bool:
    return "localizer" in _tokens(h, "ImageType")


def _diffusion_physics(h: Any) -> bool:
    b = _number(h, "DiffusionBValue")
    types = _tokens(h, "ImageType")
    return (b is not None and b > 0) or any(t in types for t in ("adc", "tracew", "trace", "diffusion", "fa", "eadc"))


def _pre_contrast_named(h: Any) -> bool:
    d = _describes(h)
    return bool(_PRE_WORDS.search(d)) and not _POST_WORDS.search(_PRE_WORDS.sub(" ", d))


def _contrast_agent(h: Any) -> bool:
    agent = _text(h, "ContrastBolusAgent").strip()
    return bool(agent) and agent not in ("none", "no", "n/a", "na", "0") and not _pre_contrast_named(h)


def dixon_part(h: Any) -> str:
    """water / fat / in / opp from ImageType, else from the description; '' when it says none."""
    for t in reversed(_tokens(h, "ImageType")):
        if t in _DIXON_TYPE_PARTS and (len(t) > 2 or "dixon" in _tokens(h, "ImageType") or "dixon" in _describes(h)):
            return _DIXON_TYPE_PARTS[t]
    text = _FAT_SUPPRESSION.sub(" ", _describes(h))
    for part, rx in _DIXON_NAME_PARTS:
        if rx.search(text):
            return part
    return ""


def _dixon_image_type(h: Any) -> bool:
    types = _tokens(h, "ImageType")
    if any(t in types for t in ("water", "fat", "in_phase", "out_phase", "opp_phase")):
        return True
    return "dixon" in types or ("dixon" in _describes(h) and any(t in types for t in ("w", "f", "ip", "op")))


def _inversion(h: Any) -> float | None:
    """InversionTime when the sequence is an inversion recovery (ScanningSequence or ScanOptions IR)."""
    ir = "ir" in _tokens(h, "ScanningSequence") or "ir" in _tokens(h, "ScanOptions")
    ti = _number(h, "InversionTime")
    return ti if ir and ti is not None and ti > 0 else None


def _stir_physics(h: Any) -> bool:
    ti = _inversion(h)
    return ti is not None and 80 <= ti <= 250  # nulls fat (T1 ~260-380 ms) at 1.5-3 T


def _t1_inversion(h: Any) -> bool:
    ti, te = _inversion(h), _number(h, "EchoTime")
    return ti is not None and 300 <= ti <= 1300 and te is not None and te < 40  # T1 FLAIR (GE), T1 IR


def _flair_physics(h: Any) -> bool:
    ti = _inversion(h)
    return ti is not None and ti >= 1500  # nulls CSF


def _gradient_echo_t2star(h: Any) -> bool:
    seq = _tokens(h, "ScanningSequence")
    te, tr = _number(h, "EchoTime"), _number(h, "RepetitionTime")
    return seq == ["gr"] and te is not None and te >= 8 and (tr is None or tr < 1500)


def _timing(h: Any) -> tuple[float | None, float | None]:
    return _number(h, "RepetitionTime"), _number(h, "EchoTime")


def _t1_by_timing(h: Any) -> bool:
    tr, te = _timing(h)
    return tr is not None and te is not None and tr < 1000 and te < 30


def _t2_by_timing(h: Any) -> bool:
    tr, te = _timing(h)
    return tr is not None and te is not None and tr >= 1500 and te >= 60


def _pd_by_timing(h: Any) -> bool:
    tr, te = _timing(h)
    return tr is not None and te is not None and tr >= 1500 and te < 40 and _inversion(h) is None


# ---------------------------------------------------------------- name tests

def _named(rx: re.Pattern) -> Callable[[Any], bool]:
    return lambda h: bool(rx.search(_describes(h)))


def _dixon_named(h: Any) -> bool:
    return bool(_DIXON_WORDS.search(_FAT_SUPPRESSION.sub(" ", _describes(h))))


def _post_named(h: Any) -> bool:
    return bool(_POST_WORDS.search(_PRE_WORDS.sub(" ", _describes(h))))


def _stir_named(h: Any) -> bool:
    d = _describes(h)
    m = _STIR_WORDS.search(d)
    return bool(m) and (m.group(0) != "ir" or not _T1_WORDS.search(d))  # "T1 IR" is T1-weighted


def _flair_named(h: Any) -> bool:
    d = _describes(h)
    return bool(_FLAIR_WORDS.search(d)) and not _T1_WORDS.search(d)  # "T1 FLAIR" is T1-weighted


RULES: tuple[Rule, ...] = (
    # physics tags
    Rule("localizer", OTHER, _image_type_localizer, "ImageType holds LOCALIZER", LOCALIZER),
    Rule("diffusion", OTHER, _diffusion_physics, "DiffusionBValue > 0, or ImageType ADC / TRACEW / FA", DIFFUSION),
    Rule("contrast_agent", OTHER, _contrast_agent,
         "ContrastBolusAgent is set (and the description does not say pre-contrast)", POST_CONTRAST),
    Rule("dixon_image_type", DIXON, _dixon_image_type,
         "ImageType holds WATER / FAT / IN_PHASE / OUT_PHASE (Siemens, GE), or DIXON with W / F / IP / OP (Philips)"),
    Rule("stir_inversion", STIR, _stir_physics, "inversion recovery (ScanningSequence or ScanOptions IR) with TI 80-250 ms"),
    Rule("t1_inversion", T1, _t1_inversion, "inversion recovery with TI 300-1300 ms and TE < 40 ms (T1 FLAIR / T1 IR)"),
    Rule("flair_inversion", OTHER, _flair_physics, "inversion recovery with TI >= 1500 ms (FLAIR)", FLAIR),
    Rule("gradient_echo", OTHER, _gradient_echo_t2star, "ScanningSequence GR only, TE >= 8 ms (T2*: MEDIC, MERGE)",
         GRADIENT_ECHO),
    # names that qualify a sequence (post-contrast, Dixon, STIR, ...) before timing would call it T1 / T2
    Rule("localizer_name", OTHER, _named(_LOCALIZER_WORDS), "localizer / scout / survey / 3-plane loc", LOCALIZER),
    Rule("post_contrast_name", OTHER, _post_named, "post / +C / gad / Gd / contrast / C+ and no pre-contrast word",
         POST_CONTRAST),
    Rule("diffusion_name", OTHER, _named(_DIFFUSION_WORDS), "DWI / diff / DTI / trace / ADC / b-value", DIFFUSION),
    Rule("dixon_name", DIXON, _dixon_named,
         "Dixon / IDEAL / FLEX / FatSep / WFS / water / fat / in- or opposed-phase (fat-sat words excluded)"),
    Rule("stir_name", STIR, _stir_named, "STIR / TIRM / short tau, or IR without 'T1'"),
    Rule("flair_name", OTHER, _flair_named, "FLAIR without 'T1'", FLAIR),
    Rule("gradient_echo_name", OTHER, _named(_GRE_WORDS), "GRE / MEDIC / MERGE / T2* / SWI", GRADIENT_ECHO),
    # plain T1 / T2: timing is what the scanner did, the name what someone typed
    Rule("t2_timing", T2, _t2_by_timing, "TR >= 1500 ms and TE >= 60 ms"),
    Rule("t1_timing", T1, _t1_by_timing, "TR < 1000 ms and TE < 30 ms"),
    Rule("pd_timing", OTHER, _pd_by_timing, "TR >= 1500 ms, TE < 40 ms, no inversion (proton density)", PROTON_DENSITY),
    Rule("pd_name", OTHER, _named(_PD_WORDS), "PD / proton density", PROTON_DENSITY),
    Rule("t2_name", T2, _named(_T2_WORDS), "'t2' not followed by a digit in description / protocol / sequence name"),
    Rule("t1_name", T1, _named(_T1_WORDS), "'t1' not followed by a digit (T10-T12 are levels)"),
)


def describe_sequence(header: Any) -> SequenceInfo:
    """Type, deciding rule and detail of one series header. Non-MR is OTHER (rule ``not_mr``)."""
    modality = _text(header, "Modality")
    if modality and modality != "mr":
        return SequenceInfo(OTHER, "not_mr", "not MR")
    for rule in RULES:
        if rule.test(header):
            detail = dixon_part(header) if rule.sequence == DIXON else rule.detail
            contrast = rule.detail == POST_CONTRAST
            weighting = next((r.sequence for r in RULES if r.sequence in (T1, T2) and r.test(header)), "") if contrast else ""
            return SequenceInfo(rule.sequence, rule.name, detail, contrast, weighting)
    return SequenceInfo(OTHER, "no_rule")


# Series the encoders never read, whatever their plane (a localizer may still be counted on: spinefm.vertebrae).
NOT_READ = {LOCALIZER: "localizer", DIFFUSION: "diffusion (not read by the model)"}


def not_read_reason(header: Any) -> str:
    """Why the encoders never read this series ("" when they may): localizers and diffusion."""
    info = describe_sequence(header)
    return NOT_READ.get(info.detail, "") if info.sequence == OTHER else ""


def classify_sequence(header: Any) -> tuple[str, str]:
    """Return (sequence type, name of the rule that decided)."""
    info = describe_sequence(header)
    return info.sequence, info.rule


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
