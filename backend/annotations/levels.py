"""Verified labels per condition x level: validation, the derived per-condition label, comparison.

``level_labels`` is {condition: {level: 1 | 0 | -1}}. A level is a registry level ("L4-L5", "L3": the
model's level head's ``LEVELS``), ``"multilevel"`` (the rule labeler's word for "multiple levels") or
``"study"`` (spine_labels.STUDY_LEVEL: the finding named without a level, or nothing said). A condition
whose registry entry has no level kind may only carry "study" (every condition of the shipped registry
has one). A level an annotation does not list is absent there, as in the draft-vs-signed agreement.

The per-condition ``labels`` every older consumer reads are derived (:func:`condition_value`): present
if present at any level, absent if absent at every level, else uncertain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spine_labels import STUDY_LEVEL
from spine_labels.levels import MULTILEVEL
from spine_labels.schema import VALID_VALUES, Label, condition_keys
from spinefm.conditions import DISC_LEVELS, VERTEBRAE, LabelValue, get_condition

# spinefm.heads.level.LEVELS without importing torch on every request.
SPINE_LEVELS: tuple[str, ...] = VERTEBRAE + DISC_LEVELS
KNOWN_LEVELS: tuple[str, ...] = (STUDY_LEVEL, *SPINE_LEVELS, MULTILEVEL)
_RANK = {lv: i for i, lv in enumerate(KNOWN_LEVELS)}


def levels_for(condition: str) -> tuple[str, ...]:
    """The levels an annotator may give ``condition``: "study" only when its registry entry has no level kind."""
    try:
        kind = get_condition(condition).level_kind
    except KeyError:
        return (STUDY_LEVEL,)
    return KNOWN_LEVELS if kind else (STUDY_LEVEL,)


def ordered(levels) -> list[str]:
    """Study first, then cranio-caudal (L4, L4-L5, L5 ... as ``KNOWN_LEVELS`` lists them), then multilevel."""
    return sorted(levels, key=lambda lv: _RANK.get(lv, len(_RANK)))


def condition_value(values: Mapping[str, int]) -> int:
    """The per-condition label of one condition's per-level values."""
    vs = set(values.values())
    if LabelValue.PRESENT in vs:
        return LabelValue.PRESENT
    if vs <= {LabelValue.ABSENT}:
        return LabelValue.ABSENT
    return LabelValue.UNCERTAIN


def derive(level_labels: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    return {k: condition_value(v) for k, v in level_labels.items()}


def study_only(labels: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Per-condition labels without levels (older rows, API callers that send none): all at "study"."""
    return {k: {STUDY_LEVEL: int(v)} for k, v in labels.items()}


def normal(values: Mapping[str, int]) -> dict[str, int]:
    """What one condition's per-level labels say: the non-absent levels ({"study": 0} == {"L4-L5": 0} == {})."""
    return {lv: v for lv, v in values.items() if v != LabelValue.ABSENT}


def same(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return normal(a) == normal(b)


def merge(many: list[Mapping[str, int]]) -> dict[str, int]:
    """Agreeing annotations' per-level labels of one condition: every level any lists (absent where not said)."""
    out: dict[str, int] = {}
    for values in many:
        for lv, v in values.items():
            if out.get(lv, LabelValue.ABSENT) == LabelValue.ABSENT:
                out[lv] = v
    return {lv: out[lv] for lv in ordered(out)}


def of_annotation(annotation) -> dict[str, dict[str, int]]:
    """An annotation's (or verified row's) per-level labels; rows made before levels existed: "study"."""
    return annotation.level_labels or study_only(annotation.labels)


def extraction_levels(extraction) -> dict[str, dict[str, int]]:
    """{condition: {level: value}} the labeler found (``Label.level_values``: "study" when it names no level)."""
    out = {}
    for key, raw in ((extraction.labels.get("labels") or {}) if extraction is not None else {}).items():
        try:
            label = Label.from_dict({**raw, "condition": key})
        except (KeyError, TypeError, ValueError):
            continue
        values = label.level_values()
        allowed = levels_for(key)
        out[key] = {lv: values[lv] for lv in ordered(values) if lv in allowed} or {STUDY_LEVEL: label.value}
    return out


def validate(level_labels: Any, labels: Any, invalid) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(labels, level_labels) for every registry condition, or ``invalid(detail, field=...)`` raised.

    ``level_labels`` may cover some conditions (the others come from ``labels`` at "study"); where
    both are sent for a condition, ``labels`` must equal the value derived from its levels.
    """
    if level_labels is None:
        level_labels = {}
    if not isinstance(level_labels, Mapping):
        raise invalid("level_labels must be an object {condition: {level: 1 | 0 | -1}}", field="level_labels")
    keys = condition_keys()
    unknown = sorted(str(k) for k in level_labels if k not in keys)
    if unknown:
        raise invalid(f"level_labels: unknown condition(s): {', '.join(unknown)}", field="level_labels",
                      unknown=unknown)
    clean: dict[str, dict[str, int]] = {}
    for key, values in level_labels.items():
        name = f"level_labels.{key}"
        if not isinstance(values, Mapping) or not values:
            raise invalid(f"{name} must be a non-empty object {{level: 1 | 0 | -1}}", field=name)
        allowed = levels_for(key)
        for lv, v in values.items():
            if lv not in allowed:
                what = ("has no levels: use \"study\"" if allowed == (STUDY_LEVEL,)
                        else "must be \"study\", a spinal level such as L4-L5 or L3, or \"multilevel\"")
                raise invalid(f"{name}: unknown level {str(lv)[:40]!r}; {key} {what}", field=f"{name}.{str(lv)[:40]}")
            if isinstance(v, bool) or not isinstance(v, int) or v not in VALID_VALUES:
                raise invalid(f"{name}.{lv}: value must be 1 (present), 0 (absent) or -1 (uncertain), not {v!r}",
                              field=f"{name}.{lv}")
        clean[key] = {lv: int(values[lv]) for lv in ordered(values)}
    if labels is not None and not isinstance(labels, Mapping):
        raise invalid("labels must be an object {condition: 1 | 0 | -1}", field="labels")
    labels = dict(labels or {})
    for key, values in clean.items():
        derived = condition_value(values)
        if key in labels and labels[key] != derived:
            raise invalid(f"labels.{key} = {labels[key]!r} contradicts level_labels.{key} (which make it {derived})",
                          field=f"labels.{key}")
        labels[key] = derived
    return labels, clean
