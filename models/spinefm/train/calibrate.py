"""Stage ``calibrate``: the diagnosis head's operating points from held-out cases.

Runs on a levels/heads stage output or a finished bundle; only the diagnosis head's
thresholds, hedged band and per-condition validation change (spinefm.train.operating_points).
The held-out cases are ``--splits`` of ``--phantom-seed`` (default: the training seed's val and
test splits, which trained neither the encoders nor the probes; a seed never used in training may
give all its splits, as for the shipped bundle). The evaluation seed is refused. With
``--eval-seed`` the operating points, before and after, are counted on its cases too::

    spinefm calibrate --init models/bundles/spineagent-phantom-nano --out /tmp/calibrated \\
        --n-cases 600 --max-slices 8 --threads 1 --eval-seed 7 --eval-cases 40

The table and the points go to ``--report`` (default ``<out>-calibration``) and into the
manifest's ``operating_points``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

import torch

from ..bundle import resave_bundle
from .common import add_common_arguments, load_cases, load_eval_cases, open_finished_model
from .features import case_views
from .operating_points import apply_operating_points, fit_operating_points, held_out_counts

log = logging.getLogger("spinefm.train.calibrate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.set_defaults(splits="val,test")
    p.add_argument("--present-specificity", type=float, default=0.95,
                   help="held-out specificity of an asserted finding, per condition")
    p.add_argument("--possible-specificity", type=float, default=0.8,
                   help="held-out specificity of a hedged ('possible') finding, per condition")
    p.add_argument("--min-cases", type=int, default=5, help="fewest held-out positives and negatives to validate")
    p.add_argument("--z", type=float, default=1.645,
                   help="one-sided z of the AUROC lower bound that must exceed 0.5 (1.645: 95%%)")
    p.add_argument("--rule-out-sensitivity", type=float, default=0.9,
                   help="Wilson 95%% lower bound of the held-out sensitivity (p >= possible) a condition needs "
                        "before the draft may call it absent")
    p.add_argument("--name", default=None, help="bundle name (default: the --init manifest's)")
    p.add_argument("--version", default=None, help="bundle version (default: the --init manifest's)")
    p.add_argument("--eval-seed", type=int, default=None, help="also count the points on this phantom seed (7)")
    p.add_argument("--eval-cases", type=int, default=40)
    p.add_argument("--report", default=None, help="directory for calibration.json/.md (default: <out>-calibration)")


@torch.no_grad()
def case_probabilities(model, cases) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagnosis probabilities and labels of the T1+T2 case view (what ``analyze`` decides on)."""
    view = case_views(model, cases)["all"]
    probs = torch.sigmoid(model.diagnosis(view["emb"]))
    labels = torch.stack([cases[i].label_vector(model.cfg.conditions) for i in view["idx"].tolist()])
    return probs, labels


def _rate(m: dict | None, key: str) -> str:
    if not m or m[key]["value"] is None:
        return "n/a"
    lo, hi = m[key]["ci95"]
    return f"{m[key]['value']:.2f} [{lo:.2f}, {hi:.2f}]"


def markdown(points, counts: dict) -> str:
    lines = ["| condition | held-out AUROC (lower bound) | pos / neg | validated | present at | possible at "
             "| sensitivity, p >= possible [95% CI] | NPV below possible | rule out (normal statement) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        auc = "n/a" if p.auroc is None else f"{p.auroc:.3f} ({p.auroc_lower:.3f})"
        at = (f"{p.present:.3f}", f"{p.possible:.3f}") if p.validated else ("never", "never")
        lines.append(f"| {p.condition} | {auc} | {p.n_pos} / {p.n_neg} | {'yes' if p.validated else 'no: ' + p.reason} "
                     f"| {at[0]} | {at[1]} | {_rate(p.at_possible, 'sensitivity')} | {_rate(p.at_possible, 'npv')} "
                     f"| {'yes' if p.rule_out else 'no'} |")
    lines += ["", "| cases, operating points | false findings / case | hedged false / case | sensitivity (asserted) "
              "| sensitivity (asserted or hedged) |", "|---|---|---|---|---|"]
    for name, c in counts.items():
        lines.append(f"| {name} | {c['false_findings_per_case']:.2f} | {c['hedged_false_per_case']:.2f} "
                     f"| {c['sensitivity_asserted']:.3f} | {c['sensitivity_asserted_or_hedged']:.3f} |")
    return "\n".join(lines)


def run(args) -> str:
    if not 0 <= args.possible_specificity <= args.present_specificity <= 1:
        raise SystemExit("calibrate: need 0 <= --possible-specificity <= --present-specificity <= 1 "
                         f"(got {args.possible_specificity} and {args.present_specificity})")
    if not args.dataset and args.data == "phantom" and args.eval_seed is not None and args.phantom_seed == args.eval_seed:
        raise SystemExit(f"calibrate: phantom seed {args.phantom_seed} is the evaluation seed; operating points "
                         "fitted on it would be tuned on the test set")
    model, manifest = open_finished_model(args, "calibrate")
    cases = load_cases(args, model.cfg.preprocess)
    if not cases:
        where = f"dataset {args.dataset}" if args.dataset else f"phantom seed {args.phantom_seed}"
        raise SystemExit(f"calibrate: no cases in splits {args.splits!r} of {where}")
    probs, labels = case_probabilities(model, cases)
    before = copy.deepcopy(model.diagnosis)
    points = fit_operating_points(probs, labels, model.cfg.conditions, args.present_specificity,
                                  args.possible_specificity, args.min_cases, args.z, args.rule_out_sensitivity)
    apply_operating_points(model.diagnosis, points)
    counts = {f"calibration ({args.splits}), before": held_out_counts(probs, labels, before),
              f"calibration ({args.splits}), after": held_out_counts(probs, labels, model.diagnosis)}
    if args.eval_seed is not None or args.eval_dataset:
        test = load_eval_cases(args, model.cfg.preprocess)
        tp, tl = case_probabilities(model, test)
        held = f"eval dataset {Path(args.eval_dataset).name}" if args.eval_dataset else f"eval seed {args.eval_seed}"
        counts[f"{held}, before"] = held_out_counts(tp, tl, before)
        counts[f"{held}, after"] = held_out_counts(tp, tl, model.diagnosis)
    md = markdown(points, counts)
    print(md)
    report = Path(args.report) if args.report else Path(args.out).parent / f"{Path(args.out).name}-calibration"
    report.mkdir(parents=True, exist_ok=True)
    record = {"command": getattr(args, "command_line", None), "phantom_seed": None if args.dataset else args.phantom_seed,
              "dataset": args.dataset and str(Path(args.dataset).resolve()), "splits": args.splits, "n_cases": int(probs.shape[0]),
              "present_specificity": args.present_specificity, "possible_specificity": args.possible_specificity,
              "min_cases": args.min_cases, "z": args.z, "rule_out_sensitivity": args.rule_out_sensitivity,
              "rule_out": [p.condition for p in points if p.rule_out],
              "points": [p.to_dict() for p in points], "counts": counts}
    (report / "calibration.json").write_text(json.dumps(record, indent=2))
    (report / "calibration.md").write_text(md + "\n")
    resave_bundle(model, args.init, args.out, manifest, name=args.name, version=args.version,
                  extra={"operating_points": record})
    log.info("bundle with operating points written to %s", args.out)
    return args.out
