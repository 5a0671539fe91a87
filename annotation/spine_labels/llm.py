"""LLM labeler through any OpenAI-compatible chat endpoint, never trusted blindly.

The paper labels reports with a large LLM (Llama-3.3-70B, Phi-4). Sites run
such a model behind vLLM, llama.cpp, Ollama or a hosted API, all of which
speak ``POST {base_url}/chat/completions``. What comes back is checked, not
believed: strict JSON with every condition key, values in {1, 0, -1},
evidence quotes that must occur verbatim in the report. Malformed replies,
HTTP errors and timeouts are retried; what still fails falls back to the
rule labeler and says so in ``source`` ("llm-fallback-rules") and flags.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import requests

from spinefm import conditions as registry
from spinefm.conditions import LabelValue

from .levels import find_levels
from .lexicon import _SEVERITY, normalize_severity
from .rules import RuleLabeler
from .schema import SOURCE_FALLBACK, SOURCE_LLM, VALID_VALUES, Evidence, Label, LabelSet, condition_keys
from .sentences import split_sentences

PROMPT_VERSION = "p1"
SEVERITIES = ("mild", "mild-moderate", "moderate", "moderate-severe", "severe")

# Clinical definitions for the prompt, keyed by condition key; a site's new condition uses its display name.
DEFINITIONS: dict[str, str] = {
    "canal": "central spinal canal stenosis. 'Stenosis' without a site means the canal.",
    "neuroforaminal": "neural foraminal narrowing/stenosis (exit foramina).",
    "subarticular": "subarticular (lateral) recess stenosis.",
    "herniation": "disc protrusion, extrusion, sequestration or herniation. A disc bulge alone is NOT herniation.",
    "disc_height": "loss of intervertebral disc height / disc space narrowing.",
    "spondylolisthesis": "anterolisthesis, retrolisthesis or lateral listhesis of any grade.",
    "par": "pars interarticularis defect (spondylolysis).",
    "compression": "compression or mass effect on the spinal cord, conus, cauda equina or thecal sac.",
    "fracture": "vertebral body fracture or compression deformity, acute or chronic (not pars defects).",
    "edema": "bone marrow edema of a vertebra (not soft-tissue, muscle or cord edema).",
    "inflammation": "inflammatory or infectious change: discitis, osteomyelitis, facet synovitis, abscess, arachnoiditis.",
    "hemangioma": "vertebral hemangioma.",
    "lipomatosis": "epidural lipomatosis (excess epidural fat; normal epidural fat is not).",
    "synovial": "facet (juxtafacet) synovial cyst.",
    "cyst": "other spinal cysts, e.g. perineural/Tarlov, arachnoid (not synovial cysts, not organ cysts such as renal).",
    "lesion_intramedullary": "intradural intramedullary lesion or cord signal abnormality, syrinx, myelomalacia.",
    "lesion_extramedullary": "intradural extramedullary lesion: meningioma, schwannoma, nerve sheath tumor, drop metastasis.",
}


class SchemaError(ValueError):
    """The reply is not the JSON we asked for."""


def build_messages(text: str) -> list[dict[str, str]]:
    """One prompt listing all conditions with definitions (one request per report)."""
    lines = []
    for c in registry.CONDITIONS:
        syn = ", ".join(c.synonyms)
        lines.append(f'- "{c.key}": {c.display_name}: {DEFINITIONS.get(c.key, c.display_name)}'
                     + (f" Synonyms: {syn}." if syn else ""))
    keys = [c.key for c in registry.CONDITIONS]
    example = {"labels": {keys[0]: {"value": 1, "evidence": ["<exact quote from the report>"], "severity": "mild"},
                          keys[1]: {"value": 0, "evidence": [], "severity": None}}}
    system = (
        "You are a neuroradiologist extracting structured labels from a spine MRI report. "
        "For EVERY condition below give a ternary value: 1 = present (any severity, including mild or chronic), "
        "0 = absent, negated, or not mentioned, -1 = uncertain (possible, likely, suspicious for, cannot be excluded, "
        "questionable, versus). Text in the clinical history/indication is the question asked, not a finding. "
        "'No significant stenosis' is 0; 'mild stenosis' is 1.\n"
        "Conditions:\n" + "\n".join(lines) + "\n\n"
        "Answer with ONE JSON object and nothing else, of the form "
        + json.dumps(example) +
        f" with all {len(keys)} condition keys. 'value' is an integer 1, 0 or -1. 'evidence' lists exact, verbatim "
        "quotes copied from the report (a phrase or sentence) that support the value; it must not be empty when "
        "value is 1 or -1. 'severity' is one of " + ", ".join(SEVERITIES) + " or null."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": "Report:\n" + text}]


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S | re.I)


def parse_reply(content: str, keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Strict schema check of the model's reply; raises SchemaError with every problem found."""
    if not isinstance(content, str) or not content.strip():
        raise SchemaError("empty reply")
    fm = _FENCE.match(content)
    body = fm.group(1) if fm else content
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("labels"), dict):
        raise SchemaError('top level must be an object with a "labels" object')
    labels = obj["labels"]
    problems: list[str] = []
    missing = [k for k in keys if k not in labels]
    if missing:
        problems.append("missing condition keys: " + ", ".join(missing))
    out: dict[str, dict[str, Any]] = {}
    for k in keys:
        entry = labels.get(k)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            problems.append(f"{k}: must be an object")
            continue
        v = entry.get("value")
        if isinstance(v, bool) or not isinstance(v, int) or v not in VALID_VALUES:
            problems.append(f"{k}: value {v!r} not one of 1, 0, -1")
            continue
        ev = entry.get("evidence", [])
        if ev is None:
            ev = []
        if isinstance(ev, str):
            ev = [ev]
        if not isinstance(ev, list) or not all(isinstance(e, str) for e in ev):
            problems.append(f"{k}: evidence must be a list of strings")
            continue
        sev = entry.get("severity")
        if sev is not None and not isinstance(sev, str):
            problems.append(f"{k}: severity must be a string or null")
            continue
        out[k] = {"value": v, "evidence": [e for e in ev if e.strip()], "severity": sev}
    if problems:
        raise SchemaError("; ".join(problems))
    return out


def locate(quote: str, text: str) -> tuple[int, int] | None:
    """Offsets of a verbatim quote in the report, tolerant only of case and whitespace runs."""
    q = quote.strip().strip('"').strip()
    if not q:
        return None
    rx = r"\s+".join(re.escape(w) for w in q.split())
    m = re.search(rx, text, re.I)
    if m is None and q[-1:] in ".;,":
        m = re.search(r"\s+".join(re.escape(w) for w in q[:-1].split()), text, re.I)
    return (m.start(), m.end()) if m else None


class LLMLabeler:
    """Labels via an OpenAI-compatible endpoint, validated, with rule fallback.

    ``max_retries`` extra attempts after the first on malformed output, HTTP
    5xx/429, connection errors and timeouts. 4xx errors (bad key, unknown
    model) are not retried. ``json_mode`` sends
    ``response_format={"type": "json_object"}``; turn it off for servers that reject it.
    """

    source = SOURCE_LLM

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 max_retries: int = 2, temperature: float = 0.0, json_mode: bool = True,
                 retry_backoff: float = 0.5, fallback: RuleLabeler | None = None,
                 session: requests.Session | None = None) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.temperature = temperature
        self.json_mode = json_mode
        self.retry_backoff = retry_backoff
        self.fallback = fallback or RuleLabeler()
        self.session = session or requests.Session()
        self.version = f"llm:{model}:{PROMPT_VERSION}"

    # --- transport -------------------------------------------------------
    def _post(self, messages: list[dict[str, str]]) -> str:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if self.json_mode:
            payload["response_format"] = {"type": "json_object"}
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        r = self.session.post(self.url, json=payload, headers=headers, timeout=self.timeout)
        if r.status_code >= 400:
            raise _HTTPError(r.status_code, r.text[:200])
        try:
            return r.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise SchemaError("response is not an OpenAI chat completion (no choices[0].message.content)") from None

    # --- labeling --------------------------------------------------------
    def label(self, text: str) -> LabelSet:
        keys = condition_keys()
        rules = self.fallback.label(text)
        messages = build_messages(text)
        errors: list[str] = []
        best: dict[str, dict[str, Any]] | None = None
        attempts = 0
        for attempt in range(self.max_retries + 1):
            attempts = attempt + 1
            if attempt and self.retry_backoff:
                time.sleep(self.retry_backoff * attempt)
            try:
                content = self._post(messages)
            except _HTTPError as exc:
                errors.append(f"attempt {attempts}: HTTP {exc.status}")
                if 400 <= exc.status < 500 and exc.status not in (408, 429):
                    break
                continue
            except requests.Timeout:
                errors.append(f"attempt {attempts}: timeout after {self.timeout}s")
                continue
            except requests.RequestException as exc:
                errors.append(f"attempt {attempts}: {type(exc).__name__}")
                continue
            except SchemaError as exc:
                errors.append(f"attempt {attempts}: {exc}")
                continue
            try:
                parsed = parse_reply(content, keys)
            except SchemaError as exc:
                errors.append(f"attempt {attempts}: {exc}")
                messages = build_messages(text) + [
                    {"role": "assistant", "content": str(content)[:4000]},
                    {"role": "user", "content": f"Your reply was invalid ({exc}). Reply again with only the JSON object."},
                ]
                continue
            best = parsed
            unsupported = self._unsupported(parsed, text)
            if not unsupported:
                break
            errors.append(f"attempt {attempts}: evidence not found in report for " + ", ".join(unsupported))
            messages = build_messages(text) + [
                {"role": "assistant", "content": str(content)[:4000]},
                {"role": "user", "content": "These evidence quotes do not occur verbatim in the report: "
                 + ", ".join(unsupported) + ". Quote the report exactly. Reply again with only the JSON object."},
            ]
        meta = {"attempts": attempts, "errors": errors, "model": self.model, "prompt_version": PROMPT_VERSION}
        if best is None:
            labels = {k: Label(k, lab.value, lab.evidence, SOURCE_FALLBACK, lab.labeler_version,
                               ["llm_failed"]) for k, lab in rules.labels.items()}
            meta["fallback"] = "all"
            return LabelSet(labels, SOURCE_FALLBACK, self.version, meta)
        labels = {k: self._to_label(k, best[k], text, rules[k]) for k in keys}
        fell_back = [k for k, lab in labels.items() if lab.source == SOURCE_FALLBACK]
        if fell_back:
            meta["fallback"] = fell_back
        return LabelSet(labels, SOURCE_LLM, self.version, meta)

    def _unsupported(self, parsed: dict[str, dict[str, Any]], text: str) -> list[str]:
        """Conditions whose evidence is invented, or missing for a non-absent value."""
        bad = []
        for k, e in parsed.items():
            found = [q for q in e["evidence"] if locate(q, text)]
            if len(found) < len(e["evidence"]) or (e["value"] != LabelValue.ABSENT and not found):
                bad.append(k)
        return bad

    def _to_label(self, key: str, entry: dict[str, Any], text: str, rule_label: Label) -> Label:
        value = entry["value"]
        flags: list[str] = []
        evidence: list[Evidence] = []
        sentences = split_sentences(text)
        for q in entry["evidence"]:
            span = locate(q, text)
            if span is None:
                flags.append("invented_evidence")
                continue
            a, b = span
            sent = next((s for s in sentences if s.start <= a < s.end), None)
            lv = [x for lm in find_levels(text[a:b]) for x in lm.levels]
            if not lv and sent is not None:
                lv = [x for lm in find_levels(sent.text) for x in lm.levels] or list(sent.context_levels)
            sev = entry["severity"] if entry["severity"] in SEVERITIES else None
            if sev is None and value != LabelValue.ABSENT:
                sm = _SEVERITY.search(text, a, b)
                sev = normalize_severity(sm.group(1)) if sm else None
            evidence.append(Evidence(a, b, text[a:b], lv, sev, None, value,
                                     sent.text if sent else "", sent.start if sent else 0))
        if value != LabelValue.ABSENT and not evidence:
            # an unsupported positive/uncertain claim: do not trust it, use the rules for this condition
            flags.append(f"llm_said:{value}")
            return Label(key, rule_label.value, rule_label.evidence, SOURCE_FALLBACK, rule_label.labeler_version,
                         sorted(set(flags)) + ["unsupported_llm_label"])
        if rule_label.value != value:
            flags.append(f"rules_disagree:{rule_label.value}")
        return Label(key, value, evidence, SOURCE_LLM, self.version, sorted(set(flags)))


class _HTTPError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status


__all__ = ["LLMLabeler", "SchemaError", "build_messages", "parse_reply", "locate", "PROMPT_VERSION"]
