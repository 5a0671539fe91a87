"""Turn an AnalysisResult into ordered, hedged findings: shared by every backend.

The template backend writes text from these, and the prompt for the LM
backends lists the same items, so all drafters see one reading of the agents.
No torch here: the web tier may import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from spinefm.conditions import CONDITIONS, VERTEBRAE, get_condition
from spinefm.results import AnalysisResult, Box, Call, KeySlice

# Impression order: what a reader must act on first.
PRIORITY = ("compression", "fracture", "lesion_intramedullary", "lesion_extramedullary",
            "inflammation", "edema", "canal", "spondylolisthesis", "par", "herniation",
            "subarticular", "neuroforaminal", "synovial", "disc_height", "lipomatosis",
            "cyst", "hemangioma")
# Findings that warrant a caution line in the impression.
URGENT = {"compression", "fracture", "lesion_intramedullary", "lesion_extramedullary",
          "inflammation"}

# Findings sections (report conventions in shared/docs/spineagent-model.md).
SECTION_OF = {
    "spondylolisthesis": "alignment",
    "par": "alignment",
    "fracture": "marrow", "edema": "marrow", "hemangioma": "marrow",
    "lesion_intramedullary": "cord", "lesion_extramedullary": "cord",
    "lipomatosis": "other", "cyst": "other",
}  # everything else is reported at its disc level


@dataclass
class Finding:
    condition: str
    display: str
    probability: float
    status: str  # present / possible / absent
    level: str | None = None
    key_slice: KeySlice | None = None
    box: Box | None = None
    series_label: str | None = None  # "T2 sagittal" for the key slice's series
    level_uncertain: bool = False    # localised, but the model could not name the level
    rule_out: bool = False           # the bundle's held-out operating point supports calling it absent

    @property
    def section(self) -> str:
        return SECTION_OF.get(self.condition, "levels")


def status_of(probability: float, present: bool, threshold: float, margin: float,
              status: str | None = None) -> str:
    """The bundle's own call when the result carries one; for older results, hedge when
    the probability sits within ``margin`` of the decision threshold."""
    if status is not None:
        return status
    if abs(probability - threshold) < margin:
        return Call.POSSIBLE
    return Call.PRESENT if present else Call.ABSENT


def level_order(level: str | None) -> float:
    """Cranio-caudal position: vertebra index, discs halfway between; unknown last."""
    if not level:
        return 1e9
    head = level.split("-")[0]
    try:
        pos = float(VERTEBRAE.index(head))
    except ValueError:
        return 1e9
    return pos + (0.5 if "-" in level else 0.0)


def triage(result: AnalysisResult, threshold: float = 0.5, margin: float = 0.1) -> list[Finding]:
    """One Finding per predicted condition (registry order), with its best key slice and box."""
    series = {s.series_instance_uid: s for s in result.series}
    best_slice: dict[str, KeySlice] = {}
    for ks in result.key_slices:
        if ks.condition not in best_slice or ks.score > best_slice[ks.condition].score:
            best_slice[ks.condition] = ks
    best_box: dict[str, Box] = {}
    for bx in result.boxes:
        if bx.condition not in best_box or bx.score > best_box[bx.condition].score:
            best_box[bx.condition] = bx
    out = []
    known = {c.key for c in CONDITIONS}
    for pred in result.conditions:
        if pred.condition not in known:
            continue  # a site-specific condition we have no wording for
        cond = get_condition(pred.condition)
        ks = best_slice.get(pred.condition)
        label = None
        if ks is not None and ks.series_instance_uid in series:
            s = series[ks.series_instance_uid]
            label = f"{s.sequence} {s.plane}"
        level = pred.level
        box = best_box.get(pred.condition)
        uncertain = bool(getattr(pred, "level_uncertain", False))
        if level is None and box is not None and not uncertain:
            level = box.level
        out.append(Finding(pred.condition, cond.display_name, float(pred.probability),
                           status_of(float(pred.probability), bool(pred.present), threshold, margin,
                                     pred.status),
                           level, ks, box, label, level_uncertain=uncertain or level is None,
                           rule_out=bool(getattr(pred, "rule_out", False))))
    return out


def region(result: AnalysisResult) -> str | None:
    """The study's region as analyze decided it (DICOM first, the images as fallback), e.g. "cervical",
    "thoracic and lumbar", "whole"; None when it is not known. Never guessed from finding levels: a level
    placed by a model says nothing reliable about which part of the spine was imaged."""
    r = getattr(result, "region", "") or ""
    return r if r and r != "spine" else None


def sequences_used(result: AnalysisResult) -> list[str]:
    """The series the model read, in acquisition-table order: 'sagittal T2 (t2_tse_sag)', 'sagittal Dixon water'."""
    seen = []
    for s in result.series:
        name = f"{s.plane} {getattr(s, 'label', '') or s.sequence}".strip()
        desc = (getattr(s, "description", "") or "").strip()
        if desc:
            name += f" ({desc})"
        if name and name not in seen:
            seen.append(name)
    return seen


def coverage_span(result: AnalysisResult) -> str | None:
    """'T11 to S1': the first and last vertebra the images show, when the model counted them."""
    vert = [lv for lv in getattr(result, "coverage", []) or [] if "-" not in lv]
    return f"{vert[0]} to {vert[-1]}" if len(vert) >= 2 else None


def level_count_note(result: AnalysisResult) -> str:
    """How the levels were counted when it was not on the read series itself, or why none is named."""
    check = getattr(result, "spine_check", None) or {}
    if check.get("count_conflict"):
        return "levels not named: two series of the study count the discs differently"
    if check.get("counted_on_name"):
        return f"levels counted on {check['counted_on_name']}"
    return ""


def model_line(result: AnalysisResult) -> str:
    """The line every draft ends with, so copied text keeps its label."""
    line = f"Draft by {result.model_name} version {result.model_version}"
    if result.synthetic_training:
        line += ", a model trained on synthetic phantom data only"
    return line + "; for radiologist review, not a final report."


def with_model_line(text: str, result: AnalysisResult) -> str:
    """``text`` ending with the model line (added once, whatever backend wrote the text)."""
    line = model_line(result)
    body = text.rstrip()
    return body if body.endswith(line) else f"{body}\n\n{line}"
