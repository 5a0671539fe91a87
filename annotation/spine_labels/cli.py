"""Command line: ``python -m spine_labels extract|evaluate``.

extract: reports (CSV/JSON/JSONL) -> one JSON line per study with its LabelSet.
evaluate: per-condition accuracy / sensitivity / specificity / kappa of
predicted labels against verified ones, or of a labeler on phantom reports.
Row errors go to stderr with their row numbers; the exit status is 1 when
any row failed so a cron job notices.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .agreement import evaluate, format_table
from .importing import read_reports
from .llm import LLMLabeler
from .rules import RuleLabeler


def _labeler(args: argparse.Namespace) -> RuleLabeler | LLMLabeler:
    if args.labeler == "rules":
        return RuleLabeler()
    if not args.base_url or not args.model:
        raise SystemExit("--labeler llm needs --base-url and --model")
    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    return LLMLabeler(args.base_url, args.model, api_key=key, timeout=args.timeout,
                      max_retries=args.max_retries, json_mode=not args.no_json_mode)


def _add_labeler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labeler", choices=("rules", "llm"), default="rules")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    p.add_argument("--model", help="model name sent to the endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--max-retries", type=int, default=2)
    p.add_argument("--no-json-mode", action="store_true", help="do not send response_format=json_object")


def cmd_extract(args: argparse.Namespace) -> int:
    rows, errors = read_reports(args.inp, strict_uid=not args.lenient_uid)
    for e in errors:
        print(f"{args.inp}: {e}", file=sys.stderr)
    label = _labeler(args).label
    out = Path(args.out)
    n = 0
    with out.open("w", encoding="utf-8") as fh:
        for r in rows:
            ls = label(r.text)
            rec = {"study_instance_uid": r.study_instance_uid, "accession": r.accession, "date": r.date,
                   "row": r.row, **ls.to_dict()}
            fh.write(json.dumps(rec) + "\n")
            n += 1
    print(f"labeled {n} reports -> {out}; {len(errors)} row errors", file=sys.stderr)
    return 1 if errors else 0


def _load_labels(path: str) -> dict[str, dict[str, int]]:
    """study_instance_uid -> {condition: value} from JSONL/JSON (LabelSet or plain mapping) or CSV columns."""
    p = Path(path)
    out: dict[str, dict[str, int]] = {}
    if p.suffix.lower() == ".csv":
        import csv
        with p.open(newline="", encoding="utf-8-sig") as fh:
            for rec in csv.DictReader(fh):
                uid = rec.pop("study_instance_uid")
                out[uid] = {k: int(v) for k, v in rec.items() if v not in ("", None) and k not in ("accession", "date", "text", "report")}
        return out
    text = p.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
        recs = obj if isinstance(obj, list) else obj.get("reports", [obj])
    except json.JSONDecodeError:
        recs = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    for rec in recs:
        labels: Any = rec["labels"]
        out[rec["study_instance_uid"]] = {k: int(v["value"] if isinstance(v, dict) else v) for k, v in labels.items()}
    return out


def _report(metrics: dict, args: argparse.Namespace, title: str) -> None:
    table = format_table(metrics)
    print(title)
    print(table)
    if args.out:
        Path(args.out).write_text(f"{title}\n\n{table}\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({k: m.to_dict() for k, m in metrics.items()}, indent=2), encoding="utf-8")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.phantoms:
        from .phantoms import evaluate_phantoms, quick_config
        labeler = _labeler(args)
        metrics, misses = evaluate_phantoms(args.phantoms, args.seed, labeler.label,
                                            quick_config() if args.phantom_quick else None)
        version = labeler.version
        quick = " (quick config: smoke test only)" if args.phantom_quick else ""
        _report(metrics, args, f"SYNTHETIC phantom reports: n={args.phantoms}, seed={args.seed}, "
                               f"labeler={version}{quick}")
        if args.misses:
            Path(args.misses).write_text("\n".join(json.dumps(m) for m in misses) + "\n", encoding="utf-8")
        return 0
    if not args.truth or not (args.pred or args.inp):
        raise SystemExit("evaluate needs --phantoms N, or --truth with --pred (labels JSONL) or --in (reports)")
    truth = _load_labels(args.truth)
    if args.pred:
        pred = _load_labels(args.pred)
    else:
        rows, errors = read_reports(args.inp, strict_uid=not args.lenient_uid)
        for e in errors:
            print(f"{args.inp}: {e}", file=sys.stderr)
        labeler = _labeler(args)
        pred = {r.study_instance_uid: labeler.label(r.text).as_dict() for r in rows}
    common = [u for u in truth if u in pred]
    missing = len(truth) - len(common)
    if missing:
        print(f"{missing} verified studies have no prediction and are skipped", file=sys.stderr)
    metrics = evaluate([truth[u] for u in common], [pred[u] for u in common])
    _report(metrics, args, f"n={len(common)} studies with verified labels")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m spine_labels", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract", help="label reports from CSV/JSON into JSONL")
    ex.add_argument("--in", dest="inp", required=True)
    ex.add_argument("--out", required=True)
    ex.add_argument("--lenient-uid", action="store_true", help="accept study ids that are not DICOM UIDs")
    _add_labeler_args(ex)
    ev = sub.add_parser("evaluate", help="per-condition accuracy table")
    ev.add_argument("--phantoms", type=int, default=0, help="score on N synthetic phantom reports")
    ev.add_argument("--seed", type=int, default=11)
    ev.add_argument("--truth", help="verified labels (JSONL/JSON/CSV keyed by study_instance_uid)")
    ev.add_argument("--pred", help="predicted labels (output of extract)")
    ev.add_argument("--in", dest="inp", help="reports to label on the fly instead of --pred")
    ev.add_argument("--lenient-uid", action="store_true")
    ev.add_argument("--out", help="write the markdown table here")
    ev.add_argument("--json", help="write metrics JSON here")
    ev.add_argument("--misses", help="phantoms: write disagreeing cases (JSONL) here")
    ev.add_argument("--phantom-quick", action="store_true", help="phantoms: small images, no axials (tests only)")
    _add_labeler_args(ev)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cmd_extract(args) if args.cmd == "extract" else cmd_evaluate(args)
