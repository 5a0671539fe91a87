"""Evaluate drafts against reference reports: clinical errors first, text overlap second.

Per condition: false positives (draft says present, reference label absent) and
omissions (reference present, draft absent/not mentioned); hedged mentions
(-1) are counted apart. Text: corpus BLEU-4 (Papineni, brevity penalty, no
smoothing), ROUGE-L F1 (word LCS), word-level Levenshtein distance to the
reference (rapidfuzz) raw and per reference word. Labels come from
the labeler the caller passes (:func:`spinefm.report.labels.load_labeler`: an installed ``spinefm.labelers`` entry point).
Level agreement: among conditions the reference calls present and the draft
calls present, the share where a level the draft gives for it (parsed by
``spine_labels``) is one of the reference levels (ground truth when given);
None without ``spine_labels``.

CLI::

    python -m spinefm.train.report_eval --agent-dir runs/ra/report_agent \
        --baseline-dir runs/ra_direct/report_agent --n 60 --out docs-table.md
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from spinefm.conditions import CONDITION_KEYS
from spinefm.report.labels import ReportLabeler, load_labeler


def _words(text: str) -> list[str]:
    import re
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*|[^\sa-z0-9]", text.lower())


def bleu4(hyps: list[str], refs: list[str]) -> float:
    match, total = [0] * 4, [0] * 4
    hl = rl = 0
    for h, r in zip(hyps, refs):
        hw, rw = _words(h), _words(r)
        hl, rl = hl + len(hw), rl + len(rw)
        for n in range(1, 5):
            hc = Counter(tuple(hw[i:i + n]) for i in range(len(hw) - n + 1))
            rc = Counter(tuple(rw[i:i + n]) for i in range(len(rw) - n + 1))
            match[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            total[n - 1] += max(0, len(hw) - n + 1)
    if min(match) == 0 or hl == 0:
        return 0.0
    logp = sum(math.log(m / t) for m, t in zip(match, total)) / 4
    bp = 1.0 if hl > rl else math.exp(1 - rl / hl)
    return 100 * bp * math.exp(logp)


def rouge_l(hyp: str, ref: str) -> float:
    h, r = _words(hyp), _words(ref)
    if not h or not r:
        return 0.0
    prev = [0] * (len(r) + 1)
    for a in h:
        cur = [0]
        for j, b in enumerate(r):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, rc = lcs / len(h), lcs / len(r)
    return 100 * 2 * p * rc / (p + rc)


def word_edit_distance(hyp: str, ref: str) -> int:
    from rapidfuzz.distance import Levenshtein
    return Levenshtein.distance(hyp.split(), ref.split())


def level_agreement(drafts: list[str], references: list[str], ref_labels: list[dict[str, int]],
                    ref_levels: list[dict[str, list[str]]] | None = None, *,
                    labeler: ReportLabeler) -> dict[str, Any]:
    """Share of (study, condition) present in both reference and draft whose draft level matches."""
    agree = n = 0
    for i, (d, r, rl) in enumerate(zip(drafts, references, ref_labels)):
        want = ref_levels[i] if ref_levels is not None else labeler.levels(r)
        got = labeler.levels(d)
        if want is None or got is None:
            return {"level_agree": None, "level_n": 0}
        dl = labeler.labels(d)
        for k in CONDITION_KEYS:
            if rl.get(k, 0) != 1 or dl.get(k, 0) != 1 or not want.get(k):
                continue
            n += 1
            agree += bool(set(got.get(k, [])) & set(want[k]))
    return {"level_agree": agree / n if n else None, "level_n": n}


def evaluate(drafts: list[str], references: list[str],
             ref_labels: list[dict[str, int]] | None = None,
             ref_levels: list[dict[str, list[str]]] | None = None, *, labeler: ReportLabeler) -> dict[str, Any]:
    """Metrics for one system; ``ref_labels`` default to labels extracted from the references,
    ``ref_levels`` ({condition: [levels]} per study) to levels parsed from them."""
    ref_labels = ref_labels or [labeler.labels(r) for r in references]
    per = {k: {"fp": 0, "omitted": 0, "hedged": 0, "ref_pos": 0, "ref_neg": 0} for k in CONDITION_KEYS}
    for d, rl in zip(drafts, ref_labels):
        dl = labeler.labels(d)
        for k in CONDITION_KEYS:
            ref, got = rl.get(k, 0), dl.get(k, 0)
            if ref == -1:
                continue
            per[k]["ref_pos" if ref == 1 else "ref_neg"] += 1
            if got == -1:
                per[k]["hedged"] += 1
            elif ref == 0 and got == 1:
                per[k]["fp"] += 1
            elif ref == 1 and got == 0:
                per[k]["omitted"] += 1
    eds = [word_edit_distance(d, r) for d, r in zip(drafts, references)]
    n_ref = sum(len(r.split()) for r in references)
    return {
        "n": len(drafts), "labeler": labeler.name,
        "fp": sum(v["fp"] for v in per.values()), "omitted": sum(v["omitted"] for v in per.values()),
        "hedged": sum(v["hedged"] for v in per.values()),
        "bleu4": bleu4(drafts, references),
        "rougeL": sum(rouge_l(d, r) for d, r in zip(drafts, references)) / max(1, len(drafts)),
        "word_edit_mean": sum(eds) / max(1, len(eds)), "word_edit_per_ref_word": sum(eds) / max(1, n_ref),
        "per_condition": per, **level_agreement(drafts, references, ref_labels, ref_levels, labeler=labeler),
    }


def table(systems: dict[str, dict[str, Any]]) -> str:
    """Markdown: a summary table and a per-condition FP/omitted table, systems side by side."""
    names = list(systems)
    lines = ["| system | n | false pos. | omitted | hedged | level agreement (n) | BLEU-4 | ROUGE-L | word edits (mean) | edits / ref word |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        m = systems[n]
        la = m.get("level_agree")
        level = f"{la:.2f} ({m.get('level_n', 0)})" if la is not None else f"n/a ({m.get('level_n', 0)})"
        lines.append(f"| {n} | {m['n']} | {m['fp']} | {m['omitted']} | {m['hedged']} | {level} | {m['bleu4']:.1f} | "
                     f"{m['rougeL']:.1f} | {m['word_edit_mean']:.1f} | {m['word_edit_per_ref_word']:.2f} |")
    lines += ["", "| condition | ref +/- | " + " | ".join(f"{n} FP / omitted" for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
    for k in CONDITION_KEYS:
        first = systems[names[0]]["per_condition"][k]
        cells = [f"{systems[n]['per_condition'][k]['fp']} / {systems[n]['per_condition'][k]['omitted']}"
                 for n in names]
        lines.append(f"| {k} | {first['ref_pos']}/{first['ref_neg']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from spinefm.report import make_drafter
    from spinefm.report.data import attach_similar, phantom_studies, toy_studies

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent-dir", type=Path, help="report_agent/ with agent tokens (SpineAgent)")
    ap.add_argument("--baseline-dir", type=Path, help="report_agent/ trained with --no-agents (LLaVA-direct)")
    ap.add_argument("--phantom-seed", type=int, default=None,
                    help="held-out spine_phantom studies (seed 7 = the fixed eval set)")
    ap.add_argument("--pool-seed", type=int, default=1, help="phantom seed of the similar-case pool (train split)")
    ap.add_argument("--pool-n", type=int, default=100)
    ap.add_argument("--phantom-cache", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bundle", type=Path, default=None,
                    help="SpineFM bundle: real agent outputs + slice embeddings on full phantoms "
                         "(else stand-ins); llava agents must have been trained on the same width")
    ap.add_argument("--n", type=int, default=200, help="studies generated (held-out ones are evaluated)")
    ap.add_argument("--in-dim", type=int, default=64)
    ap.add_argument("--max-eval", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--out", type=Path, help="write markdown table here; JSON beside it")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    if args.bundle is not None:
        from spinefm.bundle import load_bundle
        from spinefm.report.data import Study, bundle_analysis
        bundle = load_bundle(args.bundle)
        studies = []
        for i in range(args.n):
            truth, result, emb = bundle_analysis(bundle, args.phantom_seed if args.phantom_seed is not None else 7, i)
            studies.append(Study(f"phantom-{i}", truth, result, emb, truth.get("split", "test")))
        studies = [s for s in studies if s.split == "test"]
    elif args.phantom_seed is not None:
        pool = phantom_studies(args.pool_seed, range(args.pool_n), args.in_dim,
                               cache_dir=args.phantom_cache, split="train")
        studies = [s for s in phantom_studies(args.phantom_seed, range(args.n), args.in_dim,
                                              cache_dir=args.phantom_cache) if s.split == "test"]
        attach_similar(studies, pool)
    else:
        studies = toy_studies(args.n, 0, args.in_dim)
    test = [s for s in studies if s.split != "train"][: args.max_eval]
    refs = [s.report for s in test]
    truth = [{k: s.truth["labels"].get(k, 0) for k in CONDITION_KEYS} for s in test]
    truth_levels = [{k: [f["level"] for f in s.truth.get("findings", []) if f.get("condition") == k
                         and f.get("label") == 1 and f.get("level")] for k in CONDITION_KEYS} for s in test]
    results = [s.result for s in test]
    embs = [s.embeddings for s in test]
    drafters = {"template": make_drafter({"backend": "template"})}
    if args.agent_dir:
        drafters["llava + agents (SpineAgent)"] = make_drafter({"backend": "llava", "agent_dir": str(args.agent_dir),
                                                                     "max_new_tokens": args.max_new_tokens})
    if args.baseline_dir:
        drafters["llava direct (baseline)"] = make_drafter({"backend": "llava", "agent_dir": str(args.baseline_dir),
                                                                  "max_new_tokens": args.max_new_tokens})
    labeler = load_labeler("rules")
    systems = {}
    for name, d in drafters.items():
        drafts = d.draft_many(results, embs)
        systems[f"{name} [{d.version}]"] = evaluate(drafts, refs, truth, truth_levels, labeler=labeler)
    md = table(systems)
    print(md)
    src = f"spine_phantom seed {args.phantom_seed}" if args.phantom_seed is not None else "toy generator"
    src += f", agent outputs + embeddings from bundle {args.bundle.name}" if args.bundle else ", stand-in agent outputs"
    print(f"\nlabels: reference = ground truth; drafts via {labeler.name}; n = {len(test)} held-out studies ({src})")
    if args.out:
        args.out.write_text(md + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(systems, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
