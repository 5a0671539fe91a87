"""Spinal level mentions: find them, normalise them, group coordinated ones.

Reports write the same disc level many ways ("L4-5", "L4/L5", "L4-L5",
"L4 on L5") and T1/T2 are both thoracic vertebrae and MR sequences; the
labeler must not read "T2 hyperintense" as a level. Output uses the
registry's spelling ("L4-L5", "C7-T1", "L3") so labels join with the rest
of SpineAgent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spinefm.conditions import VERTEBRAE

MULTILEVEL = "multilevel"

_MAX = {"C": 7, "T": 12, "L": 5, "S": 5}
_ORDER = {v: i for i, v in enumerate(VERTEBRAE)}

_V = r"([CTLS])\s?(\d{1,2})"
_SEP = r"\s*(?:-|\u2013|\u2014|/|\bto\b|\bthrough\b|\bthru\b|\bon\b)\s*"
_PAIR = re.compile(r"(?<![A-Za-z0-9])" + _V + "(?:" + _SEP + r"([CTLS])?\s?(\d{1,2}))?(?![A-Za-z0-9*])", re.I)
_MULTI = re.compile(r"\b(?:multi-?level|multiple levels|several levels|all levels|every level|throughout the (?:cervical|thoracic|lumbar) spine)\b", re.I)
# After "T1"/"T2": words that make it an MR sequence, not a vertebra.
_SEQ_AFTER = re.compile(
    r"\s*(?:-|/)?\s*(?:weighted|w\b|wi\b|signal|hyper|hypo|iso|bright|dark|images?|sequences?|flair|stir|fat|post|pre|"
    r"shine|shortening|prolongation|\*|(?:and|/|-)\s*t[12]\s*-?\s*(?:hyper|hypo|weighted|w\b|signal|images?|sequences?))",
    re.I,
)
_SEQ_BEFORE = re.compile(r"(?:\bon|\bpost-?contrast|\bsagittal|\baxial|\bcoronal|\bfat-?sat(?:urated)?)\s*$", re.I)


@dataclass(frozen=True)
class LevelMention:
    start: int
    end: int
    text: str
    levels: tuple[str, ...]
    # the vertebrae covered ("T4 to T8" -> T4..T8): what a vertebra- or cord-level finding should use for a range
    vertebrae: tuple[str, ...] = ()
    is_range: bool = False  # written as a range ("L2-L5", "from T4 to T8"), not a list


def _vert(letter: str, num: str) -> str | None:
    letter = letter.upper()
    n = int(num)
    if n < 1 or n > _MAX[letter]:
        return None
    return f"{letter}{n}"


def _span(a: str, b: str) -> tuple[str, ...]:
    """Disc levels from vertebra a to vertebra b ("L2","L5" -> L2-L3, L3-L4, L4-L5)."""
    ia, ib = _ORDER.get(a), _ORDER.get(b)
    if ia is None or ib is None or ib <= ia:
        return ()
    return tuple(f"{VERTEBRAE[i]}-{VERTEBRAE[i + 1]}" for i in range(ia, ib))


def _vert_span(a: str, b: str) -> tuple[str, ...]:
    ia, ib = _ORDER[a], _ORDER[b]
    return tuple(VERTEBRAE[ia:ib + 1])


def _is_sequence(text: str, m: re.Match) -> bool:
    if m.group(1).upper() != "T" or m.group(2) not in ("1", "2"):
        return False
    after = text[m.end(2):m.end(2) + 24]
    if _SEQ_AFTER.match(after):
        return True
    return bool(_SEQ_BEFORE.search(text[max(0, m.start() - 20):m.start()]))


def find_levels(text: str) -> list[LevelMention]:
    """All level mentions in ``text`` with offsets and normalised levels."""
    out: list[LevelMention] = []
    for m in _PAIR.finditer(text):
        if _is_sequence(text, m):
            continue
        a = _vert(m.group(1), m.group(2))
        if a is None:
            continue
        if m.group(4) is not None:
            letter_b = m.group(3) or m.group(1)
            b = _vert(letter_b, m.group(4))
            if b is not None and b in ("T1", "T2") and _SEQ_AFTER.match(text[m.end():m.end() + 24]):
                b = None  # "T1/T2 hyperintense": sequences, not a level pair
                if a in ("T1", "T2"):
                    continue
            if b is not None:
                levels = _span(a, b)
                if levels:
                    out.append(LevelMention(m.start(), m.end(), m.group(0), levels, _vert_span(a, b), len(levels) > 1))
                    continue
            # not a valid pair: keep the first vertebra only
            out.append(LevelMention(m.start(), m.end(2), text[m.start():m.end(2)], (a,), (a,)))
            continue
        out.append(LevelMention(m.start(), m.end(), m.group(0), (a,), (a,)))
    for m in _MULTI.finditer(text):
        out.append(LevelMention(m.start(), m.end(), m.group(0), (MULTILEVEL,)))
    out.sort(key=lambda x: x.start)
    return out


_RANGE = re.compile(r"^\s*(?:-|\u2013|to|through|thru)\s*$", re.I)
_COORD = re.compile(r"^(?:\s*,\s*|\s*,?\s*(?:and|or|as well as|&)\s+|\s+)(?:(?:the|at)\s+)?(?:levels?\s+)?$", re.I)


def group_levels(text: str, mentions: list[LevelMention]) -> list[LevelMention]:
    """Merge coordinated mentions ("L4-L5 and L5-S1", "L3-4, L4-5, and L5-S1") into one group."""
    groups: list[LevelMention] = []
    for lm in mentions:
        if groups and _RANGE.match(text[groups[-1].end:lm.start]) and groups[-1].vertebrae and lm.vertebrae \
                and MULTILEVEL not in groups[-1].levels + lm.levels:
            # "T12-L1 through L2-L3": every disc level from the first to the last
            g = groups[-1]
            a, b = g.vertebrae[0], lm.vertebrae[-1]
            levels = _span(a, b)
            if levels:
                groups[-1] = LevelMention(g.start, lm.end, text[g.start:lm.end], levels, _vert_span(a, b), True)
                continue
        if groups and _COORD.match(text[groups[-1].end:lm.start]) is not None:
            g = groups[-1]
            merged = g.levels + tuple(x for x in lm.levels if x not in g.levels)
            verts = g.vertebrae + tuple(x for x in lm.vertebrae if x not in g.vertebrae)
            groups[-1] = LevelMention(g.start, lm.end, text[g.start:lm.end], merged, verts)
        else:
            groups.append(lm)
    return groups
