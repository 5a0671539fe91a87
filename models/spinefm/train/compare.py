"""``spinefm compare``: a candidate and reference bundles scored on the same held-out cases of one dataset.

A retrained candidate whose encoders changed (align) cannot be compared on stored embeddings: both models
have to see the images. Each bundle embeds the dataset's ``--split`` cases (T1+T2 view, as ``analyze``) and
its own diagnosis head scores them; only the cases every model could embed are kept, so the AUROCs (with
bootstrap CIs, ``spinefm.train.retrain.evaluate_head``) are on identical cases. Writes one JSON::

    spinefm compare --candidate /tmp/run/calibrated --reference base=models/bundles/spineagent-phantom-nano \\
        --dataset /tmp/run/dataset --split test --n-boot 200 --out /tmp/run/compare.json

A reference that cannot be scored (another preprocessing, an unreadable bundle) is reported with the reason
instead of failing the candidate's evaluation.

Each model's metrics also carry ``levels``: per-level agreement with the cases' findings that name a spinal
level (a platform export's verified present levels, spinefm.dataset.tables.verified_level_findings, or a
findings table's): for every (study, condition) present at a level, the model's level head at its own
segmentation agent's box (the "level head, predicted box" row of the level table, spinefm.train.level_agent) against
the verified level(s): exact and within-one-level accuracy with patient-grouped bootstrap CIs, and per
condition. So a retraining that refit the level prior (``spinefm levels --level-fit prior``) shows whether
levels improved, on the same findings for every model.
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
def level_predictions(model, cases, vs: dict) -> dict[str, list[dict]]:
    """{case_id: [{"condition", "truth": levels, "pred": level or None, "patient"}]}: each condition a case has
    present at a spinal level, placed by the model's level head at its segmentation agent's box (None: the
    head was never fitted, the model names no level)."""
    from .level_agent import eval_items

    fitted = model.level.is_fitted
    out: dict[str, list[dict]] = {}
    for it in eval_items(model, cases, vs):
        case = cases[it["case"]]
        pred = model.level.predict(it["emb"], it["pred_centre"], it["condition"])[0] if fitted else None
        out.setdefault(case.case_id, []).append({"condition": it["condition"], "truth": sorted(it["truth"]),
                                                 "pred": pred, "patient": case.patient or case.case_id})
    return out


def level_agreement(preds: dict[str, list[dict]], ids: list[str], n_boot: int = 200, seed: int = 0) -> dict:
    """Exact and within-one-level accuracy of one model's levels on the findings of the cases ``ids``;
    accuracies are None when the model names no level (no fitted level head)."""
    from . import metrics as M
    from .level_agent import _correct

    rows = [r for i in ids for r in preds.get(i, [])]
    named = [r for r in rows if r["pred"] is not None]
    out = {"n_findings": len(rows), "n_studies": len({i for i in ids if preds.get(i)})}
    if rows and not named:
        return {**out, "accuracy": None, "within_one": None, "per_condition": {},
                "note": "the model names no level (its level head was never fitted)"}
    scores = [_correct(r["pred"], set(r["truth"])) for r in rows]
    groups = [r["patient"] for r in rows]
    per: dict[str, list[float]] = {}
    for r, (exact, _) in zip(rows, scores):
        per.setdefault(r["condition"], []).append(exact)
    return {**out, "accuracy": M.grouped_mean_ci([e for e, _ in scores], groups, n_boot, seed),
            "within_one": M.grouped_mean_ci([w for _, w in scores], groups, n_boot, seed),
            "per_condition": {c: {"n": len(v), "accuracy": sum(v) / len(v)} for c, v in sorted(per.items())}}


@torch.no_grad()
def embed(model_dir, dataset, splits: set[str]) -> tuple[object, dict[str, torch.Tensor], dict[str, torch.Tensor],
                                                         dict[str, list[dict]]]:
    """(diagnosis head, {case_id: embedding}, {case_id: labels}, {case_id: level predictions}) of one model on
    the dataset's splits."""
    from ..bundle import load_model_dir
    from .features import case_views

    model, _ = load_model_dir(model_dir)
    model.eval()
    cases = dataset.cases(splits, model.cfg.preprocess)
    vs = case_views(model, cases)
    view = vs["all"]
    ids = [cases[i].case_id for i in view["idx"].tolist()]
    labels = {cases[i].case_id: cases[i].label_vector(model.cfg.conditions) for i in view["idx"].tolist()}
    return model.diagnosis.eval(), dict(zip(ids, view["emb"])), labels, level_predictions(model, cases, vs)


@torch.no_grad()
def compare(candidate, references: dict[str, str], dataset_dir, splits: set[str], n_boot: int = 200,
            seed: int = 0) -> dict:
    """{"candidate": metrics, "references": {name: metrics | None}, "reference_errors", "n_test", "case_ids",
    "operating_points_test"} with metrics as ``spinefm.train.retrain.evaluate_head`` gives them."""
    from ..dataset import Dataset
    from .retrain import evaluate_head
    from .operating_points import held_out_counts

    ds = Dataset(dataset_dir)
    head, emb, labels, levels = embed(candidate, ds, splits)
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

    def score(h, e, lab, lv) -> dict:
        x, y = torch.stack([e[i] for i in ids]), torch.stack([lab[i] for i in ids])
        return {**evaluate_head(h, x, y, n_boot=n_boot, seed=seed), "levels": level_agreement(lv, ids, n_boot, seed)}

    x, y = torch.stack([emb[i] for i in ids]), torch.stack([labels[i] for i in ids])
    return {"split": ",".join(sorted(splits)), "n_test": len(ids), "case_ids": ids,
            "candidate": score(head, emb, labels, levels),
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
