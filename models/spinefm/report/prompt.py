"""Prompt assembly: ONE function builds the chat messages for training and serving.

:func:`build_messages` turns an AnalysisResult into a system prompt (scope,
no invention, caution) and a user turn holding the image placeholder and the
agents' structured tokens. The LLaVA-direct baseline calls the same function
with ``agents=False`` (image tokens only). The OpenAI backend calls it with
``image=False`` (text only). Tokenisation goes through the tokenizer's own chat
template, so Llama-3.1 and our tiny tokenizer take the same path.
"""

from __future__ import annotations

from spinefm.report.findings import coverage_span, level_count_note, level_order, region, sequences_used, triage
from spinefm.results import AnalysisResult, Call

IMAGE_PLACEHOLDER = "<image>"
PROMPT_VERSION = "1"

SYSTEM_PROMPT = (
    "You are a radiology assistant that drafts spine MRI reports for a radiologist to review "
    "and sign. Scope: spine MRI only. Use only the sequences, planes, levels and findings given "
    "in the input; never invent sequences, planes, measurements or prior comparisons (if no prior "
    "study is given, write 'COMPARISON: None provided.'). The similar case is a different patient, "
    "not a prior study: use it for wording only. Report findings level by level, cranio-caudal, and "
    "hedge uncertain findings ('possible ..., cannot be excluded'). Sections: TECHNIQUE, COMPARISON, "
    "FINDINGS, IMPRESSION (numbered, most actionable first). Where a finding may be urgent (cord "
    "compression, fracture, intradural lesion, infection), recommend clinical correlation."
)

SECTION_TEMPLATE = (
    "TECHNIQUE / COMPARISON / FINDINGS (Alignment; Vertebral bodies and marrow; Cord and conus; "
    "each level: disc, canal, foramina, facets; Other) / IMPRESSION (numbered)"
)

REPORT_TASK = "Write the report for this study."


def agent_tokens(result: AnalysisResult, threshold: float = 0.5, margin: float = 0.1,
                 similar_chars: int = 1200, boxes: bool = True) -> str:
    """Structured text from the diagnosis, localisation and retrieval agents."""
    reg = region(result)
    seqs = sequences_used(result)
    span, counted = coverage_span(result), level_count_note(result)
    lines = [f"Study: {reg + ' ' if reg else ''}spine MRI. Sequences: "
             f"{', '.join(seqs) if seqs else 'not listed'}. Prior study: none."
             + (f" Levels in view: {span}." if span else "")
             + (f" Note: {counted}." if counted else "")]
    if getattr(result, "region_disagreement", ""):
        lines.append(f"Region warning: {result.region_disagreement}.")
    triaged = triage(result, threshold, margin)
    findings = [f for f in triaged if f.status in (Call.PRESENT, Call.POSSIBLE)]
    unassessed = [f.display for f in triaged if f.status == Call.NOT_ASSESSED]
    ruled_out = [f.display for f in triaged if f.status == Call.ABSENT and f.rule_out]
    not_ruled_out = [f.display for f in triaged if f.status == Call.ABSENT and not f.rule_out]
    findings.sort(key=lambda f: level_order(f.level))
    lines.append(f"Conditions (probability, level; threshold {threshold:.2f}):")
    for f in findings:
        item = f"- {f.display}: {f.probability:.2f} {f.status}, {f.level or 'level uncertain'}"
        if f.key_slice is not None:
            item += f", key slice {f.key_slice.slice_index + 1}"
            if f.series_label:
                item += f" {f.series_label}"
        if boxes and f.box is not None:
            item += ", box " + ",".join(str(int(round(v))) for v in f.box.box)
        lines.append(item)
    if not findings:
        lines.append("- none above threshold")
    if ruled_out:
        lines.append(f"Ruled out at the model's held-out operating point: {', '.join(ruled_out)}.")
    if not_ruled_out:
        lines.append(f"Not detected, but the model cannot rule them out (do not call them normal): "
                     f"{', '.join(not_ruled_out)}.")
    if unassessed:
        lines.append(f"Not assessed by the model (not validated): {', '.join(unassessed)}.")
    if result.similar_cases:
        top = max(result.similar_cases, key=lambda c: c.score)
        lines.append(f"Most similar case (different patient, score {top.score:.2f}):")
        lines.append(top.report.strip()[:similar_chars])
    lines.append(f"Template: {SECTION_TEMPLATE}")
    return "\n".join(lines)


def build_messages(result: AnalysisResult, task: str = REPORT_TASK, *, agents: bool = True,
                   image: bool = True, threshold: float = 0.5, margin: float = 0.1,
                   system: str = SYSTEM_PROMPT, similar_chars: int = 1200) -> list[dict[str, str]]:
    """The prompt for one study; used by training (data.py) and every backend."""
    parts = []
    if image:
        parts.append(f"Images: {IMAGE_PLACEHOLDER}")
    if agents:
        parts.append(agent_tokens(result, threshold, margin, similar_chars))
    parts.append(task)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(parts)}]


def render(messages: list[dict[str, str]], tokenizer, answer: str | None = None) -> tuple[str, str]:
    """(prompt text ending with the assistant header, answer text incl. end-of-turn).

    The answer part is taken from the chat template itself (full minus prompt),
    so the end-of-turn token is whatever the template uses.
    """
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if answer is None:
        return prompt, ""
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}],
                                         tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("chat template does not extend the generation prompt; cannot split answer")
    return prompt, full[len(prompt):]


def encode(messages: list[dict[str, str]], tokenizer, answer: str | None = None
           ) -> tuple[list[int], list[int], list[int]]:
    """Token ids (before image, after image, answer). Image tokens go between the first two."""
    prompt, ans = render(messages, tokenizer, answer)
    if IMAGE_PLACEHOLDER in prompt:
        head, tail = prompt.split(IMAGE_PLACEHOLDER, 1)
    else:
        head, tail = prompt, ""
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
    return enc(head), enc(tail), enc(ans)
