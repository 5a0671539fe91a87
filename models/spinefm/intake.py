"""Which study is a spine MRI, of which region, and which of its series the bundle reads: from headers only.

The one rule the backend calls before fetching pixels (``check_supported``,
``series_to_fetch``) and ``analyze`` calls again on the instances it got. Input is
study headers: pydicom Datasets or dicts of DICOM keywords, one or more per series,
no pixels.

Region comes from DICOM in this order of authority: AnatomicRegionSequence (coded,
SNOMED CT as in DICOM PS3.16 Annex L), BodyPartExamined (Annex L defined terms and
common free-text variants), then the words of RequestedProcedureDescription /
StudyDescription, ProtocolName and SeriesDescription. A generic "spine" from a higher
source is refined by a specific region from a lower one; a contradiction between
specific regions keeps the higher source and is recorded. A study that names the spine
anywhere is a spine study even if another source names another part (combined brain
and spine protocols exist; head coils write HEAD into BodyPartExamined); a study that
names only other parts is not a spine study; a study that names nothing (a blank
BodyPartExamined is common in exports) is "unknown" and its images must show a spine
(``spinefm.vertebrae``) before a draft is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from .conditions import VERTEBRAE, region_of_level
from .results import UnsupportedStudy
from .sequences import (AXIAL, LOCALIZER, NOT_READ, OTHER, SAGITTAL, _text, describe_sequence,
                        plane_from_orientation)

REGIONS = ("cervical", "thoracic", "lumbar")
SPINE, NOT_SPINE, UNKNOWN = "spine", "not_spine", "unknown"

# BodyPartExamined defined terms (PS3.16 Annex L) and free-text variants, with spaces and - _ removed.
BODY_PART_REGIONS: dict[str, tuple[str, ...]] = {
    "CSPINE": ("cervical",), "CERVICALSPINE": ("cervical",), "HWS": ("cervical",),
    "CTSPINE": ("cervical", "thoracic"),
    "TSPINE": ("thoracic",), "THORACICSPINE": ("thoracic",), "DSPINE": ("thoracic",), "DORSALSPINE": ("thoracic",),
    "BWS": ("thoracic",),
    "TLSPINE": ("thoracic", "lumbar"),
    "LSPINE": ("lumbar",), "LUMBARSPINE": ("lumbar",), "LWS": ("lumbar",), "LSSPINE": ("lumbar",),
    "LUMBOSACRALSPINE": ("lumbar",), "SSPINE": ("lumbar",), "SACRUM": ("lumbar",), "COCCYX": ("lumbar",),
    "WHOLESPINE": REGIONS, "TOTALSPINE": REGIONS, "SPINE": (), "WS": (), "RACHIS": (), "WIRBELSAEULE": (),
}
# Annex L codes (SCT) of the spine regions, for AnatomicRegionSequence.
CODE_REGIONS: dict[str, tuple[str, ...]] = {
    "122494005": ("cervical",), "1217257000": ("cervical", "thoracic"), "122495006": ("thoracic",),
    "1217256009": ("thoracic", "lumbar"), "122496007": ("lumbar",), "1217253001": ("lumbar",),
    "54735007": ("lumbar",), "64688005": ("lumbar",), "421060004": (), "1141981001": (),
    "280717001": REGIONS,  # entire vertebral column
}
# Parts that do not decide: a cervical spine study may carry NECK, a whole-body exam contains a spine.
NEUTRAL_PARTS = {"", "NECK", "BACK", "WHOLEBODY", "OTHER", "UNKNOWN", "MR", "MRI", "NONE", "TRUNK", "BODY"}
NOT_SPINE_PARTS = {
    "HEAD", "BRAIN", "SKULL", "ORBIT", "SELLA", "PITUITARY", "IAC", "EAR", "FACE", "SINUS", "TMJ", "JAW",
    "KNEE", "ANKLE", "FOOT", "TOE", "HIP", "THIGH", "LEG", "LOWERLEG", "FEMUR", "TIBIA", "SHOULDER", "ELBOW",
    "WRIST", "HAND", "FINGER", "ARM", "UPPERARM", "FOREARM", "HUMERUS", "EXTREMITY", "LOWEREXTREMITY",
    "UPPEREXTREMITY", "ABDOMEN", "ABDOMENPELVIS", "PELVIS", "CHEST", "THORAX", "BREAST", "HEART", "CARDIAC",
    "LIVER", "KIDNEY", "PANCREAS", "PROSTATE", "UTERUS", "OVARY", "BLADDER", "RECTUM", "LUNG", "AORTA",
    "HEADNECK", "CIRCLEOFWILLIS", "CAROTID", "SCROTUM", "TESTIS", "FETUS",
}
NOT_SPINE_CODES = {"69536005": "head", "12738006": "brain", "72696002": "knee", "16982005": "shoulder",
                   "24136001": "hip", "70258002": "ankle", "818981001": "abdomen", "816092008": "pelvis",
                   "816094009": "chest", "76752008": "breast", "80891009": "heart", "41216001": "prostate"}

_SPINE_WORD = r"(spine|spinal|vertebr|column|rachis|wirbel|wirbelsaeule|myelo)"
_TEXT_REGIONS = (
    (REGIONS, re.compile(r"whole ?spine|total ?spine|full ?spine|entire ?spine|all ?spine|complete ?spine|ganze ?ws")),
    (("cervical", "thoracic"), re.compile(r"\bct ?spine|cervico ?thoracic|cervicothoracic")),
    (("thoracic", "lumbar"), re.compile(r"\btl ?spine|thoraco ?lumbar|thoracolumbar")),
    (("cervical",), re.compile(r"\bc ?spine|\bcspine|\bhws\b")),
    (("thoracic",), re.compile(r"\bt ?spine|\btspine|\bd ?spine|\bbws\b")),
    (("lumbar",), re.compile(r"\bl ?spine|\blspine|lumbar|lumbo ?sacral|\bls ?spine|\blws\b|sacrum|coccyx")),
)
# "cervical spine", "cervical and thoracic spine", "spine, lumbar": adjectives next to a spine word
_ADJECTIVES = {"cervical": "cervical", "thoracic": "thoracic", "dorsal": "thoracic", "lumbar": "lumbar",
               "lumbosacral": "lumbar", "sacral": "lumbar"}
_ADJ = r"(?:cervical|thoracic|dorsal|lumbar|lumbosacral|sacral)"
_TEXT_ADJECTIVES = re.compile(r"(?:" + _ADJ + r"(?:\s*(?:,|and|&|\+)?\s*))+" + _SPINE_WORD
                              + r"|" + _SPINE_WORD + r"\s*,?\s*(?:" + _ADJ + r"(?:\s*(?:,|and|&|\+)?\s*)?)+")
_TEXT_SPINE = re.compile(_SPINE_WORD + r"|\bws\b")
_TEXT_LEVEL_SPAN = re.compile(r"\b([ctl])(\d{1,2})\s*(?:-|to)\s*([ctls])(\d{1,2})\b")  # "C2-T1", "T10 to L2"
_TEXT_NOT_SPINE = re.compile(
    r"\b(brain|head|skull|cranial|cranium|orbit|orbits|pituitary|sella|iac|inner ear|face|sinus|tmj|knee|ankle|foot|"
    r"toe|hip|thigh|femur|tibia|shoulder|elbow|wrist|hand|finger|humerus|forearm|abdomen|abdominal|liver|kidney|"
    r"renal|pancreas|prostate|uterus|ovary|bladder|rectum|rectal|breast|cardiac|heart|chest|lung|aorta|carotid|"
    r"angio|mra|mrcp|enterography|fetal|scrotum)\b")
TEXT_KEYWORDS = ("RequestedProcedureDescription", "StudyDescription", "PerformedProcedureStepDescription",
                 "ProtocolName", "SeriesDescription")


@dataclass
class SourceCall:
    """What one header field says about the body part."""

    source: str                    # e.g. "BodyPartExamined"
    value: str                     # the raw value, for the reader
    status: str                    # spine / not_spine / unknown
    regions: tuple[str, ...] = ()  # for spine: the regions it names (() = spine, region not said)


@dataclass
class RegionCall:
    """The study's region from DICOM: status, regions (cranio-caudal), the deciding source and the evidence."""

    status: str
    regions: tuple[str, ...] = ()
    source: str = ""
    evidence: list[SourceCall] = field(default_factory=list)
    conflict: str = ""             # specific regions named differently by two sources

    @property
    def name(self) -> str:
        return region_name(self.regions) if self.status == SPINE else ("not spine" if self.status == NOT_SPINE else "unknown")

    def reason(self) -> str:
        """Why a study is refused: the fields that name another body part."""
        said = [f"{e.source} {e.value!r}" for e in self.evidence if e.status == NOT_SPINE]
        return "; ".join(said)

    def to_dict(self) -> dict:
        return {"status": self.status, "regions": list(self.regions), "name": self.name, "source": self.source,
                "conflict": self.conflict,
                "evidence": [{"source": e.source, "value": e.value, "status": e.status, "regions": list(e.regions)}
                             for e in self.evidence]}


def region_name(regions: Iterable[str]) -> str:
    """("cervical",) -> "cervical"; ("thoracic", "lumbar") -> "thoracic and lumbar"; all three -> "whole"."""
    rs = [r for r in REGIONS if r in set(regions)]
    if not rs:
        return "spine"
    if len(rs) == 3:
        return "whole"
    return " and ".join(rs)


def ordered(regions: Iterable[str]) -> tuple[str, ...]:
    s = set(regions)
    return tuple(r for r in REGIONS if r in s)


def _compact(value: str) -> str:
    return re.sub(r"[\s\-_/.]+", "", value.upper())


def _words(value: str) -> str:
    return re.sub(r"[_\-/.]+", " ", value.lower())


def call_body_part(value: str) -> SourceCall:
    key = _compact(value)
    if key in BODY_PART_REGIONS:
        return SourceCall("BodyPartExamined", value, SPINE, BODY_PART_REGIONS[key])
    if key in NEUTRAL_PARTS:
        return SourceCall("BodyPartExamined", value, UNKNOWN)
    if key in NOT_SPINE_PARTS:
        return SourceCall("BodyPartExamined", value, NOT_SPINE)
    text = call_text("BodyPartExamined", value)  # free text such as "L-SPINE MRI" or "KNEE LEFT"
    return text


def call_text(source: str, value: str) -> SourceCall:
    """Spine / region / other body part from free text (descriptions, protocol names)."""
    words = _words(value)
    if not words.strip():
        return SourceCall(source, value, UNKNOWN)
    regions: set[str] = set()
    for names, rx in _TEXT_REGIONS:
        if rx.search(words):
            regions |= set(names)
    for m in _TEXT_ADJECTIVES.finditer(words):
        regions |= {_ADJECTIVES[a] for a in re.findall(_ADJ, m.group(0))}
    for a, i, b, j in _TEXT_LEVEL_SPAN.findall(value.lower()):  # the regions of both ends of a level span
        ends = [f"{a.upper()}{i}", f"{b.upper()}{j}"]
        if all(e in VERTEBRAE for e in ends):
            regions |= {region_of_level(e) for e in ends} - {"sacral"}
    if regions or _TEXT_SPINE.search(words):
        return SourceCall(source, value, SPINE, ordered(regions))
    if _TEXT_NOT_SPINE.search(words):
        return SourceCall(source, value, NOT_SPINE)
    return SourceCall(source, value, UNKNOWN)


def call_codes(items: Any) -> SourceCall | None:
    """AnatomicRegionSequence items (pydicom Sequence or DICOMweb-like list of dicts)."""
    for item in items or []:
        code = str(item.get("CodeValue", "") if hasattr(item, "get") else "").strip()
        meaning = str(item.get("CodeMeaning", "") if hasattr(item, "get") else "")
        if code in CODE_REGIONS:
            return SourceCall("AnatomicRegionSequence", f"{code} {meaning}".strip(), SPINE, CODE_REGIONS[code])
        if code in NOT_SPINE_CODES:
            return SourceCall("AnatomicRegionSequence", f"{code} {meaning}".strip(), NOT_SPINE)
        if meaning:
            call = call_text("AnatomicRegionSequence", meaning)
            if call.status != UNKNOWN:
                return call
    return None


def _get(h: Any, keyword: str):
    value = h.get(keyword) if hasattr(h, "get") else None
    return getattr(value, "value", value)


def header_calls(headers: Iterable[Any]) -> list[SourceCall]:
    """Every distinct body-part statement in the headers, most authoritative source first."""
    by_source: dict[str, list[SourceCall]] = {}
    seen: set[tuple[str, str]] = set()
    for h in headers:
        items = _get(h, "AnatomicRegionSequence")
        if items:
            call = call_codes(items)
            if call and (call.source, call.value) not in seen:
                seen.add((call.source, call.value))
                by_source.setdefault(call.source, []).append(call)
        part = _text(h, "BodyPartExamined")
        if ("BodyPartExamined", part) not in seen and part.strip():
            seen.add(("BodyPartExamined", part))
            raw = str(_get(h, "BodyPartExamined") or "")
            by_source.setdefault("BodyPartExamined", []).append(call_body_part(raw))
        for kw in TEXT_KEYWORDS:
            raw = str(_get(h, kw) or "")
            if raw.strip() and (kw, raw) not in seen:
                seen.add((kw, raw))
                by_source.setdefault(kw, []).append(call_text(kw, raw))
    order = ("AnatomicRegionSequence", "BodyPartExamined") + TEXT_KEYWORDS
    return [c for src in order for c in by_source.get(src, [])]


def region_from_headers(headers: Iterable[Any]) -> RegionCall:
    """The study's region from its DICOM headers (see the module docstring for the order)."""
    calls = header_calls(list(headers))
    spine = [c for c in calls if c.status == SPINE]
    if not spine:
        if any(c.status == NOT_SPINE for c in calls):
            first = next(c for c in calls if c.status == NOT_SPINE)
            return RegionCall(NOT_SPINE, (), first.source, calls)
        return RegionCall(UNKNOWN, (), "", calls)
    specific = [c for c in spine if c.regions]
    if not specific:
        return RegionCall(SPINE, (), spine[0].source, calls)
    best = specific[0]
    per_series = ("ProtocolName", "SeriesDescription")  # series of one study may cover different regions
    same = [c for c in specific if c.source == best.source or (best.source in per_series and c.source in per_series)]
    regions = set().union(*(c.regions for c in same))
    clash = next((c for c in specific if c not in same and not set(c.regions) & regions), None)
    conflict = "" if clash is None else (f"{best.source} {best.value!r} says {region_name(regions)}; "
                                         f"{clash.source} {clash.value!r} says {region_name(clash.regions)}")
    return RegionCall(SPINE, ordered(regions), best.source, calls, conflict)


# ---------------------------------------------------------------- series selection

READ, LEVELS = "read", "levels"  # why a series is fetched: the model reads it, or levels are counted on it


@dataclass
class SeriesChoice:
    series_instance_uid: str
    description: str
    sequence: str
    label: str
    plane: str
    fetch: bool
    reason: str = ""   # why a series is not fetched
    use: str = ""      # READ or LEVELS when fetched


def _series_heads(headers: Iterable[Any]) -> dict[str, list[Any]]:
    """{SeriesInstanceUID: its headers, in the order given}."""
    out: dict[str, list[Any]] = {}
    for h in headers:
        uid = str(_get(h, "SeriesInstanceUID") or "")
        if uid:
            out.setdefault(uid, []).append(h)
    return out


def choose_series(headers: Iterable[Any]) -> list[SeriesChoice]:
    """Per series: whether the bundle wants its pixels, what for, and why not.

    Read by the model: sagittal MR series the router takes (T1 and T2 encoders; STIR and Dixon through
    the T2 encoder; post-contrast, FLAIR, T2*, proton density through the synthesizer). Fetched for
    counting levels only: localizers with sagittal images (a 3-plane localizer holds all three planes;
    ``spinefm.vertebrae.label_study`` counts a cropped stack from them). Not fetched: other modalities,
    diffusion, localizers without a sagittal image, axial / coronal / oblique series (the model reads
    sagittal stacks), and series whose own description names another body part.
    """
    out = []
    for uid, group in _series_heads(headers).items():
        h = group[0]
        info = describe_sequence(h)
        plane = plane_from_orientation(_get(h, "ImageOrientationPatient"))
        desc = str(_get(h, "SeriesDescription") or "")
        reason, use = "", READ
        if str(_get(h, "Modality") or "").upper() != "MR":
            reason = f"modality {_get(h, 'Modality') or 'unknown'}"
        elif info.sequence == OTHER and info.detail == LOCALIZER:
            sagittal = any(plane_from_orientation(_get(x, "ImageOrientationPatient")) == SAGITTAL for x in group)
            reason, use, plane = ("", LEVELS, SAGITTAL) if sagittal else ("localizer without a sagittal image", "", plane)
        elif info.sequence == OTHER and info.detail in NOT_READ:
            reason = NOT_READ[info.detail]
        elif plane != SAGITTAL:
            reason = f"{plane} plane (the model reads sagittal series)" if plane != AXIAL else \
                "axial (the model reads sagittal series)"
        elif call_text("SeriesDescription", desc).status == NOT_SPINE:
            reason = f"series description {desc!r} names another body part"
        out.append(SeriesChoice(uid, desc, info.sequence, info.label, plane, not reason, reason, use if not reason else ""))
    return out


def series_to_fetch(headers: Iterable[Any]) -> dict[str, Any]:
    """{SeriesInstanceUID: first header} of the series whose pixels the bundle reads or counts levels on."""
    heads = _series_heads(headers)
    return {c.series_instance_uid: heads[c.series_instance_uid][0] for c in choose_series(headers) if c.fetch}


IGNORED_MODALITIES = {"SR", "SEG", "PR", "KO", "DOC", "OT_REPORT"}


def check_supported(headers: list) -> RegionCall:
    """Raise UnsupportedStudy (one line, naming the field or series) unless this can be a spine MR;
    returns the DICOM region call (status "unknown" means the images must confirm the spine)."""
    modalities = sorted({str(_get(h, "Modality") or "") for h in headers} - IGNORED_MODALITIES)
    if modalities != ["MR"]:
        raise UnsupportedStudy(f"modality {', '.join(m for m in modalities if m) or 'unknown'} is not MR; "
                               "SpineAgent reads spine MRI")
    call = region_from_headers(headers)
    if call.status == NOT_SPINE:
        raise UnsupportedStudy(f"not a spine MRI: {call.reason()}")
    choices = choose_series(headers)
    if not any(c.use == READ for c in choices):
        seen = "; ".join(f"{c.description or c.series_instance_uid}: {c.reason}" for c in choices) or "none"
        raise UnsupportedStudy(f"no sagittal MR series the model reads (series seen: {seen})")
    return call


# ---------------------------------------------------------------- DICOM + images

@dataclass
class RegionDecision:
    """The region a result reports: DICOM first, the images as fallback, their disagreement kept."""

    regions: tuple[str, ...]
    source: str                      # "dicom", "image" or "" (not determined)
    dicom: str                       # the DICOM call's name ("lumbar", "spine", "unknown")
    image: str                       # the image estimate's name ("" when the images name no level)
    disagreement: str = ""           # a sentence for the reader when DICOM and images name different regions

    @property
    def name(self) -> str:
        return region_name(self.regions) if self.regions else "spine"


def decide_region(dicom: RegionCall, image_regions: Iterable[str], not_confirmed: str = "") -> RegionDecision:
    """DICOM's specific region when it names one, else the image estimate. A DICOM region that shares
    no region with what the images show is kept (the ordered exam) and the disagreement recorded, and
    so is a study the tags call a spine whose images did not confirm one (``not_confirmed``: why not,
    ``SpineLabels.reason``): a mislabelled series must not pass as a spine without a word to the reader."""
    image = ordered(image_regions)
    image_name = region_name(image) if image else ""
    if dicom.status == SPINE:
        said = f"DICOM ({dicom.source}) says {region_name(dicom.regions) + ' ' if dicom.regions else ''}spine"
        dis = f"{said}; the images did not confirm a spine: {not_confirmed}" if not_confirmed else ""
        if dicom.regions and image and not set(image) & set(dicom.regions):
            dis = f"{said}; the images show the {image_name} spine"
        if dicom.regions:
            return RegionDecision(dicom.regions, "dicom", dicom.name, image_name, dis)
        return RegionDecision(image, "image" if image else "", dicom.name, image_name, dis)
    return RegionDecision(image, "image" if image else "", dicom.name, image_name)
