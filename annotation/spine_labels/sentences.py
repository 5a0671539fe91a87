"""Split a report into sentences with offsets, sections and level headers.

Negation and uncertainty are scoped within a sentence, so the split decides
what a cue can reach. Radiology reports break the rules of prose: numbered
impression items, section headers ("FINDINGS:"), per-level headers
("L4-L5: ... . ... ."), hard-wrapped lines, "vs." and decimals. Sentences in
the clinical-history part are the question asked, not a finding, and are
marked so the labeler can skip them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .levels import find_levels

# Sections whose text is not a finding about this study.
NON_FINDING_SECTIONS = frozenset({
    "indication", "indications", "history", "clinical history", "clinical information", "clinical indication",
    "clinical", "reason for exam", "reason for study", "reason", "technique", "comparison", "comparisons",
    "procedure", "exam", "examination", "protocol", "clinical data",
})
FINDING_SECTIONS = frozenset({"findings", "impression", "conclusion", "opinion", "summary", "result", "results"})

_HEADER = re.compile(r"^[ \t]*([A-Za-z][A-Za-z /]{1,40}?)[ \t]*:[ \t]*", re.M)
_LEVEL_HEADER = re.compile(r"^[ \t]*(?:at\s+)?(?:the\s+)?([CTLS]\d{1,2}(?:\s*(?:-|/|\u2013)\s*[CTLS]?\d{1,2})?)"
                           r"(?:\s+(?:level|disc level|interspace))?\s*(?::|-\s|,)", re.I)
_LIST_MARKER = re.compile(r"^[ \t]*(?:\(?\d{1,2}[.)](?!\d)|[-*\u2022])[ \t]+")
_ABBREV = re.compile(r"(?:\b(?:vs|e\.g|i\.e|approx|dr|fig|etc|resp|incl|st|cf))\.$", re.I)


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    text: str
    section: str | None  # lower-case section name, None before any header
    context_levels: tuple[str, ...]  # from an enclosing "L4-L5:" header, if the sentence names none

    @property
    def is_finding(self) -> bool:
        return self.section not in NON_FINDING_SECTIONS


def _section_name(raw: str) -> str | None:
    name = " ".join(raw.lower().split())
    if name in NON_FINDING_SECTIONS or name in FINDING_SECTIONS:
        return name
    return None


def _blocks(text: str) -> list[tuple[int, int]]:
    """Line-based blocks: a hard-wrapped line continues the previous one."""
    lines: list[tuple[int, int]] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        lines.append((pos, pos + len(line.rstrip("\r\n"))))
        pos += len(line)
    blocks: list[list[int]] = []
    prev_blank = True
    for s, e in lines:
        seg = text[s:e]
        if not seg.strip():
            prev_blank = True
            continue
        starts_new = (
            prev_blank or not blocks
            or _LIST_MARKER.match(seg) or _HEADER.match(seg) and _section_name(_HEADER.match(seg).group(1))
            or _LEVEL_HEADER.match(seg)
            or text[blocks[-1][0]:blocks[-1][1]].rstrip()[-1:] in ".:;!?"
            or not seg.lstrip()[:1].islower()
        )
        if starts_new:
            blocks.append([s, e])
        else:
            blocks[-1][1] = e
        prev_blank = False
    return [(s, e) for s, e in blocks]


def _split_block(text: str, s: int, e: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    cur = s
    for m in re.finditer(r"[.!?]+(?=\s+|$)", text[s:e]):
        end = s + m.end()
        head = text[cur:s + m.start() + 1]
        if _ABBREV.search(head) and not re.search(r"\b[CTLS]\d{1,2}\.$", head):
            continue
        if re.fullmatch(r"\s*\(?\d{1,2}[.)]", text[cur:end]):
            continue
        # next char must start a new sentence (upper case, digit, list marker) or end the block
        nxt = text[end:e].lstrip()
        if nxt and not (nxt[0].isupper() or nxt[0].isdigit() or nxt[0] in "-*(\u2022"):
            continue
        out.append((cur, end))
        cur = end
    if text[cur:e].strip():
        out.append((cur, e))
    return out


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of ``text`` with offsets (``text[start:end] == sentence.text``)."""
    sentences: list[Sentence] = []
    section: str | None = None
    for bs, be in _blocks(text):
        # section header at the start of the block
        hm = _HEADER.match(text, bs, be)
        if hm and _section_name(hm.group(1)):
            section = _section_name(hm.group(1))
            bs = hm.end()
        context: tuple[str, ...] = ()
        for ss, se in _split_block(text, bs, be):
            # strip list markers and whitespace
            while True:
                seg = text[ss:se]
                lm = _LIST_MARKER.match(seg)
                hm2 = _HEADER.match(seg)
                if lm:
                    ss += lm.end()
                elif hm2 and _section_name(hm2.group(1)):
                    section = _section_name(hm2.group(1))
                    ss += hm2.end()
                else:
                    break
            seg = text[ss:se]
            lead = len(seg) - len(seg.lstrip())
            ss += lead
            se = ss + len(text[ss:se].rstrip())
            if ss >= se:
                continue
            seg = text[ss:se]
            own = find_levels(seg)
            lh = _LEVEL_HEADER.match(seg)
            if lh:
                context = tuple(x for lm_ in find_levels(lh.group(1)) for x in lm_.levels)
            sentences.append(Sentence(ss, se, seg, section, () if own else context))
    return sentences
