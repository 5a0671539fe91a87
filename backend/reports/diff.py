"""Word-level diff of two versions for the panel's "draft vs current" view (difflib, no weights)."""

from __future__ import annotations

import difflib
import re

_TOKEN = re.compile(r"\S+\s*")


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """(words, words-with-their-trailing-whitespace): compare words, render with the original layout."""
    spaced = _TOKEN.findall(text or "")
    lead = re.match(r"\s*", text or "").group(0)
    if spaced and lead:
        spaced[0] = lead + spaced[0]
    return [t.strip() for t in spaced], spaced


def word_diff(old: str, new: str) -> dict:
    """Ops [{op: equal|delete|insert, text}]; equal+insert rebuild ``new`` exactly (layout of ``new``)."""
    old_words, old_spaced = _tokens(old)
    new_words, new_spaced = _tokens(new)
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    ops: list[dict] = []
    counts = {"equal": 0, "delete": 0, "insert": 0}

    def emit(op: str, pieces: list[str]) -> None:
        if not pieces:
            return
        counts[op] += len(pieces)
        if ops and ops[-1]["op"] == op:
            ops[-1]["text"] += "".join(pieces)
        else:
            ops.append({"op": op, "text": "".join(pieces)})

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            emit("equal", new_spaced[j1:j2])
        else:
            emit("delete", old_spaced[i1:i2])
            emit("insert", new_spaced[j1:j2])
    return {"ops": ops, "words": {"from": len(old_words), "to": len(new_words), "equal": counts["equal"],
                                  "deleted": counts["delete"], "inserted": counts["insert"]},
            "similarity": round(matcher.ratio(), 4)}
