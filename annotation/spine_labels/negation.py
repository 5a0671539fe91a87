"""Negation and uncertainty cues and their scope within a sentence.

In the spirit of NegEx / NegBio / the CheXpert labeler, without a parser:
a cue scopes forward ("no ...", "possible ...") or backward ("... is not
seen", "... cannot be excluded") until a termination cue ("but",
"however", "which", ";", ", mild ...") ends the clause. Pseudo-cues
("no more than mild", "no interval change in") are masked first so they
do not negate; uncertainty cues are matched before negation cues because
several contain a negation word ("not excluded", "cannot rule out").
A forward cue with nothing after it in its clause ("..., cannot exclude.")
scopes backward instead. When several cues reach a mention, the nearest
one decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spinefm.conditions import LabelValue

FWD, BWD, BOTH = "fwd", "bwd", "both"

PSEUDO = (
    r"\bno\s+more\s+than\b", r"\bnot\s+more\s+than\b", r"\bno\s+greater\s+than\b", r"\bnot\s+greater\s+than\b",
    r"\b(?:no|without)\s+(?:significant\s+|appreciable\s+|substantial\s+|definite\s+)?(?:interval\s+)?"
    r"(?:change|changes|increase|progression|worsening|decrease|improvement)\b",
    r"\bnot\s+(?:significantly\s+|substantially\s+)?(?:changed|increased|progressed|worsened)\b",
    r"\bnot\s+only\b", r"\bno\s+further\b", r"\bnot\s+necessarily\b", r"\bgram[- ]negative\b",
    r"\bnot\s+(?:well\s+)?(?:assessed|evaluated|imaged|included)\b",
)

# Negated uncertainty ("not suspicious for") is a negation; matched before the uncertainty cues.
NEGATION_FIRST: tuple[tuple[str, str], ...] = (
    (r"\bnot\s+(?:suspicious|concerning|worrisome)\s+(?:for|of)\b|\bnot\s+suggestive\s+of\b|"
     r"\bno\s+(?:findings?|features?|signs?)\s+(?:suspicious|concerning|suggestive)\s+(?:for|of)\b", FWD),
    (r"\b(?:no|without|nothing)\b(?:\s+[\w-]+){0,4}?\s+to\s+suggest\b", FWD),
)

UNCERTAIN_CUES: tuple[tuple[str, str], ...] = (
    # backward: "<mention> cannot be excluded"
    (r"\b(?:cannot|can\s*not|can't|could\s+not)\s+be\s+(?:entirely\s+|completely\s+|definitely\s+)?(?:excluded|ruled\s+out|exclude)\b", BWD),
    (r"\b(?:is|are)\s+not\s+(?:entirely\s+|completely\s+|definitely\s+)?(?:excluded|ruled\s+out)\b", BWD),
    (r"\bnot\s+(?:entirely\s+|completely\s+)?(?:excluded|ruled\s+out)\b", BWD),
    (r"\b(?:is|are)\s+(?:also\s+)?(?:possible|suspected|questioned|questionable|equivocal|favou?red|"
     r"a\s+consideration|considered|not\s+certain|uncertain|indeterminate)\b", BWD),
    (r"\bcould\s+be\s+present\b|\bmay\s+be\s+present\b", BWD),
    # forward
    (r"\b(?:cannot|can\s*not|can't|could\s+not)\s+(?:exclude|rule\s+out)\b", FWD),
    (r"\b(?:may|might|could)\s+(?:represent|reflect|be|indicate|relate|correspond|suggest)\b", FWD),
    (r"\b(?:possible|possibly|probable|probably|presumed|presumably|likely|unlikely|questionable|"
     r"equivocal|indeterminate|borderline|suspected|suspect|query)\b", FWD),
    (r"\bsuspicious\s+(?:for|of)\b|\bconcerning\s+for\b|\bworrisome\s+for\b|\bsuggestive\s+of\b|\bsuggest(?:s|ing)?\b", FWD),
    (r"\bsuggestion\s+of\b|\bquestion\s+of\b|\brule\s+out\b|\br/o\b|\bdifferential(?:\s+diagnosis)?\s+(?:includes?|considerations?)\b", FWD),
    (r"\b(?:versus|vs\.?)(?=\s)", BOTH),
)

NEGATION_CUES: tuple[tuple[str, str], ...] = (
    # backward: "<mention> is not seen", "<mention> has resolved"
    (r"\b(?:is|are|was|were)\s+no\s+longer\s+(?:seen|visualized|visualised|present|evident|identified|apparent)\b", BWD),
    (r"\bno\s+longer\s+(?:seen|visualized|visualised|present|evident|identified|apparent)\b", BWD),
    (r"\b(?:is|are|was|were)\s+not\s+(?:clearly\s+|definitely\s+|convincingly\s+|well\s+)?"
     r"(?:seen|identified|visualized|visualised|present|demonstrated|appreciated|evident|detected|noted|apparent)\b", BWD),
    (r"\bnot\s+(?:clearly\s+|definitely\s+|convincingly\s+)?(?:seen|identified|visualized|visualised|present|demonstrated|"
     r"appreciated|evident|detected|noted|apparent)\b", BWD),
    (r"\b(?:has|have|had)\s+(?:since\s+|completely\s+|largely\s+)?resolved\b|\bresolved\b", BWD),
    (r"\b(?:is|are|was|were)\s+(?:absent|excluded|ruled\s+out)\b|\bruled\s+out\b", BWD),
    (r"(?::\s*|\bis\s+|\bare\s+)(?:none|negative|absent)\b", BWD),
    (r"\b(?:is|are|was|were)\s+not\b", BWD),
    # forward
    (r"\bno\s+(?:evidence|signs?|findings?)\s+(?:of|for|to\s+suggest)\b", FWD),
    (r"\bnegative\s+for\b|\bfree\s+of\b|\babsence\s+of\b|\bresolution\s+of\b|\brather\s+than\b|\binstead\s+of\b", FWD),
    (r"\bwithout\b|\bno\b|\bnot\b|\bnor\b|\bneither\b|\bnone\b|\babsent\b|\bdenies\b|\bnegative\b", FWD),
)

_SEVERITY_START = r"(?:mild|moderate|severe|minimal|slight|marked|small|large|tiny|grade|high-grade|focal)"
TERMINATION = (
    r"\bbut\b", r"\bhowever\b", r"\balthough\b", r"\bthough\b", r"\bwhich\b", r"\bwhereas\b", r"\bwhile\b",
    r"\bexcept\b", r"\baside\s+from\b", r"\bapart\s+from\b", r"\bother\s+than\b", r"\byet\b",
    r"\bresult(?:s|ing)?\s+in\b", r"\bcausing\b", r"\bcauses\b", r"\bwith\s+resultant\b", r"\bproducing\b",
    r"\bcontribut(?:es|ing)\s+to\b", r"\bthere\s+(?:is|are)\b", r";",
    r",\s*(?:and\s+)?(?=" + _SEVERITY_START + r"\b)", r"\band\s+(?=" + _SEVERITY_START + r"\b)",
    r",\s*with\b", r",\s*(?:and\s+)?(?:likely|probably|possibly)\b", r",\s*which\b",
    r"\b(?:is|are|was|were)\s+(?:seen|noted|present|identified|demonstrated|maintained|preserved|normal)\b",
    r"\band\s+(?:the|there)\b",
)
# A cue reaches at most this many words (NegEx uses a window; long sentences otherwise leak).
MAX_SCOPE_WORDS = 10
# backward scopes also stop at a comma
BWD_EXTRA_TERMINATION = (r",",)


# After a trailing cue only punctuation, or a bare location ("at L4-L5", "at this level"), may follow.
_TRAILING = re.compile(r"\s*(?:(?:at|in|of)\s+(?:the\s+)?(?:this\s+level|[CTLS]\d{1,2}(?:\s*(?:-|/|and|,|to)\s*[CTLS]?\d{1,2})*"
                       r"(?:\s+(?:level|vertebral\s+body))?)\s*)?(?:[;.!?]|$)", re.I)


@dataclass(frozen=True)
class Cue:
    start: int
    end: int
    text: str
    kind: str  # "neg" | "unc"
    direction: str
    trailing: bool = False  # a forward cue with nothing after it in its clause ("X, cannot exclude.")


def _mask(s: str, spans: list[tuple[int, int]]) -> str:
    chars = list(s)
    for a, b in spans:
        for i in range(a, b):
            chars[i] = "\x00"
    return "".join(chars)


def find_cues(sentence: str) -> tuple[list[Cue], list[tuple[int, int]], list[tuple[int, int]]]:
    """Cues in a sentence, plus termination spans for forward and backward scopes."""
    taken: list[tuple[int, int]] = []
    for p in PSEUDO:
        taken.extend((m.start(), m.end()) for m in re.finditer(p, sentence, re.I))
    cues: list[Cue] = []
    for kind, table in (("neg", NEGATION_FIRST), ("unc", UNCERTAIN_CUES), ("neg", NEGATION_CUES)):
        for pat, direction in table:
            masked = _mask(sentence, taken)
            for m in re.finditer(pat, masked, re.I):
                trailing = direction == FWD and _TRAILING.match(sentence, m.end()) is not None
                cues.append(Cue(m.start(), m.end(), sentence[m.start():m.end()], kind, BWD if trailing else direction,
                                trailing))
                taken.append((m.start(), m.end()))
    term = sorted((m.start(), m.end()) for p in TERMINATION for m in re.finditer(p, sentence, re.I))
    bterm = sorted(term + [(m.start(), m.end()) for p in BWD_EXTRA_TERMINATION for m in re.finditer(p, sentence)])
    cues.sort(key=lambda c: c.start)
    return cues, term, bterm


def _blocked(sentence: str, a: int, b: int, terms: list[tuple[int, int]]) -> bool:
    if len(re.findall(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*", sentence[a:b])) > MAX_SCOPE_WORDS:
        return True
    return any(a <= t0 and t1 <= b for t0, t1 in terms)


def classify(sentence: str, start: int, end: int, cues: list[Cue], term: list[tuple[int, int]],
             bterm: list[tuple[int, int]]) -> tuple[int, Cue | None]:
    """Value of the mention at [start, end) of the sentence and the cue that decided it."""
    best: tuple[int, int, Cue] | None = None  # (distance, priority, cue)
    for c in cues:
        dist = None
        if c.direction in (FWD, BOTH):
            if c.start <= start and not _blocked(sentence, c.end, start, term if c.direction == FWD else bterm):
                dist = max(0, start - c.end)
            elif start < c.start < end:  # cue inside the mention ("canal is not narrowed")
                dist = 0
        if dist is None and c.direction in (BWD, BOTH):
            # a trailing cue can only refer back, so it may cross a comma ("fracture of L2, cannot exclude")
            if c.start >= end and not _blocked(sentence, end, c.start, term if c.trailing else bterm):
                dist = c.start - end
            elif start < c.start < end:
                dist = 0
        if dist is None:
            continue
        cand = (dist, 0 if c.kind == "unc" else 1, c)
        if best is None or cand[:2] < best[:2]:
            best = cand
    if best is None:
        return LabelValue.PRESENT, None
    return (LabelValue.UNCERTAIN if best[2].kind == "unc" else LabelValue.ABSENT), best[2]
