"""Label extraction from report text: ``extract_labels(text) -> {condition: 1/0/-1}``.

Uses the annotation team's rule labeler (package ``spine_labels``) when it is
importable and exposes ``extract_labels``; otherwise :func:`keyword_fallback_labels`,
a deliberately minimal keyword labeler (term match per sentence, negation cue
before the term -> 0, hedge cue -> -1, not mentioned -> 0). Results say which was used.
"""

from __future__ import annotations

import re

from spinefm.conditions import CONDITIONS

NEGATION = re.compile(r"\b(no|not|without|negative for|absence of|free of|resolved)\b")
HEDGE = re.compile(r"\b(possible|possibly|cannot be excluded|can ?not be excluded|equivocal|questionable|"
                   r"suspected|may represent|indeterminate|borderline|probable)\b")


def _terms() -> dict[str, list[str]]:
    out = {}
    for c in CONDITIONS:
        terms = {c.display_name.lower(), *(s.lower() for s in c.synonyms)}
        out[c.key] = sorted(terms, key=len, reverse=True)
    return out


_TERMS = _terms()


def keyword_fallback_labels(text: str) -> dict[str, int]:
    """Minimal keyword labeler (fallback only; not the project's rule labeler)."""
    sentences = [s.strip().lower() for s in re.split(r"[.\n;]+", text) if s.strip()]
    labels = {}
    for key, terms in _TERMS.items():
        votes = []
        for s in sentences:
            for t in terms:
                i = s.find(t)
                if i < 0:
                    continue
                before = s[:i]
                if NEGATION.search(before):
                    votes.append(0)
                elif HEDGE.search(s):
                    votes.append(-1)
                else:
                    votes.append(1)
                break
        labels[key] = 1 if 1 in votes else (-1 if -1 in votes else 0)
    # hedge clause split off by ';' ("Possible X at L4-L5; cannot be excluded.")
    for m in re.finditer(r"possible ([a-z ]+?)(?: at [a-z0-9-]+)?(?: \(.*?\))?; cannot be excluded", text.lower()):
        for key, terms in _TERMS.items():
            if any(t in m.group(1) for t in terms) and labels[key] == 1:
                labels[key] = -1
    return labels


def _spine_labels():
    try:
        import spine_labels  # noqa: F401
    except Exception:
        return None
    fn = getattr(spine_labels, "extract_labels", None)
    return fn if callable(fn) else None


def labeler_name() -> str:
    if _spine_labels() is None:
        return "keyword-fallback"
    import spine_labels
    return f"spine_labels {getattr(spine_labels, 'RULES_VERSION', getattr(spine_labels, '__version__', ''))}".strip()


def extract_labels(text: str) -> dict[str, int]:
    fn = _spine_labels()
    if fn is None:
        return keyword_fallback_labels(text)
    out = fn(text)
    if hasattr(out, "as_dict"):      # spine_labels.LabelSet
        out = out.as_dict()
    elif hasattr(out, "labels"):
        out = out.labels
    return {c.key: int(getattr(out.get(c.key, 0), "value", out.get(c.key, 0))) for c in CONDITIONS}


def extract_levels(text: str) -> dict[str, list[str]] | None:
    """{condition: levels the text gives for it} via ``spine_labels`` (registry spelling, e.g. "L4-L5").

    None when ``spine_labels`` is not importable: the keyword fallback does not parse levels.
    """
    try:
        import spine_labels
    except Exception:
        return None
    fn = getattr(spine_labels, "extract_labels", None)
    if not callable(fn):
        return None
    out = fn(text)
    labels = getattr(out, "labels", None)
    if not isinstance(labels, dict):
        return None
    return {k: list(getattr(lab, "levels", []) or []) for k, lab in labels.items()}
