"""The rule-based labeler: the offline default and the LLM labeler's fallback.

Pipeline: sentences (skipping clinical history) -> mentions per condition ->
negation/uncertainty cue per mention -> severity and level per mention ->
aggregate per condition (any present -> 1, else any uncertain -> -1, else
0; no mention -> 0 with no evidence). Deterministic and explainable: every
label points at the characters that produced it.
"""

from __future__ import annotations

import re

from spinefm import conditions as registry
from spinefm.conditions import CORD_LEVEL, VERTEBRA_LEVEL, LabelValue

from .levels import LevelMention, find_levels, group_levels
from .lexicon import Mention, find_mentions, find_severity
from .negation import classify, find_cues
from .schema import SOURCE_RULES, Evidence, Label, LabelSet, condition_keys
from .sentences import split_sentences

RULES_VERSION = "rules-1.0"

# Only modifiers between a preceding level and the mention ("L4-L5 disc protrusion", "L1 compression fracture").
_ADJACENT = re.compile(r"^[\s,:]*(?:(?:the|a|an|of|at|level|vertebral|body|left|right|bilateral|central|mild|moderate|"
                       r"severe|small|large|acute|chronic|subacute|old|healed|grade|i{1,3}|[1-4]|disc|disk|superior|"
                       r"inferior|endplate|there|is|are|an?)\s+)*$", re.I)


# "the traversing L5 nerve root" names a root, not the level of the finding.
_ROOT_AFTER = re.compile(r"^\s*(?:nerve\s+)?(?:roots?|radicle)\b", re.I)
_ROOT_BEFORE = re.compile(r"\b(?:traversing|exiting|descending)\s+(?:left\s+|right\s+|bilateral\s+)?$", re.I)


def _level_list(g: LevelMention, condition: str) -> list[str]:
    """A range ("from T4 to T8") of a vertebra- or cord-level finding lists vertebrae, otherwise disc levels."""
    try:
        kind = registry.get_condition(condition).level_kind
    except KeyError:
        kind = None
    if g.is_range and kind in (VERTEBRA_LEVEL, CORD_LEVEL):
        return list(g.vertebrae)
    return list(g.levels)


def _clause_bounds(sentence: str, pos: int) -> tuple[int, int]:
    """Clause around pos: split at ';' only, so 'X at L4-L5' style tails stay with their finding."""
    a = sentence.rfind(";", 0, pos) + 1
    b = sentence.find(";", pos)
    return a, (len(sentence) if b < 0 else b)


def attribute_levels(sentence: str, m: Mention, groups: list[LevelMention], mentions: list[Mention],
                     context: tuple[str, ...]) -> list[str]:
    """Levels for one mention.

    Order of preference: a level inside the mention; a level group right
    before it with only modifiers between ("L4-L5 disc protrusion"); the
    first level group after it in the clause unless another mention of the
    same condition sits between; the last level group before it; the
    "L4-L5:" header context. Nerve-root names ("L5 nerve root") are ignored.
    """
    groups = [g for g in groups if not _ROOT_AFTER.match(sentence[g.end:g.end + 20])
              and not _ROOT_BEFORE.search(sentence[max(0, g.start - 30):g.start])]
    ca, cb = _clause_bounds(sentence, m.start)
    before = [g for g in groups if g.end <= m.start and g.start >= ca]
    after = [g for g in groups if g.start >= m.end and g.end <= cb]
    inside = [g for g in groups if g.start >= m.start and g.end <= m.end]
    if inside:
        return [x for g in inside for x in _level_list(g, m.condition)]
    if before and _ADJACENT.match(sentence[before[-1].end:m.start]):
        return _level_list(before[-1], m.condition)
    if after:
        g = after[0]
        # a following level that belongs to a later finding of another condition is still ours
        # unless a new "at <level>" clause for another mention sits between us and it
        between = [o for o in mentions if m.end <= o.start and o.end <= g.start and o.condition == m.condition]
        if not between:
            return _level_list(g, m.condition)
    if before:
        return _level_list(before[-1], m.condition)
    return list(context)


class RuleLabeler:
    """Lexicon + NegEx-style scopes. ``label(text) -> LabelSet``."""

    source = SOURCE_RULES
    version = RULES_VERSION

    def __init__(self, include_history: bool = False) -> None:
        self.include_history = include_history

    def mentions(self, text: str) -> list[tuple[str, Evidence]]:
        """Every mention in report order as (condition, Evidence)."""
        out: list[tuple[str, Evidence]] = []
        for sent in split_sentences(text):
            if not sent.is_finding and not self.include_history:
                continue
            s = sent.text
            mentions = find_mentions(s)
            if not mentions:
                continue
            cues, term, bterm = find_cues(s)
            groups = group_levels(s, find_levels(s))
            for m in mentions:
                value, cue = classify(s, m.start, m.end, cues, term, bterm)
                sev = find_severity(s, m, mentions) if value != LabelValue.ABSENT else None
                levels = attribute_levels(s, m, groups, mentions, sent.context_levels)
                out.append((m.condition, Evidence(
                    start=sent.start + m.start, end=sent.start + m.end, text=m.text, level=levels,
                    severity=sev, cue=cue.text if cue else None, value=value,
                    sentence=s, sentence_start=sent.start,
                )))
        return out

    def label(self, text: str) -> LabelSet:
        by_cond: dict[str, list[Evidence]] = {k: [] for k in condition_keys()}
        for cond, ev in self.mentions(text or ""):
            by_cond.setdefault(cond, []).append(ev)
        labels: dict[str, Label] = {}
        for cond, evs in by_cond.items():
            labels[cond] = Label(cond, LabelValue.aggregate(e.value for e in evs), evs, SOURCE_RULES, RULES_VERSION)
        return LabelSet(labels, SOURCE_RULES, RULES_VERSION)
