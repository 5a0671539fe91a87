"""Mention lexicon: which words in a sentence name which condition.

The registry's synonyms (spinefm.conditions) are the base, so a condition a
site adds is found by its synonyms without touching this file. This module
adds what a literal synonym list cannot express in spine radiology:

* the narrowing family. "Stenosis" alone means the central canal unless
  "foraminal", "subarticular" or "lateral recess" qualifies it, and one head
  noun can carry several sites ("moderate canal and left foraminal
  stenosis"); "disc space narrowing" is disc height loss, not stenosis;
* extra phrasings per condition (EXTRA_PATTERNS), and vetoes for phrases
  that contain a mention but mean something else ("compression fracture" is
  not cord compression, "synovial cyst" is not an "other cyst",
  "prevertebral edema" is not marrow edema);
* registry synonyms too broad to use as mentions ("epidural fat" is normal
  anatomy; only excess epidural fat is lipomatosis).

"Disc bulge" is deliberately absent: a bulge is not a herniation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spinefm import conditions as registry

# Registry synonyms not used as literal mentions (too broad), keyed by condition key.
EXCLUDED_SYNONYMS: dict[str, frozenset[str]] = {
    "lipomatosis": frozenset({"epidural fat"}),
}

_DISC = r"dis[ck]"
_SEV = r"(?:mild(?:ly)?|moderate(?:ly)?|severe(?:ly)?|minimal(?:ly)?|slight(?:ly)?|marked(?:ly)?|small|large|tiny|focal|broad-?based)"

# Extra mention patterns per condition key (regex, case-insensitive). Keep real radiology phrasing.
EXTRA_PATTERNS: dict[str, tuple[str, ...]] = {
    "herniation": (
        r"\bprotru(?:sion|sions|ding|des)\b",
        r"\bextru(?:sion|sions|ded|ding)\b",
        r"\bherniat(?:ion|ions|ed|ing)\b",
        r"\bhnp\b",
        r"\bsequest(?:ration|ered)(?:\s+(?:disc|disk|fragment))?\b",
        r"\bfree\s+(?:disc\s+|disk\s+)?fragments?\b",
        r"\bmigrated\s+(?:disc\s+|disk\s+)?fragments?\b",
    ),
    "disc_height": (
        rf"\b(?:loss|decrease|reduction|narrowing|diminution)\s+(?:of|in)\s+(?:the\s+)?(?:intervertebral\s+)?{_DISC}(?:\s+space)?\s+heights?\b",
        rf"\b(?:loss|decrease|reduction|narrowing)\s+(?:of|in)\s+(?:the\s+)?(?:intervertebral\s+)?{_DISC}\s+spaces?\b",
        rf"\b{_DISC}(?:\s+space)?\s+heights?\s+(?:loss|reduction)\b",
        rf"\b(?:decreased|reduced|diminished|lost|loss\s+of)\s+(?:intervertebral\s+)?{_DISC}(?:\s+space)?\s+heights?\b",
        rf"\b{_DISC}\s+spaces?\s+(?:narrowing|loss)\b",
        rf"\b{_DISC}(?:\s+space)?\s+heights?\s+(?:is|are)\s+(?:{_SEV}\s+)?(?:decreased|reduced|diminished|lost|narrowed)\b",
        rf"\b{_DISC}\s+spaces?\s+(?:is|are)\s+(?:{_SEV}\s+)?narrowed\b",
        rf"\b(?:desiccat\w+|degenerat\w+)\s+(?:{_DISC}s?\s+)?with\s+(?:{_SEV}\s+)?(?:associated\s+)?(?:height\s+loss|loss\s+of\s+height)\b",
        rf"\b{_DISC}\s+degeneration\s+with\s+(?:{_SEV}\s+)?(?:height\s+loss|loss\s+of\s+height)\b",
        r"\b(?:collapsed|collapse\s+of\s+the)\s+(?:intervertebral\s+)?(?:disc|disk)(?:\s+space)?\b",
    ),
    "spondylolisthesis": (
        r"\b(?:spondylo|antero|retro|lateral\s+)?listhesis\b",
        r"\bspondylolistheses\b",
        r"\b(?:anterior|posterior)\s+(?:subluxation|translation|slip)\s+of\b",
        r"\bgrade\s+(?:i{1,3}|iv|[1-4])\s+(?:slip|spondylolisthesis|anterolisthesis|retrolisthesis)\b",
    ),
    "par": (
        r"\bpars(?:\s+interarticularis)?\s+(?:defects?|fractures?|breaks?|lysis|clefts?)\b",
        r"\bspondyloly(?:sis|tic)\b",
        r"\b(?:defects?|fractures?|lysis)\s+(?:of|in|involving)\s+(?:the\s+)?(?:bilateral\s+|left\s+|right\s+)?(?:l\d\s+)?pars\b",
    ),
    "compression": (
        r"\b(?:spinal\s+)?cord\s+(?:compression|impingement|flattening|deformity|deformation)\b",
        r"\b(?:thecal\s+sac|dural\s+sac|conus|cauda\s+equina)\s+(?:compression|impingement)\b",
        r"\bcompress(?:es|ing|ed|ion)?\s+(?:of\s+|on\s+|upon\s+)?(?:the\s+)?(?:\w+\s+){0,2}?(?:spinal\s+)?(?:cord|thecal\s+sac|dural\s+sac|conus|cauda\s+equina)\b",
        r"\b(?:cord|thecal\s+sac|conus)\s+(?:is|are)\s+(?:\w+ly\s+)?(?:compressed|flattened|deformed)\b",
        r"\bmass\s+effect\s+(?:on|upon)\s+(?:the\s+)?(?:\w+\s+){0,2}?(?:spinal\s+)?(?:cord|thecal\s+sac|conus|cauda\s+equina)\b",
        r"\b(?:flattening|deformity|deformation|indentation)\s+of\s+the\s+(?:\w+\s+){0,2}?(?:spinal\s+)?cord\b",
        r"\bcompressive\s+myelopathy\b",
    ),
    "fracture": (
        r"\bfractur(?:e|es|ed)\b",
        r"\bfx\b",
        r"\b(?:compression|wedge|wedging)\s+deformit(?:y|ies)\b",
        r"\b(?:anterior\s+)?wedging\s+of\s+the\s+(?:[CTL]\d{1,2}\s+)?vertebral\s+body\b",
        r"\b(?:loss\s+of|decreased|reduced)\s+(?:\w+\s+){0,2}?vertebral\s+(?:body\s+)?height\b",
        r"\bvertebral\s+(?:body\s+)?height\s+loss\b",
        r"\bvertebral\s+(?:body\s+)?collapse\b",
    ),
    "edema": (
        r"\b(?:bone\s+)?marrow\s+(?:o?edema|signal\s+abnormalit(?:y|ies)|hyperintensity)\b",
        r"\bo?edema(?:-like)?\s+(?:marrow\s+)?signal\b",
        r"\bo?edema\b",
        r"\bmodic\s+(?:type\s+)?(?:1|i)\b(?!\s*(?:/|and|-)\s*(?:2|ii))",
        r"\bstir\s+hyperintens\w+\s+(?:marrow|within\s+the\s+(?:[CTL]\d{1,2}\s+)?vertebral\s+bod\w+)\b",
    ),
    "inflammation": (
        r"\b(?:spondylo)?dis[ck]itis\b",
        r"\bdis[ck]itis[- /]osteomyelitis\b",
        r"\bosteomyelitis\b",
        r"\bsynovitis\b",
        r"\binflamma(?:tion|tory)\b",
        r"\b(?:epidural|paraspinal|psoas)\s+(?:abscess|abscesses|phlegmon)\b",
        r"\bspondylitis\b",
        r"\barachnoiditis\b",
        r"\bsacroiliitis\b",
        r"\binfect(?:ion|ious)\b",
        r"\b(?:facet|perifacet|periarticular)\s+(?:joint\s+)?(?:o?edema|enhancement)\b",
    ),
    "hemangioma": (
        r"\bh(?:a)?emangioma(?:s|ta)?\b",
    ),
    "lipomatosis": (
        r"\blipomatosis\b",
        r"\b(?:excess(?:ive)?|prominent|increased|abundant)\s+(?:posterior\s+)?epidural\s+fat\b",
        r"\bepidural\s+fat\s+(?:deposition|overgrowth|hypertrophy|proliferation)\b",
    ),
    "synovial": (
        r"\b(?:synovial|facet|juxta-?facet|juxta-?articular|ganglion)\s+(?:joint\s+)?cysts?\b",
    ),
    "cyst": (
        r"\bcysts?\b",
        r"\b(?:tarlov|perineural|arachnoid|meningeal|nerve\s+root\s+sleeve)\s+cysts?\b",
    ),
    "lesion_intramedullary": (
        r"\bintramedullary\s+(?:\w+\s+){0,2}?(?:lesions?|mass(?:es)?|tumou?rs?|neoplasms?|signal|hyperintensit(?:y|ies)|enhancement|abnormalit(?:y|ies)|metastas[ie]s)\b",
        r"\b(?:abnormal|increased|t2\s+hyperintense|hyperintense|abnormal\s+t2)\s+(?:t2\s+)?(?:intramedullary\s+)?signal\s+(?:with)?in\s+the\s+(?:\w+\s+){0,2}?(?:spinal\s+)?(?:cord|conus)\b",
        r"\b(?:abnormal\s+)?(?:cord|conus)\s+signal\s+(?:abnormalit(?:y|ies)|changes?|alteration)\b",
        r"\babnormal\s+(?:cord|conus)\s+signal\b",
        r"\b(?:cord|conus)\s+(?:o?edema|lesions?|mass|expansion|hyperintensity)\b",
        r"\bsyr(?:inx|inges|ingomyelia|ingohydromyelia)\b",
        r"\bhydromyelia\b",
        r"\bmyelomalacia\b",
        r"\b(?:ependymoma|astrocytoma|hemangioblastoma)s?\b",
        r"\bdemyelinat\w+\s+(?:lesions?|plaques?)\b",
        r"\bmyelitis\b",
    ),
    "lesion_extramedullary": (
        r"\bintradural\s+(?:extramedullary\s+)?(?:lesions?|mass(?:es)?|tumou?rs?|neoplasms?|nodules?)\b",
        r"\bextramedullary\s+(?:\w+\s+)?(?:lesions?|mass(?:es)?|tumou?rs?|neoplasms?)\b",
        r"\b(?:meningioma|schwannoma|neurofibroma|paraganglioma)s?\b",
        r"\bnerve\s+sheath\s+tumou?rs?\b",
        r"\bdrop\s+metastas[ie]s\b",
        r"\bleptomeningeal\s+(?:enhancement|metastas[ie]s|disease|carcinomatosis|spread)\b",
    ),
}

# A mention of the key overlapping a veto match is dropped.
VETOES: dict[str, tuple[str, ...]] = {
    "herniation": (
        r"\bintravertebral\s+(?:disc\s+|disk\s+)?herniation\w*",
        r"\bschmorl\w*",
        r"\b(?:osteophyt\w+|bone|facet)\s+protru\w+",
    ),
    "compression": (
        r"\bcompression\s+(?:fractures?|deformit(?:y|ies))\b",
    ),
    "fracture": (
        r"\bpars(?:\s+interarticularis)?\s+fractures?\b",
        r"\bfractures?\s+(?:of|in|involving)\s+(?:the\s+)?(?:bilateral\s+|left\s+|right\s+)?(?:l\d\s+)?pars\b",
    ),
    "edema": (
        r"\b(?:soft[- ]tissues?|prevertebral|paravertebral|paraspinal|paraspinous|muscles?|muscular|"
        r"interspinous|supraspinous|ligament(?:ous)?|subcutaneous|cord|conus|intramedullary|facet|perifacet|"
        r"periarticular|retropharyngeal|epidural|disc|disk|pulmonary|lung)\s+(?:joint\s+|\w+\s+)?o?edema\b",
        r"\bo?edema\s+(?:with)?in\s+the\s+(?:\w+\s+){0,2}?(?:soft\s+tissues?|muscles?|musculature|cord|conus|facets?|"
        r"ligaments?|interspinous|paraspinal|prevertebral|subcutaneous)\b",
    ),
    "inflammation": (
        r"\b(?:non-?inflammatory|post-?inflammatory)\b",
        r"\burinary\s+tract\s+infection\b",
    ),
    "cyst": (
        r"\b(?:synovial|facet|juxta-?facet|juxta-?articular|ganglion|renal|kidney|hepatic|liver|ovarian|adnexal|"
        r"thyroid|baker'?s?|pancreatic|splenic|parapelvic|cortical|nabothian|pilonidal)\s+(?:joint\s+)?cysts?\b",
    ),
    "lesion_intramedullary": (
        r"\bintramedullary\s+(?:nail|rod)\b",
    ),
}

# ----- the narrowing family (canal / neuroforaminal / subarticular / disc_height) -----

_HEAD = re.compile(
    r"\b(stenos[ie]s|stenotic|narrow(?:ing|ed|s)|encroach(?:ment|es|ing)|effac(?:ement|ed|es|ing)|compromise[ds]?)\b",
    re.I,
)
_DEFAULT_CANAL_HEADS = ("stenos", "stenotic")
_TOKEN = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*|,|/")
# Words allowed between a site word and the head noun ("mild-to-moderate left neural foraminal ... stenosis").
_RUN_WORDS = frozenset("""
mild moderate severe minimal slight marked significant mildly moderately severely minimally slightly markedly
mild-to-moderate moderate-to-severe mild-moderate moderate-severe high-grade low-grade critical advanced to
left right bilateral bilaterally both central spinal canal neural neuroforaminal foraminal foramen foramina
neuro-foraminal subarticular recess recesses lateral zone zones thecal sac dural
and or the is are not borderline , / severity degree some further associated resultant acquired congenital
degenerative multilevel multi-level disc disk space spaces intervertebral height heights canals
""".split())
_SITE_RULES: tuple[tuple[str, re.Pattern], ...] = (
    ("disc_height", re.compile(r"\b(?:dis[ck]\s+spaces?|dis[ck]\s+heights?|intervertebral\s+spaces?)\b", re.I)),
    ("neuroforaminal", re.compile(r"\b(?:neuro-?)?foram(?:en|ina|inal)\b", re.I)),
    ("subarticular", re.compile(r"\b(?:subarticular|lateral\s+recess(?:es)?|recess(?:es)?)\b", re.I)),
    ("canal", re.compile(r"\b(?:canals?|central|thecal\s+sac|dural\s+sac|spinal(?!\s+foram))\b", re.I)),
)
_FORWARD_SITE = re.compile(
    r"\s+(?:of|in|within|involving|on|upon|into)?\s*(?:the\s+)?(?:(?:bilateral|left|right|both|central|spinal|"
    r"neural|lateral|subarticular|intervertebral|l\d|c\d|t\d{1,2}|s1|nerve|root|exit(?:ing)?)\s+){0,3}"
    r"(foram(?:en|ina)|canal|recess(?:es)?|zones?|thecal\s+sac|dural\s+sac|dis[ck]\s+spaces?|dis[ck]s?|spaces?)\b",
    re.I,
)


_COORD_SITE = re.compile(
    r"\s*(?:,\s*)?(?:and|or|as\s+well\s+as)\s+(?:of\s+)?(?:the\s+)?(?:(?:bilateral|left|right|both|central|spinal|neural|"
    r"lateral|subarticular)\s+){0,3}(foram(?:en|ina)|canal|recess(?:es)?)\b",
    re.I,
)


@dataclass(frozen=True)
class Mention:
    condition: str
    start: int  # offsets into the sentence
    end: int
    text: str
    anchor: int  # where to look for the severity word (the site word for narrowing mentions)


def _phrase_regex(phrase: str) -> str:
    """A registry synonym as a regex: flexible spaces/hyphens, disc/disk, optional plural."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    words = [r"dis[ck]" if w in ("disc", "disk") else w for w in words]
    return r"\b" + r"[\s\-]+".join(words) + r"(?:s|es)?\b"


def _compile() -> dict[str, list[re.Pattern]]:
    out: dict[str, list[re.Pattern]] = {}
    for cond in registry.CONDITIONS:
        pats = [_phrase_regex(s) for s in cond.synonyms if s.lower() not in EXCLUDED_SYNONYMS.get(cond.key, ())]
        pats.extend(EXTRA_PATTERNS.get(cond.key, ()))
        out[cond.key] = [re.compile(p, re.I) for p in pats]
    return out


_PATTERNS: dict[str, list[re.Pattern]] | None = None
_VETOES = {k: [re.compile(p, re.I) for p in v] for k, v in VETOES.items()}


def patterns() -> dict[str, list[re.Pattern]]:
    global _PATTERNS
    if _PATTERNS is None or set(_PATTERNS) != {c.key for c in registry.CONDITIONS}:
        _PATTERNS = _compile()
    return _PATTERNS


def _narrowing_mentions(s: str) -> list[Mention]:
    """Resolve each narrowing head noun to the site(s) its modifiers name."""
    out: list[Mention] = []
    tokens = [(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(s)]
    for hm in _HEAD.finditer(s):
        head = hm.group(1).lower()
        # backward run of modifier tokens, contiguous
        idx = next((i for i, t in enumerate(tokens) if t[0] == hm.start()), None)
        if idx is None:
            continue
        j = idx
        while j > 0 and idx - j < 12 and tokens[j - 1][2].lower() in _RUN_WORDS:
            j -= 1
        run_start = tokens[j][0] if j < idx else hm.start()
        run = s[run_start:hm.start()]
        fwd = _FORWARD_SITE.match(s, hm.end())
        found: list[tuple[str, int, int, int]] = []  # (condition, start, end, severity anchor)
        for cond, rx in _SITE_RULES:
            for sm in rx.finditer(run):
                if cond == "canal" and not head.startswith(("stenos", "stenotic", "narrow", "compromise")):
                    continue
                found.append((cond, run_start + sm.start(), hm.end(), run_start + sm.start()))
                break
        if fwd:
            fsite = fwd.group(1).lower()
            fcond = None
            if re.match(r"dis[ck]\s+space|dis[ck]s?$|spaces?$", fsite) and not re.search(r"foram|recess|canal", fwd.group(0), re.I):
                fcond = "disc_height" if head.startswith("narrow") and re.search(r"space", fwd.group(0), re.I) else None
            elif fsite.startswith("foram"):
                fcond = "neuroforaminal"
            elif fsite.startswith(("recess", "zone")) or re.search(r"lateral|subarticular", fwd.group(0), re.I):
                fcond = "subarticular"
            elif fsite.startswith(("canal", "thecal", "dural")) and head.startswith(("stenos", "narrow", "compromise")):
                fcond = "canal"
            if fcond:
                found.append((fcond, hm.start(), fwd.end(), hm.start()))
                # "narrowing of the left neural foramen and central canal": a coordinated second site
                co = _COORD_SITE.match(s, fwd.end())
                if co:
                    csite = co.group(1).lower()
                    ccond = ("neuroforaminal" if csite.startswith("foram") else
                             "subarticular" if csite.startswith("recess") else
                             "canal" if head.startswith(("stenos", "narrow", "compromise")) else None)
                    if ccond and ccond != fcond:
                        found.append((ccond, co.start(1), co.end(), hm.start()))
        if any(f[0] == "disc_height" for f in found):
            found = [f for f in found if f[0] == "disc_height"]
        if not found and head.startswith(_DEFAULT_CANAL_HEADS):
            found.append(("canal", hm.start(), hm.end(), hm.start()))
        for cond, a, b, anchor in found:
            if cond == "disc_height" and not head.startswith(("narrow", "loss")):
                continue
            out.append(Mention(cond, a, b, s[a:b], anchor))
    return out


_NON_MARROW_CONTEXT = re.compile(r"\b(?:cord|conus|intramedullary|soft\s+tissues?|muscles?|paraspinal|prevertebral|"
                                 r"ligament\w*|subcutaneous|facets?)\b", re.I)
_MARROW_CONTEXT = re.compile(r"\b(?:marrow|vertebra\w*|endplates?|bone|bod(?:y|ies)|osseous)\b", re.I)


def _overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 < b1 and b0 < a1


def find_mentions(sentence: str) -> list[Mention]:
    """Condition mentions in one sentence, offsets relative to the sentence."""
    found: list[Mention] = []
    for key, pats in patterns().items():
        for rx in pats:
            for m in rx.finditer(sentence):
                found.append(Mention(key, m.start(), m.end(), m.group(0), m.start()))
    found.extend(_narrowing_mentions(sentence))
    # vetoes
    veto_spans = {k: [(m.start(), m.end()) for rx in v for m in rx.finditer(sentence)] for k, v in _VETOES.items()}
    kept = [m for m in found if not any(_overlaps(m.start, m.end, a, b) for a, b in veto_spans.get(m.condition, ()))]
    # bare "edema" is marrow edema unless the sentence is about the cord or soft tissues and not about bone
    if _NON_MARROW_CONTEXT.search(sentence) and not _MARROW_CONTEXT.search(sentence):
        kept = [m for m in kept if not (m.condition == "edema" and re.fullmatch(r"o?edema", m.text, re.I))]
    # same condition, overlapping spans: keep the longest
    kept.sort(key=lambda m: (m.condition, -(m.end - m.start), m.start))
    out: list[Mention] = []
    for m in kept:
        if any(o.condition == m.condition and _overlaps(o.start, o.end, m.start, m.end) for o in out):
            continue
        out.append(m)
    out.sort(key=lambda m: (m.start, m.condition))
    return out


_SEVERITY = re.compile(
    r"\b(mild(?:ly)?(?:[- ]to[- ]moderate(?:ly)?)?|moderate(?:ly)?(?:[- ]to[- ]severe(?:ly)?)?|severe(?:ly)?|"
    r"minimal(?:ly)?|slight(?:ly)?|marked(?:ly)?|high[- ]grade|critical|advanced|grade\s+(?:i{1,3}|iv|[1-4]))\b",
    re.I,
)


def normalize_severity(word: str) -> str:
    w = word.lower().replace(" ", "-")
    if w.startswith("grade"):
        n = w.split("-")[-1]
        return "grade " + {"i": "1", "ii": "2", "iii": "3", "iv": "4"}.get(n, n)
    if "to-moderate" in w:
        return "mild-moderate"
    if "to-severe" in w:
        return "moderate-severe"
    for stem, norm in (("mild", "mild"), ("minimal", "mild"), ("slight", "mild"), ("moderate", "moderate"),
                       ("severe", "severe"), ("marked", "severe"), ("high", "severe"), ("critical", "severe"),
                       ("advanced", "severe")):
        if w.startswith(stem):
            return norm
    return w


def find_severity(sentence: str, mention: Mention, others: list[Mention]) -> str | None:
    """Nearest severity word before the mention's anchor (not past another mention), else inside or just after it."""
    lo = 0
    for o in others:
        if o.end <= mention.anchor and o is not mention and o.condition != mention.condition:
            lo = max(lo, o.end)
    lo = max(lo, mention.anchor - 40)
    window = sentence[lo:mention.anchor]
    window = re.split(r"[;.]|\b(?:but|however|although|while|whereas|with|without|no)\b", window)[-1]
    hits = list(_SEVERITY.finditer(window))
    if hits:
        return normalize_severity(hits[-1].group(1))
    inside = _SEVERITY.search(sentence, mention.anchor, mention.end)
    if inside:
        return normalize_severity(inside.group(1))
    after = re.match(r"\s*(?:,\s*)?(?:(?:which\s+)?(?:is|are)\s+)?(?:\(\s*)?" + _SEVERITY.pattern, sentence[mention.end:mention.end + 40], re.I)
    if after:
        return normalize_severity(after.group(1))
    return None
