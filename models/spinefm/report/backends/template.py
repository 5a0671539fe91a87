"""Deterministic report from the agent outputs alone: the safe default drafter.

No language model, so it cannot invent anything: Technique names the region the
study's DICOM (or, failing that, its images) shows, the series the model read and the
levels in view, Comparison says none was provided, Findings go section by section
then level by level (cranio-caudal), Impression is numbered with the actionable
items first. Conditions in the bundle's hedged band (or, for results without the
bundle's calls, within ``margin`` of ``threshold``) are written as "possible ...,
cannot be excluded". A normal sentence ("alignment is maintained") is written only
where every condition it covers was called absent *and* the bundle's held-out operating
point supports ruling it out (``rule_out``); otherwise the section says the model did
not assess it. A finding whose level the model could not name says "level uncertain".
The last line names the model, its version and whether it was trained on synthetic data.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from spinefm.report.backends.base import Drafter
from spinefm.report.findings import (PRIORITY, URGENT, Finding, coverage_span, level_count_note, level_order,
                                     model_line, region, sequences_used, triage)
from spinefm.results import AnalysisResult, Call

TEMPLATE_VERSION = "1.1"

NORMAL = {
    "alignment": "Alignment: Vertebral alignment is maintained.",
    "marrow": "Vertebral bodies and marrow: Vertebral body heights are maintained. No marrow edema or fracture.",
    "cord": "Cord and conus: No intradural lesion is identified.",
}
TITLE = {"alignment": "Alignment", "marrow": "Vertebral bodies and marrow",
         "cord": "Cord and conus", "other": "Other"}


def _where(f: Finding) -> str:
    return f" at {f.level}" if f.level else " (level uncertain)"


def _ref(f: Finding) -> str:
    """Key-image pointer so the sentence links to its slice in the viewer."""
    if f.key_slice is None:
        return ""
    series = f"{f.series_label} " if f.series_label else ""
    return f" (key image: {series}slice {f.key_slice.slice_index + 1})"


def phrase(f: Finding, with_level: bool = True, with_ref: bool = True) -> str:
    where = _where(f) if with_level else ""
    ref = _ref(f) if with_ref else ""
    if f.status == Call.POSSIBLE:
        return f"Possible {f.display.lower()}{where}{ref}; cannot be excluded."
    return f"{f.display}{where}{ref}."


def _not_assessed(gap: list[Finding] | None, of: int) -> list[str]:
    """A section's conditions the bundle may not call (failed held-out validation).

    Counted, not named: a condition named in the text reads as a finding to report labelers
    (and to a skimming reader); the viewer panel names them, marked "not validated".
    """
    if not gap:
        return []
    if len(gap) >= of:
        return ["Not assessed by the model; review on the images."]
    return [f"{len(gap)} of {of} conditions not assessed by the model; review on the images."]


class TemplateDrafter(Drafter):
    name = "template"

    def __init__(self, threshold: float = 0.5, margin: float = 0.1, disclaimer: bool = False):
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.disclaimer = bool(disclaimer)
        self.version = TEMPLATE_VERSION

    def settings(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "margin": self.margin, "disclaimer": self.disclaimer}

    def draft(self, result: AnalysisResult, slice_embeddings: dict | None = None) -> str:
        findings = triage(result, self.threshold, self.margin)
        shown = [f for f in findings if f.status in (Call.PRESENT, Call.POSSIBLE)]
        # not validated, or called absent where the held-out operating point cannot rule it out
        unassessed = [f for f in findings
                      if f.status == Call.NOT_ASSESSED or (f.status == Call.ABSENT and not f.rule_out)]
        of = Counter(f.section for f in findings)
        ruled_out = any(f.status == Call.ABSENT and f.rule_out for f in findings)
        return "\n".join(self.technique(result) + [""] + self.findings(shown, unassessed, of) + [""]
                         + self.impression(shown, unassessed, ruled_out) + self.footer(result))

    # -- sections -------------------------------------------------------
    def technique(self, result: AnalysisResult) -> list[str]:
        reg = region(result)
        what = f"MRI of the {reg} spine" if reg else "MRI of the spine"
        seqs = sequences_used(result)
        seq = f" Sequences: {', '.join(seqs)}." if seqs else ""
        span, counted = coverage_span(result), level_count_note(result)
        if span:
            view = f" Levels in view: {span} ({counted})." if counted else f" Levels in view: {span}."
        else:
            view = f" {counted[0].upper()}{counted[1:]}." if counted else ""
        lines = [f"TECHNIQUE: {what}.{seq}{view}"]
        if getattr(result, "region_disagreement", ""):
            lines.append(f"REGION: {result.region_disagreement}; verify the region and the levels.")
        return lines + ["COMPARISON: None provided."]

    def findings(self, shown: list[Finding], unassessed: list[Finding], of: dict[str, int]) -> list[str]:
        """Section by section; a section's normal sentence only where the bundle assessed all of
        its conditions (unvalidated ones are counted as not assessed, never called normal);
        ``of``: the bundle's conditions per section."""
        lines = ["FINDINGS:"]
        by_section: dict[str, list[Finding]] = {}
        for f in shown:
            by_section.setdefault(f.section, []).append(f)
        gaps: dict[str, list[Finding]] = {}
        for f in unassessed:
            gaps.setdefault(f.section, []).append(f)
        for sec in ("alignment", "marrow", "cord"):
            items = sorted(by_section.get(sec, []), key=lambda f: level_order(f.level))
            said = [phrase(f) for f in items] + _not_assessed(gaps.get(sec), of.get(sec, 0))
            if said:
                lines.append(f"{TITLE[sec]}: " + " ".join(said))
            elif of.get(sec):  # every condition of the section called absent, and ruled out on held-out data
                lines.append(NORMAL[sec])
        levels: dict[str | None, list[Finding]] = {}
        for f in by_section.get("levels", []):
            levels.setdefault(f.level, []).append(f)
        for lvl in sorted(levels, key=level_order):
            items = levels[lvl]
            head = lvl if lvl else "Level uncertain"
            lines.append(f"{head}: " + " ".join(phrase(f, with_level=False) for f in items))
        if gaps.get("levels"):
            lines.append("Levels: " + " ".join(_not_assessed(gaps["levels"], of["levels"])))
        elif not levels and of.get("levels"):
            lines.append("Levels: No disc herniation, canal or foraminal narrowing is identified.")
        other = [phrase(f) for f in sorted(by_section.get("other", []), key=lambda f: level_order(f.level))]
        other += _not_assessed(gaps.get("other"), of.get("other", 0))
        if other:
            lines.append("Other: " + " ".join(other))
        return lines

    def impression(self, shown: list[Finding], unassessed: list[Finding], ruled_out: bool = True) -> list[str]:
        rank = {k: i for i, k in enumerate(PRIORITY)}
        # definite before possible, then clinical priority, then level
        ordered = sorted(shown, key=lambda f: (f.status != Call.PRESENT, rank.get(f.condition, 99),
                                               level_order(f.level)))
        items = []
        for f in ordered:
            text = phrase(f, with_ref=False)
            if f.condition in URGENT and f.status == Call.PRESENT:
                text += " Urgent clinical correlation is recommended."
            elif f.condition in URGENT:
                text += " Clinical correlation is recommended."
            items.append(text)
        if not items:  # "no abnormality" only about conditions the bundle can rule out on held-out data
            items.append("No abnormality among the assessed spine conditions." if ruled_out
                         else "The model called no finding.")
        if unassessed:  # last: never numbered before an actionable finding
            items.append(f"{len(unassessed)} conditions were not assessed by the model (not validated on held-out data, "
                         "or not ruled out at its held-out operating point); review them on the images.")
        return ["IMPRESSION:"] + [f"{i}. {t}" for i, t in enumerate(items, 1)]

    def footer(self, result: AnalysisResult) -> list[str]:
        extra = ["AI-generated draft for radiologist review; not a final report."] if self.disclaimer else []
        return [""] + extra + [model_line(result)]
