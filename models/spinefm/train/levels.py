"""Stage ``levels``: fit the level head on frozen case embeddings and ground-truth finding boxes.

Runs on a previous stage's output or on a finished bundle (the encoders,
diagnosis and segmentation heads are not touched), so a level head can be
added to an existing bundle in about a minute on one CPU thread::

    spinefm levels --init models/bundles/spineagent-phantom-nano \\
        --out models/bundles/spineagent-phantom-nano --version 0.2.0 \\
        --n-cases 240 --img-size 112 --max-slices 8 --threads 1 --eval-seed 7 --eval-cases 40

With ``--eval-seed`` the held-out level table (spinefm.train.level_agent.level_metrics,
with baselines) is computed, printed, written to ``--report`` and its summary
recorded in the manifest's ``metrics.level``. A bundle's retrieval index and
other manifest fields are carried over; only ``level.safetensors``, the
version and the metrics change (the other files keep their bytes and hashes).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..bundle import resave_bundle
from .level_agent import level_markdown, level_metrics, train_level_head
from .common import add_common_arguments, load_cases, load_eval_cases, open_finished_model
from .features import case_views

log = logging.getLogger("spinefm.train.levels")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--level-steps", type=int, default=400)
    p.add_argument("--level-centres", default="gt", choices=["gt", "predicted", "both"],
                   help="box centres the head trains on: ground truth, the segmentation agent's, or both")
    p.add_argument("--name", default=None, help="bundle name (default: the --init manifest's)")
    p.add_argument("--version", default=None, help="bundle version (default: the --init manifest's)")
    p.add_argument("--eval-seed", type=int, default=None, help="held-out phantom seed for the level table (7)")
    p.add_argument("--eval-cases", type=int, default=40)
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--report", default=None, help="directory for level_metrics.json/.md (default: --out/../<name>-levels-eval)")


def summarize_levels(res: dict) -> dict:
    """The manifest's level metrics: each row's accuracy, CI and within-one-level accuracy."""
    out = {"label": res["label"], "n_findings": res["n_items"], "n_cases": res["n_cases"]}
    for r in res["rows"]:
        out[r["name"]] = {"accuracy": r["accuracy"]["value"], "ci95": r["accuracy"]["ci95"],
                          "within_one": r["within_one"]["value"], "n": r["accuracy"]["n"]}
    return out


def run(args) -> str:
    model, manifest = open_finished_model(args, "levels")
    cases = load_cases(args, model.cfg.preprocess)
    vs = case_views(model, cases, progress=not args.no_progress)
    info = train_level_head(model, cases, args.level_steps, args.seed, vs, args.level_centres)
    log.info("levels: %s", info)
    metrics = dict(manifest.get("metrics") or {})
    if args.eval_seed is not None or args.eval_dataset:
        test = load_eval_cases(args, model.cfg.preprocess)
        res = level_metrics(model, cases, test, args.n_boot, args.level_steps, args.seed, train_vs=vs,
                            centres=args.level_centres)
        md = level_markdown(res)
        print(md)
        report = Path(args.report) if args.report else Path(args.out).parent / f"{Path(args.out).name}-levels-eval"
        report.mkdir(parents=True, exist_ok=True)
        (report / "level_metrics.json").write_text(json.dumps(res, indent=2))
        (report / "level_metrics.md").write_text(md)
        metrics["level"] = summarize_levels(res)
    resave_bundle(model, args.init, args.out, manifest, name=args.name, version=args.version, metrics=metrics,
                  extra={"level_training": {"command": getattr(args, "command_line", None), **info}})
    log.info("bundle with level head written to %s", args.out)
    return args.out
