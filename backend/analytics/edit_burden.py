"""Edit burden of one (AI draft, signed report) pair: word error rate with S/I/D, sentences kept / edited /
added / deleted, and clinically significant edits (condition-level label changes). Pure functions of the
two texts; ``services.compute_for_report`` stores the result on EditMetrics at sign time.

Definitions (docs/exports.md, "Edit burden"):
- reference = the signed text, hypothesis = the AI draft: WER = (S + D + I) / N, N = reference words,
  counted by jiwer after NORMALISE (lower case, Unicode punctuation removed, every whitespace run a single
  word boundary); WER is None when the signed text has no word (I = all draft words then);
- sentences: both texts split by ``backend.reports.sentences.split`` (headings alone are not sentences),
  compared normalised as above; pairs are taken greedily by decreasing similarity (rapidfuzz ``fuzz.ratio``
  / 100, ties: earlier draft sentence, then earlier signed sentence), each sentence in at most one pair, while
  similarity >= SENTENCE_MATCH. A pair of identical sentences is kept, any other pair edited; an unpaired
  draft sentence was deleted, an unpaired signed sentence added. Order is ignored: a moved sentence is kept;
- significant edits: the rule labeler (``spine_labels``, the one ``conditions.py`` uses) on both texts; per
  condition: absent_to_present, present_to_absent, certainty_changed (to or from uncertain, -1); and for a
  condition present in both, level_changed (the set of levels differs) and severity_changed (one per level
  named in both, or per condition when neither names a level, whose most severe severity differs).
"""

from __future__ import annotations

import jiwer
from rapidfuzz import fuzz

from backend.reports.labels import condition_name
from backend.reports.sentences import split
from spine_labels.schema import condition_keys
from spinefm.conditions import LABEL_NAMES, LabelValue

from .conditions import label_sets

SENTENCE_MATCH = 0.5
# Any whitespace run (newlines, tabs too) is one word boundary: jiwer itself splits on spaces only.
NORMALISE = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.SubstituteRegexes({r"\s+": " "}),
                           jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])
WER_FIELDS = ("wer", "wer_reference_words", "wer_hits", "wer_substitutions", "wer_deletions", "wer_insertions")
SENTENCE_KINDS = ("kept", "edited", "added", "deleted")
SENTENCE_FIELDS = tuple(f"sentences_{k}" for k in SENTENCE_KINDS)
EDIT_KINDS = ("absent_to_present", "present_to_absent", "certainty_changed", "level_changed", "severity_changed")
KIND_LABELS = {"absent_to_present": "absent → present", "present_to_absent": "present → absent",
               "certainty_changed": "certainty changed", "level_changed": "level changed",
               "severity_changed": "severity changed"}
_SEVERITY_ORDER = ("mild", "mild-moderate", "moderate", "moderate-severe", "severe")


def words(text: str) -> list[str]:
    """The words WER counts: NORMALISE applied to ``text``."""
    return NORMALISE(text or "")[0] if (text or "").strip() else []


def word_errors(draft: str, final: str) -> dict:
    """{wer, wer_reference_words (N), wer_hits, wer_substitutions, wer_deletions, wer_insertions}."""
    ref, hyp = words(final), words(draft)
    if not ref:  # jiwer has no WER without reference words; every draft word is an insertion
        return dict(zip(WER_FIELDS, (None, 0, 0, 0, 0, len(hyp))))
    if not hyp:
        return dict(zip(WER_FIELDS, (1.0, len(ref), 0, 0, len(ref), 0)))
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return dict(zip(WER_FIELDS, (float(out.wer), len(ref), out.hits, out.substitutions, out.deletions,
                                 out.insertions)))


def _sentences(text: str) -> list[str]:
    """Normalised sentences; one that has no word left (a lone "-") is not a sentence."""
    return [s for s in (" ".join(words(sent.text)) for sent in split(text or "")) if s]


def align_sentences(draft: str, final: str) -> dict:
    """{"kept", "edited", "added", "deleted": counts, "pairs": [(draft index, final index, similarity)]}."""
    a, b = _sentences(draft), _sentences(final)
    candidates = sorted(((fuzz.ratio(x, y) / 100, i, j) for i, x in enumerate(a) for j, y in enumerate(b)),
                        key=lambda c: (-c[0], c[1], c[2]))
    used_a, used_b, pairs = set(), set(), []
    for similarity, i, j in candidates:
        if similarity < SENTENCE_MATCH:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j, similarity))
    kept = sum(1 for i, j, _ in pairs if a[i] == b[j])
    return {"kept": kept, "edited": len(pairs) - kept, "added": len(b) - len(pairs),
            "deleted": len(a) - len(pairs), "pairs": sorted(pairs, key=lambda p: (p[0], p[1]))}


def _rank(severity: str) -> tuple[int, str]:
    if severity in _SEVERITY_ORDER:
        return 0, str(_SEVERITY_ORDER.index(severity))
    return 1, severity  # "grade 1".."grade 4" (listhesis) sort after each other


def _severity(label, level: str | None) -> str | None:
    """Most severe severity of the mentions that agree with the label (at ``level`` when given)."""
    found = [ev.severity for ev in label.evidence if ev.value == label.value and ev.severity
             and (level is None or level in ev.level)]
    return max(found, key=_rank) if found else None


def _side(label) -> dict:
    return {"label": LABEL_NAMES[label.value], "levels": label.levels, "severity": _severity(label, None)}


def _edit(key: str, kind: str, draft, final, level: str | None = None) -> dict:
    """One edit: the condition, its kind, and both sides (label, levels, severity; at ``level`` if given)."""
    d, f = _side(draft), _side(final)
    if level is not None:
        d["severity"], f["severity"] = _severity(draft, level), _severity(final, level)
    return {"condition": key, "display_name": condition_name(key), "kind": kind, "level": level,
            **{f"draft_{k}": v for k, v in d.items()}, **{f"final_{k}": v for k, v in f.items()}}


def significant_edits(draft: str, final: str, read: tuple | None = None) -> list[dict]:
    """Condition-level changes from the draft to the signed text, registry order (see the module docstring).
    ``read``: the texts' label sets when the caller has them (conditions.label_sets)."""
    d_set, f_set = read or label_sets(draft, final)
    edits = []
    for key in condition_keys():
        d, f = d_set.labels.get(key), f_set.labels.get(key)
        if d is None or f is None:
            continue
        if d.value != f.value:
            kind = {(LabelValue.ABSENT, LabelValue.PRESENT): "absent_to_present",
                    (LabelValue.PRESENT, LabelValue.ABSENT): "present_to_absent"}.get((d.value, f.value),
                                                                                      "certainty_changed")
            edits.append(_edit(key, kind, d, f))
            continue
        if d.value != LabelValue.PRESENT:
            continue
        if set(d.levels) != set(f.levels):
            edits.append(_edit(key, "level_changed", d, f))
        common = [lv for lv in d.levels if lv in f.levels] if d.levels and f.levels else []
        for level in common or ([None] if not d.levels and not f.levels else []):
            if _severity(d, level) != _severity(f, level):
                edits.append(_edit(key, "severity_changed", d, f, level))
    return edits


def burden(draft: str, final: str, read: tuple | None = None) -> dict:
    """The EditMetrics fields of the edit burden of one pair (``read`` as for significant_edits)."""
    sentences = align_sentences(draft, final)
    return {**word_errors(draft, final), **{f"sentences_{k}": sentences[k] for k in SENTENCE_KINDS},
            "significant_edits": significant_edits(draft, final, read)}


def count_kinds(edits: list[dict]) -> dict[str, int]:
    """{kind: number of edits} for every kind (zeros included)."""
    counts = dict.fromkeys(EDIT_KINDS, 0)
    for e in edits:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    return counts
