"""``spinefm compare``: a candidate and reference bundles scored on the same held-out cases of one dataset.

A retrained candidate whose encoders changed (align) cannot be compared on stored embeddings: both models
have to see the images. Each bundle embeds the dataset's ``--split`` cases (T1+T2 view, as ``analyze``) and
its own diagnosis head scores them; only the cases every model could embed are kept, so the AUROCs (with
bootstrap CIs, ``spinefm.train.retrain.evaluate_head``) are on identical cases. Writes one JSON::

    spinefm compare --candidate /tmp/run/calibrated --reference base=models/bundles/spineagent-phantom-nano \\
        --dataset /tmp/run/dataset --split test --n-boot 200 --out /tmp/run/compare.json

A reference that cannot be scored (another preprocessing, an unreadable bundle) is reported with the reason
instead of failing the candidate's evaluation.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

log = logging.getLogger("spinefm.train.compare")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--candidate", required=True, help="bundle or stage directory of the candidate")
    p.add_argument("--reference", action="append", default=[], metavar="NAME=DIR",
                   help="a model to score on the same cases (repeatable), e.g. base=models/bundles/x")
    p.add_argument("--dataset", required=True, help="dataset directory (spinefm dataset build)")
    p.add_argument("--split", default="test", help="held-out split(s), comma-separated")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--threads", type=int, default=None)


@torch.no_grad()
def embed(model_dir, dataset, splits: set[str]) -> tuple[object, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(diagnosis head, {case_id: embedding}, {case_id: labels}) of one model on the dataset's splits."""
    from ..bundle import load_model_dir
    from .features import case_views

    model, _ = load_model_dir(model_dir)
    model.eval()
    cases = dataset.cases(splits, model.cfg.preprocess)
    view = case_views(model, cases)["all"]
    ids = [cases[i].case_id for i in view["idx"].tolist()]
    labels = {cases[i].case_id: cases[i].label_vector(model.cfg.conditions) for i in view["idx"].tolist()}
    return model.diagnosis.eval(), dict(zip(ids, view["emb"])), labels


@torch.no_grad()
def compare(candidate, references: dict[str, str], dataset_dir, splits: set[str], n_boot: int = 200,
            seed: int = 0) -> dict:
    """{"candidate": metrics, "references": {name: metrics | None}, "reference_errors", "n_test", "case_ids",
    "operating_points_test"} with metrics as ``spinefm.train.retrain.evaluate_head`` gives them."""
    from ..dataset import Dataset
    from .retrain import evaluate_head
    from .operating_points import held_out_counts

    ds = Dataset(dataset_dir)
    head, emb, labels = embed(candidate, ds, splits)
    others, errors = {}, {}
    for name, path in references.items():
        try:
            others[name] = embed(path, ds, splits)
        except Exception as exc:  # noqa: BLE001 - a reference that cannot see these cases is reported, not fatal
            errors[name] = f"{type(exc).__name__}: {exc}"
            log.warning("reference %s (%s) not scored: %s", name, path, errors[name])
    ids = sorted(set(emb).intersection(*(set(o[1]) for o in others.values())))
    if not ids:
        raise SystemExit(f"compare: no case of split(s) {','.join(sorted(splits))} of {dataset_dir} could be "
                         "embedded by every model")

    def score(h, e, lab) -> dict:
        x, y = torch.stack([e[i] for i in ids]), torch.stack([lab[i] for i in ids])
        return evaluate_head(h, x, y, n_boot=n_boot, seed=seed)

    x, y = torch.stack([emb[i] for i in ids]), torch.stack([labels[i] for i in ids])
    return {"split": ",".join(sorted(splits)), "n_test": len(ids), "case_ids": ids,
            "candidate": score(head, emb, labels),
            "references": {name: score(*o) for name, o in others.items()},
            "reference_errors": errors,
            "operating_points_test": held_out_counts(torch.sigmoid(head(x)), y, head)}


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    refs = {}
    for item in args.reference:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--reference must be NAME=DIR, not {item!r}")
        refs[name] = path
    result = compare(args.candidate, refs, args.dataset, set(args.split.split(",")), args.n_boot, args.seed)
    Path(args.out).write_text(json.dumps(result, indent=1))
    log.info("compared on %d %s cases: candidate mean AUROC %s; %s", result["n_test"], result["split"],
             result["candidate"]["mean_auroc"],
             "; ".join(f"{k} {v['mean_auroc']}" for k, v in result["references"].items()) or "no reference")
    return 0
