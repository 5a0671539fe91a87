"""RADPEER (ACR 2016) scores given at sign-off: the radiologist scores the AI draft against the final read."""

SCORES = {
    "1": "Concur with interpretation",
    "2a": "Discrepancy, not ordinarily expected to be made; unlikely to be clinically significant",
    "2b": "Discrepancy, not ordinarily expected to be made; likely to be clinically significant",
    "3a": "Discrepancy that should be made most of the time; unlikely to be clinically significant",
    "3b": "Discrepancy that should be made most of the time; likely to be clinically significant",
}
SCORE_CHOICES = [(k, k) for k in SCORES]
# RADPEER programs require a written comment for these (they go to the QA review queue).
NEEDS_COMMENT = frozenset({"2b", "3a", "3b"})


def choices() -> list[dict]:
    """The scores the sign-off offers, in order, each with its meaning and whether it needs a comment."""
    return [{"score": k, "meaning": meaning, "needs_comment": k in NEEDS_COMMENT} for k, meaning in SCORES.items()]


def problems(score, comment) -> dict[str, str]:
    """Field -> message for an invalid score/comment pair; empty when valid."""
    if score in (None, ""):
        return {"radpeer_score": "required: one of " + ", ".join(SCORES)}
    if score not in SCORES:
        return {"radpeer_score": f"{score!r} is not a RADPEER score; one of " + ", ".join(SCORES)}
    if score in NEEDS_COMMENT and not (comment or "").strip():
        return {"radpeer_comment": f"a RADPEER score of {score} needs a written comment"}
    return {}
