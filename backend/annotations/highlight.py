"""Report text cut into segments at evidence offsets, for highlighting without building HTML by hand.

The template escapes every segment's text itself, so report text can never
inject markup. Overlapping spans are handled by cutting at every boundary:
each segment lists all the evidence that covers it. Offsets outside the text
or empty spans are ignored rather than trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spinefm.conditions import LABEL_NAMES, LabelValue


@dataclass
class Span:
    start: int
    end: int
    condition: str
    value: int


@dataclass
class Segment:
    text: str
    spans: list[Span] = field(default_factory=list)

    @property
    def conditions(self) -> str:
        return " ".join(sorted({s.condition for s in self.spans}))

    @property
    def kind(self) -> str:
        """The strongest polarity covering it: present > uncertain > absent (CSS class suffix)."""
        values = {s.value for s in self.spans}
        for v in (LabelValue.PRESENT, LabelValue.UNCERTAIN, LabelValue.ABSENT):
            if v in values:
                return LABEL_NAMES[v]
        return ""

    @property
    def title(self) -> str:
        return "; ".join(f"{s.condition}: {LABEL_NAMES.get(s.value, s.value)}" for s in self.spans)


def spans_of(extraction_labels: dict) -> list[Span]:
    """Evidence of a stored LabelSet JSON as spans (malformed entries skipped)."""
    out = []
    for key, label in ((extraction_labels or {}).get("labels") or {}).items():
        for ev in label.get("evidence") or []:
            try:
                out.append(Span(int(ev["start"]), int(ev["end"]), str(key), int(ev.get("value", LabelValue.PRESENT))))
            except (KeyError, TypeError, ValueError):
                continue
    return out


def segments(text: str, spans: list[Span]) -> list[Segment]:
    n = len(text)
    good = [s for s in spans if 0 <= s.start < s.end <= n]
    cuts = sorted({0, n, *(s.start for s in good), *(s.end for s in good)})
    out = []
    for a, b in zip(cuts, cuts[1:]):
        out.append(Segment(text[a:b], [s for s in good if s.start <= a and b <= s.end]))
    return out
