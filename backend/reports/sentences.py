"""A report text as sentences, each linked to the findings it names: what "click a sentence, see its
finding" runs on.

Any text is linked the same way (the template's draft, a language model's, a radiologist's edit): a
sentence names a condition by its registry display name or one of its synonyms (longest phrase first,
plural allowed), and a level as written ("C5-C6", "L4-5", "L5-S1", "T12"). A sentence that names no level
takes the level its line starts with ("C6-C7: Disc herniation."). Links are found again on every version,
so an edited sentence keeps its link while it still names the same condition and level, and loses it
once it does not. The key slice and box of a link come from the analysis result.

Offsets are in UTF-16 code units, the unit of JavaScript strings (the panel selects text with them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spinefm.conditions import CONDITIONS, DISC_LEVELS, VERTEBRAE
from spinefm.results import AnalysisResult, Box, KeySlice

# Sentence ends: . ! ? followed by space and something that starts a sentence. Not after an enumerator
# ("1. ") or a common abbreviation.
_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|vs|approx|cf|Dr|no|Fig)\.|^\s*\d{1,2}[.)])$", re.IGNORECASE)
# A line head that gives context: "C6-C7:" (a level) or "Alignment:" / "FINDINGS:" (a section).
_HEAD = re.compile(r"^\s*(?:\d{1,2}[.)]\s+)?(?P<head>[A-Za-z][A-Za-z0-9 /-]{0,40}):(?=\s|$)")
_LEVEL = re.compile(r"(?<![A-Za-z0-9])([CTLS])(\d{1,2})(?:\s*[-\u2013/]\s*([CTLS])?(\d{1,2}))?(?![A-Za-z0-9])")
# "T1"/"T2" is a sequence, not a vertebra, next to these words.
_SEQUENCE_AFTER = re.compile(r"^[\s-]*(?:w\b|weighted|sag|sagittal|ax|axial|cor|coronal|stir|flair|fs|fat|"
                             r"series|images?|sequences?|tse|fse|se\b|signal|hyper|hypo|dixon|post|pre|\*)",
                             re.IGNORECASE)
_SEQUENCE_BEFORE = re.compile(r"(?:sagittal|axial|coronal|sag|ax|on|and|or|,|/)\s*$", re.IGNORECASE)
_KEY_IMAGE = re.compile(r"\(key image:[^)]*\)", re.IGNORECASE)  # the template's slice pointers
_LEVELS = set(VERTEBRAE) | set(DISC_LEVELS)
# Bare head nouns that name one condition unambiguously, beside the registry's names and synonyms.
HEAD_NOUNS = {"fracture": ("fracture",), "edema": ("edema", "oedema"),
              "herniation": ("herniation", "protrusion", "extrusion"), "hemangioma": ("hemangioma",)}


def _phrases() -> list[tuple[re.Pattern, str]]:
    """(pattern, condition key) for every name and synonym, longest first."""
    out = []
    for c in CONDITIONS:
        for name in {c.display_name.lower(), *(s.lower() for s in c.synonyms), *HEAD_NOUNS.get(c.key, ())}:
            words = r"\s+".join(re.escape(w) for w in name.split())
            out.append((len(name), re.compile(rf"(?<![A-Za-z]){words}(?:e?s)?(?![A-Za-z])", re.IGNORECASE), c.key))
    out.sort(key=lambda item: -item[0])
    return [(pattern, key) for _, pattern, key in out]


_PHRASES = _phrases()


@dataclass
class Sentence:
    start: int  # code-point offsets into the text (converted to UTF-16 in to_dict)
    end: int
    text: str
    head_level: str | None  # the level the sentence's line starts with
    conditions: list[str]
    levels: list[str]


def _normalise_level(first: str, n1: str, second: str | None, n2: str | None) -> str | None:
    upper = f"{first}{int(n1)}"
    if n2 is None:
        return upper if upper in _LEVELS else None
    level = f"{upper}-{second or first}{int(n2)}"
    return level if level in _LEVELS else None


def levels_in(text: str) -> list[str]:
    """Spinal levels a text names, in order, without repeats; sequence names (T1, T2) are not levels."""
    clean = _KEY_IMAGE.sub(lambda m: " " * len(m.group(0)), text)
    found: list[str] = []
    for m in _LEVEL.finditer(clean):
        disc = m.group(4) is not None
        if not disc and m.group(1) == "T" and m.group(2) in ("1", "2"):
            after, before = clean[m.end():m.end() + 12], clean[max(0, m.start() - 12):m.start()]
            if _SEQUENCE_AFTER.match(after) or _SEQUENCE_BEFORE.search(before) or not after.strip(" .,;"):
                continue
        level = _normalise_level(m.group(1), m.group(2), m.group(3), m.group(4))
        if level and level not in found:
            found.append(level)
    return found


def conditions_in(text: str) -> list[str]:
    """Condition keys a text names (longest phrase wins where two overlap), in order of appearance."""
    taken: list[tuple[int, int, str]] = []
    for pattern, key in _PHRASES:
        for m in pattern.finditer(text):
            if all(m.end() <= s or m.start() >= e for s, e, _ in taken):
                taken.append((m.start(), m.end(), key))
    ordered = []
    for _, _, key in sorted(taken):
        if key not in ordered:
            ordered.append(key)
    return ordered


def _split_line(line: str, offset: int) -> list[tuple[int, int]]:
    """(start, end) of each sentence of one line; the first one starts at the line's start."""
    spans, start = [], 0
    for m in _END.finditer(line):
        if _ABBREVIATION.search(line[start:m.start()]):
            continue
        spans.append((start, m.start()))
        start = m.end()
    if line[start:].strip():
        spans.append((start, len(line.rstrip())))
    return [(offset + s, offset + e) for s, e in spans if line[s:e].strip()]


def split(text: str) -> list[Sentence]:
    """Every sentence of ``text`` with what it names; headings alone ("FINDINGS:") are not sentences."""
    sentences: list[Sentence] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        head = _HEAD.match(body)
        head_levels = levels_in(head.group("head")) if head else []
        head_level = head_levels[0] if len(head_levels) == 1 else None
        if head and not body[head.end():].strip():
            offset += len(line)
            continue  # a section heading on its own line
        for s, e in _split_line(body, offset):
            part = text[s:e]
            sentences.append(Sentence(s, e, part, head_level, conditions_in(part), levels_in(part)))
        offset += len(line)
    return sentences


def _utf16(text: str) -> list[int]:
    """UTF-16 offset of every code-point offset 0..len(text)."""
    table, at = [0], 0
    for ch in text:
        at += 2 if ord(ch) > 0xFFFF else 1
        table.append(at)
    return table


def _best(items: list[Box] | list[KeySlice], condition: str, level: str | None):
    """The highest-scoring item of ``condition`` at ``level`` (items without a level match any level)."""
    fits = [i for i in items if i.condition == condition
            and (level is None or not getattr(i, "level", None) or i.level == level)]
    return max(fits, key=lambda i: i.score or 0.0) if fits else None


def _target(item, keys: tuple[str, ...]) -> dict | None:
    return {k: getattr(item, k) for k in keys} if item else None


def link(text: str, analysis: AnalysisResult | None) -> list[dict]:
    """The sentences of ``text`` as the panel takes them: UTF-16 offsets, and one link per condition
    named and level (the sentence's own levels, else its line's level, else the model's level for it),
    with the result's key slice and box for that condition and level where it has them."""
    conditions = analysis.conditions if analysis else []
    predicted = {c.condition: c for c in conditions}
    key_slices, boxes = (analysis.key_slices, analysis.boxes) if analysis else ([], [])
    units = _utf16(text)
    out = []
    for n, s in enumerate(split(text)):
        links = []
        for condition in s.conditions:
            model_level = predicted[condition].level if condition in predicted else None
            for level in s.levels or ([s.head_level] if s.head_level else [None]):
                box = _best(boxes, condition, level or model_level)
                links.append({
                    "condition": condition,
                    "level": level,
                    # the model's own finding of this condition, when the sentence names its level (or none)
                    "matches_model": condition in predicted and (level is None or not model_level
                                                                 or level == model_level),
                    "key_slice": _target(_best(key_slices, condition, None),
                                         ("series_instance_uid", "sop_instance_uid", "slice_index")),
                    "box": _target(box, ("series_instance_uid", "sop_instance_uid", "box", "level")),
                })
        out.append({"index": n, "start": units[s.start], "end": units[s.end], "text": s.text, "links": links})
    return out
