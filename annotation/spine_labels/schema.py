"""The label records every labeler returns, and their JSON form.

One shape for rule, LLM and human labels so that the annotation app can diff
them, store them, and compute agreement without knowing who produced them.
Every label keeps its source and labeler version: a label without provenance
cannot be audited when a labeler is changed or found wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from spinefm import conditions as _registry
from spinefm.conditions import LabelValue

VALID_VALUES = tuple(int(v) for v in LabelValue)  # (1, 0, -1), plain ints as messages show them

SOURCE_RULES = "rules"
SOURCE_LLM = "llm"
SOURCE_FALLBACK = "llm-fallback-rules"
SOURCE_HUMAN = "human"
# The level key of a condition's per-level labels when no mention agreeing with its label names a level.
STUDY_LEVEL = "study"


@dataclass
class Evidence:
    """One mention of a condition in the report.

    ``start``/``end`` are character offsets into the full report text
    (``text == report[start:end]``); ``sentence`` is the whole sentence for a
    reviewer; ``level`` lists normalised levels ("L4-L5", "L3", "multilevel");
    ``value`` is this mention's own polarity (the label aggregates mentions);
    ``cue`` is the negation/uncertainty cue that decided it, if any.
    """

    start: int
    end: int
    text: str
    level: list[str] = field(default_factory=list)
    severity: str | None = None
    cue: str | None = None
    value: int = LabelValue.PRESENT
    sentence: str = ""
    sentence_start: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start, "end": self.end, "text": self.text, "level": list(self.level),
            "severity": self.severity, "cue": self.cue, "value": self.value,
            "sentence": self.sentence, "sentence_start": self.sentence_start,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Evidence":
        return cls(
            start=int(d["start"]), end=int(d["end"]), text=d["text"], level=list(d.get("level") or []),
            severity=d.get("severity"), cue=d.get("cue"), value=int(d.get("value", LabelValue.PRESENT)),
            sentence=d.get("sentence", ""), sentence_start=int(d.get("sentence_start", 0)),
        )


@dataclass
class Label:
    """The ternary label of one condition with its evidence and provenance."""

    condition: str
    value: int
    evidence: list[Evidence] = field(default_factory=list)
    source: str = SOURCE_RULES
    labeler_version: str = ""
    flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.value not in VALID_VALUES:
            raise ValueError(f"{self.condition}: label value {self.value!r} not in {VALID_VALUES}")

    @property
    def levels(self) -> list[str]:
        """Levels of the mentions that agree with the label value, in report order, unique."""
        out: list[str] = []
        for ev in self.evidence:
            if ev.value == self.value:
                out.extend(lv for lv in ev.level if lv not in out)
        return out

    @property
    def severity(self) -> str | None:
        """Most severe severity among mentions that agree with the label value."""
        order = ["mild", "mild-moderate", "moderate", "moderate-severe", "severe"]
        found = [ev.severity for ev in self.evidence if ev.value == self.value and ev.severity in order]
        return max(found, key=order.index) if found else None

    def level_values(self) -> dict[str, int]:
        """{level: value}, the condition x level labels of one report, in report order.

        Every level a mention names gets the aggregate of the mentions naming it (present if any is,
        else uncertain if any is, else absent: the condition's own rule); STUDY_LEVEL carries the
        condition's value when no mention agreeing with it names a level ("canal stenosis." ->
        {"study": 1}; nothing said -> {"study": 0}). A level a report does not name is absent there.
        """
        named: dict[str, list[int]] = {}
        for ev in self.evidence:
            for lv in ev.level:
                named.setdefault(lv, []).append(ev.value)
        out = {lv: LabelValue.aggregate(vs) for lv, vs in named.items()}
        if not self.levels:
            out[STUDY_LEVEL] = self.value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "condition": self.condition, "value": self.value,
            "evidence": [e.to_dict() for e in self.evidence],
            "source": self.source, "labeler_version": self.labeler_version, "flags": list(self.flags),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Label":
        return cls(
            condition=d["condition"], value=int(d["value"]),
            evidence=[Evidence.from_dict(e) for e in d.get("evidence", [])],
            source=d.get("source", SOURCE_RULES), labeler_version=d.get("labeler_version", ""),
            flags=list(d.get("flags") or []),
        )


@dataclass
class LabelSet:
    """Labels for every condition of one report.

    ``source``/``labeler_version`` describe the labeler asked; individual
    labels may differ (an LLM run that fell back to rules for one condition).
    ``meta`` keeps diagnostics such as LLM attempts and validation errors.
    """

    labels: dict[str, Label]
    source: str = SOURCE_RULES
    labeler_version: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Label:
        return self.labels[key]

    def __iter__(self) -> Iterator[Label]:
        return iter(self.labels.values())

    def __len__(self) -> int:
        return len(self.labels)

    def as_dict(self) -> dict[str, int]:
        """{condition: 1/0/-1}, the form ground truth and analytics use."""
        return {k: lab.value for k, lab in self.labels.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "labeler_version": self.labeler_version, "meta": self.meta,
            "labels": {k: lab.to_dict() for k, lab in self.labels.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelSet":
        return cls(
            labels={k: Label.from_dict(v) for k, v in d["labels"].items()},
            source=d.get("source", SOURCE_RULES), labeler_version=d.get("labeler_version", ""),
            meta=dict(d.get("meta") or {}),
        )

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_json(cls, s: str) -> "LabelSet":
        return cls.from_dict(json.loads(s))


def condition_keys() -> tuple[str, ...]:
    """The registry's keys, read at call time so a site's added conditions are included."""
    return tuple(c.key for c in _registry.CONDITIONS)
