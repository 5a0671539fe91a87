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

``--level-fit prior`` is how retraining on a site's verified labels uses their levels (the platform's
``heads`` / ``align+heads`` chains, backend/training/chain.py): the dataset's verified present levels are
findings without a box (spinefm.dataset.tables.verified_level_findings); each is placed with the
segmentation agent's box on that study (``--level-centres predicted``) and only the head's per-condition
prior over levels is refit (:func:`refit_prior`). Why only the prior: a site's verified labels name levels
but draw no boxes, so the position net (which maps a box to the level axis) has no ground truth to learn
from there, and training it on the model's own boxes would teach it to agree with itself; the prior is what
a site's levels can honestly move (its population, how its readers name levels), and with the position net
fixed its fit is convex (a cross-entropy linear in the prior). A pull toward the --init head's prior keeps
a handful of verified levels from erasing it; conditions without a verified level keep their prior.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from ..bundle import resave_bundle
from .level_agent import level_markdown, level_metrics, train_level_head, training_examples
from .common import add_common_arguments, load_cases, load_eval_cases, open_finished_model
from .features import case_views

log = logging.getLogger("spinefm.train.levels")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--level-steps", type=int, default=400)
    p.add_argument("--level-centres", default="gt", choices=["gt", "predicted", "both"],
                   help="box centres the head trains on: ground truth, the segmentation agent's, or both")
    p.add_argument("--level-fit", default="fresh", choices=["fresh", "prior"],
                   help="fresh: a new level head on the training cases' findings; prior: keep the --init head's "
                        "position net and refit its per-condition prior over levels (retraining on verified levels)")
    p.add_argument("--prior-pull", type=float, default=1e-2,
                   help="--level-fit prior: weight of the squared distance to the --init head's prior")
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


def refit_prior(model, cases, steps: int, vs: dict | None = None, centres: str = "predicted",
                pull: float = 1e-2, lr: float = 0.05) -> dict:
    """Refit ``model.level.prior`` in place on the cases' level findings (full-batch Adam on the level
    cross-entropy plus ``pull`` x the squared distance to the head's prior before); the position net is
    frozen. A head that no levels stage fitted, or cases without a usable level, leave the head as it was
    (the record says why)."""
    head = model.level
    if not head.is_fitted:
        return {"level_fit": "prior", "level_examples": 0,
                "level_kept": "the --init level head was never fitted (run the levels stage on phantoms first)"}
    data = training_examples(model, cases, centres, vs)
    if not data:
        return {"level_fit": "prior", "level_examples": 0, "level_kept": "no finding with a level in the cases"}
    head.eval()  # the position net as analyze runs it (no dropout), and frozen
    head.requires_grad_(False)
    before = head.prior.detach().clone()
    prior = head.prior.requires_grad_(True)
    opt = torch.optim.Adam([prior], lr=lr)
    with torch.no_grad():
        initial = float(head.loss(data["case"], data["centre"], data["cond"], data["target"]))
    loss = torch.tensor(initial)
    for _ in range(steps):
        loss = head.loss(data["case"], data["centre"], data["cond"], data["target"])
        total = loss + pull * (prior - before).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    head.requires_grad_(False)
    conds = sorted({head.conditions[i] for i in data["cond"].tolist()})
    return {"level_fit": "prior", "level_examples": int(data["target"].numel()), "level_centres": centres,
            "level_findings_cases": int(torch.unique(data["group"]).numel()), "level_conditions": conds,
            "level_loss_initial": initial, "level_loss": float(loss.detach())}


def run(args) -> str:
    model, manifest = open_finished_model(args, "levels")
    cases = load_cases(args, model.cfg.preprocess)
    vs = case_views(model, cases, progress=not args.no_progress)
    if args.level_fit == "prior":
        info = refit_prior(model, cases, args.level_steps, vs, args.level_centres, args.prior_pull)
    else:
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
