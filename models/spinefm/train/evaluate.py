"""``spinefm evaluate``: held-out metrics for a bundle and its baselines, as JSON and Markdown.

Diagnosis: AUROC/AUPRC per condition with bootstrap 95% CIs (uncertain labels
excluded) per sequence view (T1 only, T2 only, other sequences, all), plus
patient-level k-fold cross-validation of the probes and per-vendor transfer
(probes trained on one vendor's training cases, tested on every vendor).
Segmentation: slice-selection AUROC, key-slice hit rate, box error.
Levels (when the level head is trained): accuracy of the level of each finding
truly present, with baselines (spinefm.train.level_agent).
Retrieval: image->report and report->image Recall@1/5/10 and median rank.
Baselines get the same heads fitted the same way: a randomly initialised
model, the model without the synthesizer (other sequences through the T2
encoder), and a single encoder (T2) for every sequence.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from ..bundle import load_model_dir
from ..model import SpineFM
from ..retrieval import ranks
from . import metrics as M
from .common import add_common_arguments, load_cases, load_eval_cases, set_threads, training_data, seed_everything, setup_logging
from .features import VIEWS, case_views, slice_features, slice_targets, text_features
from .heads import diagnosis_data, fit_diagnosis
from .level_agent import level_markdown, level_metrics

log = logging.getLogger("spinefm.train.evaluate")

VARIANTS = {"spinefm": "full", "no_synthesizer": "no_synth", "single_encoder": "single", "random_encoder": "full"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    for action in p._actions:
        if action.dest == "out":
            action.required, action.default = False, "eval"
    p.add_argument("--bundle", required=True)
    p.add_argument("--test-splits", default="test", help="held-out splits of --phantom-seed (without --eval-seed)")
    p.add_argument("--eval-seed", type=int, default=None, help="phantom seed of a separate eval set (spine_phantom.EVAL_SEED=7)")
    p.add_argument("--eval-cases", type=int, default=40)
    p.add_argument("--baselines", default="random_encoder,no_synthesizer,single_encoder")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--kfold", type=int, default=5)
    p.add_argument("--diag-steps", type=int, default=300)
    p.add_argument("--diag-weight-decay", type=float, default=1e-2)
    p.add_argument("--no-segmentation", action="store_true")
    p.add_argument("--random-inits", type=int, default=1,
                   help="random_encoder baseline over this many initialisations (seeds --seed, --seed+1, ...): "
                        "one random init is a noisy yardstick")
    p.add_argument("--record-as", default=None,
                   help="also store the headline numbers in the bundle's manifest under metrics[KEY] (weights untouched)")
    p.add_argument("--from-json", default=None,
                   help="with --record-as: take the results of an earlier run of this command (its metrics.json)")


def diagnosis_metrics(probs: torch.Tensor, labels: torch.Tensor, conditions, n_boot: int) -> dict:
    per = {}
    for j, c in enumerate(conditions):
        y, p = labels[:, j].numpy(), probs[:, j].numpy()
        per[c] = {"auroc": M.with_ci(M.auroc, y, p, n_boot, seed=j), "auprc": M.with_ci(M.auprc, y, p, n_boot, seed=j)}
    return {"per_condition": per,
            "mean_auroc": M.mean_defined(v["auroc"]["value"] for v in per.values()),
            "mean_auprc": M.mean_defined(v["auprc"]["value"] for v in per.values()),
            "n_cases": int(labels.shape[0])}


@torch.no_grad()
def predict(head, views: dict, view: str, cases, conditions):
    v = views[view]
    if v["emb"].shape[0] == 0:
        return None, None
    labels = torch.stack([cases[i].label_vector(conditions) for i in v["idx"].tolist()])
    return torch.sigmoid(head(v["emb"])), labels


def retrieval_metrics(model, views: dict, cases, cache_dir) -> dict:
    out = {}
    text = model.encode_text(text_features([c.report for c in cases], model.cfg.text, cache_dir))
    for view in VIEWS:
        v = views[view]
        if v["emb"].shape[0] < 2:
            continue
        t = text[v["idx"]]
        i2r, r2i = ranks(v["emb"], t).numpy(), ranks(t, v["emb"]).numpy()
        out[view] = {"image_to_report": {**M.recall_at_k(i2r), "median_rank": M.median_rank(i2r)},
                     "report_to_image": {**M.recall_at_k(r2i), "median_rank": M.median_rank(r2i)},
                     "n": int(len(i2r))}
    return out


def mean_boxes(cases, stream: str, conditions) -> torch.Tensor:
    """Per condition, the mean normalised ground-truth box of ``stream`` in ``cases`` (C, 4).

    The prior a box regressor has to beat: a constant box per condition, no image
    seen. Conditions without a box fall back to the mean over all boxes.
    """
    sums, counts = torch.zeros(len(conditions), 4), torch.zeros(len(conditions))
    for case in cases:
        for series in case.by_stream(stream):
            _, boxes, mask = slice_targets(case, series, conditions)
            sums += (boxes * mask.unsqueeze(-1)).sum(0)
            counts += mask.sum(0)
    overall = sums.sum(0) / counts.sum().clamp(min=1)
    return torch.where(counts.unsqueeze(1) > 0, sums / counts.clamp(min=1).unsqueeze(1), overall)


@torch.no_grad()
def segmentation_metrics(model, cases, train_cases=None) -> dict:
    """Slice selection, key-slice hits and boxes on ``cases``; with ``train_cases`` also the
    constant mean-box baseline (``mean_boxes`` of the training cases) on the same boxes."""
    out = {}
    for stream in ("t1", "t2", "synthesizer"):
        f = slice_features(model, cases, stream)
        if not f:
            continue
        res = model.segmentation(stream, f["cls"], f["patches"].float())
        scores = torch.sigmoid(res["slice_logit"]).numpy()
        labels = f["labels"].numpy()
        aurocs = {c: M.auroc(labels[:, j], scores[:, j]) for j, c in enumerate(model.cfg.conditions)}
        m = f["box_mask"]
        err = M.box_error(res["box"][m].numpy(), f["boxes"][m].numpy()) if m.any() else None
        ious = [M.box_iou(a, b) for a, b in zip(res["box"][m].numpy(), f["boxes"][m].numpy())]
        prior = {}
        if train_cases is not None and m.any():
            const = mean_boxes(train_cases, stream, model.cfg.conditions).expand(m.shape[0], -1, -1)[m].numpy()
            gt = f["boxes"][m].numpy()
            prior = {"mean_box_error": M.box_error(const, gt),
                     "mean_box_iou": float(np.mean([M.box_iou(a, b) for a, b in zip(const, gt)]))}
        # Key-slice hit: argmax slice of an annotated (series, condition) is a true key slice (+-1 slice).
        hits, total = 0, 0
        keys = torch.stack([f["case"], f["series"]], 1)
        for key in torch.unique(keys, dim=0):
            rows = ((keys == key).all(1)).nonzero().flatten()
            for j in range(len(model.cfg.conditions)):
                pos = (f["labels"][rows, j] == 1).nonzero().flatten()
                if pos.numel() == 0:
                    continue
                k = int(res["slice_logit"][rows, j].argmax())
                hits += int(bool((pos - k).abs().min() <= 1))
                total += 1
        out[stream] = {"slice_auroc_mean": M.mean_defined(aurocs.values()), "slice_auroc": aurocs,
                       "key_slice_hit_rate": hits / total if total else None, "n_localisations": total,
                       "box_error": err, "box_iou": float(np.mean(ious)) if ious else None, "n_boxes": int(m.sum()),
                       **prior}
    return out


def kfold_metrics(model, views: dict, cases, conditions, k: int, steps: int, seed: int = 0, wd: float = 1e-2) -> dict:
    """Patient-level k-fold CV of the probes on the T1+T2 view of all given cases."""
    v = views["all"]
    groups = [cases[i].patient or cases[i].case_id for i in v["idx"].tolist()]  # a patient's studies share a fold
    labels = torch.stack([cases[i].label_vector(conditions) for i in v["idx"].tolist()])
    folds = []
    for tr, te in M.kfold_groups(groups, k, seed):
        head = type(model.diagnosis)(model.cfg.clip.proj_dim, conditions)
        fit_diagnosis(head, v["emb"][tr], labels[tr], steps, weight_decay=wd)
        with torch.no_grad():
            p = torch.sigmoid(head(v["emb"][te]))
        folds.append(M.mean_defined(M.auroc(labels[te, j].numpy(), p[:, j].numpy()) for j in range(len(conditions))))
    vals = [f for f in folds if f is not None]
    return {"k": k, "fold_mean_auroc": folds, "mean_auroc": float(np.mean(vals)) if vals else None,
            "std_auroc": float(np.std(vals)) if vals else None}


def vendor_metrics(model, train_views, train_cases, test_views, test_cases, conditions, steps: int,
                   wd: float = 1e-2) -> dict:
    """Train probes on one vendor's training cases (all views), test on each vendor (T1+T2 view)."""
    vendors = sorted({c.vendor for c in train_cases} | {c.vendor for c in test_cases})
    out = {}
    for train_vendor in vendors:
        keep = {i for i, c in enumerate(train_cases) if c.vendor == train_vendor}
        sub = {v: {"emb": d["emb"][[j for j, i in enumerate(d["idx"].tolist()) if i in keep]],
                   "idx": torch.tensor([i for i in d["idx"].tolist() if i in keep], dtype=torch.long)}
               for v, d in train_views.items()}
        if sub["all"]["emb"].shape[0] < 4:
            continue
        emb, labels = diagnosis_data(sub, train_cases, conditions)
        head = type(model.diagnosis)(model.cfg.clip.proj_dim, conditions)
        fit_diagnosis(head, emb, labels, steps, weight_decay=wd)
        row = {}
        for test_vendor in vendors + ["all"]:
            idx = [j for j, i in enumerate(test_views["all"]["idx"].tolist())
                   if test_vendor == "all" or test_cases[i].vendor == test_vendor]
            if not idx:
                continue
            e = test_views["all"]["emb"][idx]
            y = torch.stack([test_cases[test_views["all"]["idx"][j]].label_vector(conditions) for j in idx])
            with torch.no_grad():
                p = torch.sigmoid(head(e))
            row[test_vendor] = M.mean_defined(M.auroc(y[:, j].numpy(), p[:, j].numpy()) for j in range(len(conditions)))
        out[train_vendor] = {"n_train_cases": len(keep), "mean_auroc": row}
    return out


def evaluate_variant(name: str, model, train_cases, test_cases, args, own_heads: bool) -> dict:
    conditions = model.cfg.conditions
    mode = VARIANTS[name]
    model.eval()
    train_views = case_views(model, train_cases, mode)
    test_views = case_views(model, test_cases, mode)
    head = model.diagnosis
    if not own_heads:
        head = type(model.diagnosis)(model.cfg.clip.proj_dim, conditions)
        emb, labels = diagnosis_data(train_views, train_cases, conditions)
        fit_diagnosis(head, emb, labels, args.diag_steps, weight_decay=args.diag_weight_decay)
    diag = {}
    for view in VIEWS:
        probs, labels = predict(head, test_views, view, test_cases, conditions)
        if probs is not None:
            diag[view] = diagnosis_metrics(probs, labels, conditions, args.n_boot)
    out = {"mode": mode, "diagnosis": diag, "retrieval": retrieval_metrics(model, test_views, test_cases, args.cache_dir)}
    if name == "spinefm":
        all_cases = train_cases + test_cases
        all_views = case_views(model, all_cases, mode)
        if args.kfold > 1:
            out["kfold"] = kfold_metrics(model, all_views, all_cases, conditions, args.kfold, args.diag_steps,
                                         wd=args.diag_weight_decay)
        out["vendor"] = vendor_metrics(model, train_views, train_cases, test_views, test_cases, conditions, args.diag_steps,
                                       wd=args.diag_weight_decay)
        if not args.no_segmentation:
            out["segmentation"] = segmentation_metrics(model, test_cases, train_cases)
        if model.level.is_fitted:
            out["level"] = level_metrics(model, train_cases, test_cases, args.n_boot, seed=args.seed,
                                         train_vs=train_views, test_vs=test_views)
    return out


def evaluate(bundle_dir, train_cases, test_cases, args) -> dict:
    model, manifest = load_model_dir(bundle_dir)
    results = {"bundle": manifest["name"], "version": manifest["version"], "synthetic_training": manifest["synthetic_training"],
               "data": training_data(args)["description"],
               "n_train_cases": len(train_cases), "n_test_cases": len(test_cases), "variants": {}}
    results["variants"]["spinefm"] = evaluate_variant("spinefm", model, train_cases, test_cases, args, own_heads=True)
    for name in [b for b in args.baselines.split(",") if b]:
        log.info("baseline %s", name)
        if name == "random_encoder":
            runs = []
            for i in range(max(1, getattr(args, "random_inits", 1))):
                seed_everything(args.seed + i)
                runs.append(evaluate_variant(name, SpineFM(model.cfg).eval(), train_cases, test_cases, args, own_heads=False))
            results["variants"][name] = runs[0]  # the first init in full, as before
            if len(runs) > 1:
                results["random_inits"] = random_init_summary(runs, args.seed)
        else:
            results["variants"][name] = evaluate_variant(name, model, train_cases, test_cases, args, own_heads=False)
    return results


def random_init_summary(runs: list[dict], first_seed: int) -> dict:
    """Mean AUROC per view of each random initialisation, with their mean, SD and range."""
    out = {"seeds": list(range(first_seed, first_seed + len(runs))), "views": {}}
    for view in ("all", "t1", "t2", "other"):
        values = [r["diagnosis"][view]["mean_auroc"] for r in runs if r["diagnosis"].get(view)]
        values = [v for v in values if v is not None]
        if values:
            out["views"][view] = {"per_init": values, "mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)),
                                  "min": min(values), "max": max(values)}
    return out


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def to_markdown(res: dict) -> str:
    lines = [f"Evaluation of `{res['bundle']}` {res['version']} on **{res['data']}** "
             f"({res['n_train_cases']} training / {res['n_test_cases']} held-out cases). SYNTHETIC: not a clinical result.", ""]
    lines += ["**Diagnosis, mean AUROC / mean AUPRC over conditions, by sequence view (held-out)**", "",
              "| model | all (T1+T2) | T1 only | T2 only | other sequences |", "|---|---|---|---|---|"]
    for name, v in res["variants"].items():
        cells = []
        for view in ("all", "t1", "t2", "other"):
            d = v["diagnosis"].get(view)
            cells.append(f"{_fmt(d['mean_auroc'])} / {_fmt(d['mean_auprc'])} (n={d['n_cases']})" if d else "n/a")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if res.get("random_inits"):
        ri = res["random_inits"]
        lines += ["", f"random_encoder over {len(ri['seeds'])} initialisations (seeds {ri['seeds'][0]}-{ri['seeds'][-1]}; "
                      "the row above is the first), mean AUROC: " +
                  "; ".join(f"{view} {_fmt(v['mean'])} +- {_fmt(v['sd'])} ({_fmt(v['min'])}-{_fmt(v['max'])})"
                            for view, v in ri["views"].items())]
    lines += ["", "**Retrieval (held-out, T1+T2 view): image->report R@1 / R@5 / R@10, median rank; report->image R@5**", "",
              "| model | R@1 | R@5 | R@10 | median rank | report->image R@5 |", "|---|---|---|---|---|---|"]
    for name, v in res["variants"].items():
        r = v["retrieval"].get("all")
        if r:
            i2r = r["image_to_report"]
            lines.append(f"| {name} | {_fmt(i2r['R@1'])} | {_fmt(i2r['R@5'])} | {_fmt(i2r['R@10'])} | "
                         f"{_fmt(i2r['median_rank'], 1)} (of {r['n']}) | {_fmt(r['report_to_image']['R@5'])} |")
    main = res["variants"].get("spinefm", {})
    d = main.get("diagnosis", {}).get("all")
    if d:
        lines += ["", "**SpineFM per condition (held-out, T1+T2 view): AUROC [95% CI], AUPRC, positives/labelled**", "",
                  "| condition | AUROC [95% CI] | AUPRC | pos/n |", "|---|---|---|---|"]
        for c, m in d["per_condition"].items():
            a = m["auroc"]
            ci = a["ci95"]
            lines.append(f"| {c} | {_fmt(a['value'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(m['auprc']['value'])} | {a['n_pos']}/{a['n']} |")
    if "kfold" in main:
        k = main["kfold"]
        lines += ["", f"**Patient-level {k['k']}-fold CV (probes, all cases):** mean AUROC {_fmt(k['mean_auroc'])} +- {_fmt(k['std_auroc'])}"]
    if main.get("vendor"):
        vendors = sorted({t for r in main["vendor"].values() for t in r["mean_auroc"]})
        lines += ["", "**Per vendor: probes trained on one vendor, mean AUROC on each vendor's held-out cases**", "",
                  "| trained on (n) | " + " | ".join(vendors) + " |", "|---" * (len(vendors) + 1) + "|"]
        for tv, r in main["vendor"].items():
            lines.append(f"| {tv} ({r['n_train_cases']}) | " + " | ".join(_fmt(r["mean_auroc"].get(x)) for x in vendors) + " |")
    if main.get("segmentation"):
        lines += ["", "**Segmentation (held-out)**", "",
                  "| stream | slice-selection AUROC | key-slice hit (+-1) | box error (normalised L1) | box IoU "
                  "| mean-box baseline: error / IoU | boxes |",
                  "|---|---|---|---|---|---|---|"]
        for s, m in main["segmentation"].items():
            lines.append(f"| {s} | {_fmt(m['slice_auroc_mean'])} | {_fmt(m['key_slice_hit_rate'])} | {_fmt(m['box_error'])} | "
                         f"{_fmt(m['box_iou'])} | {_fmt(m.get('mean_box_error'))} / {_fmt(m.get('mean_box_iou'))} "
                         f"| {m['n_boxes']} |")
        lines += ["", "Mean-box baseline: one constant box per condition (the mean training box), no image seen."]
    if main.get("level"):
        lines += ["", level_markdown(main["level"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def record(bundle_dir, res: dict, key: str, command: str | None) -> None:
    """The evaluation's headline numbers into the bundle's manifest (``metrics[key]``); weights untouched."""
    from ..bundle import load_bundle, resave_bundle
    from .default import summarize

    bundle = load_bundle(bundle_dir)
    metrics = dict(bundle.manifest.get("metrics") or {})
    metrics[key] = {**summarize(res), "command": res.get("command") or command}
    resave_bundle(bundle.model, bundle_dir, bundle_dir, bundle.manifest, metrics=metrics)


def run(args) -> dict:
    setup_logging()
    set_threads(args.threads)
    seed_everything(args.seed)
    if args.from_json:
        if not args.record_as:
            raise SystemExit("spinefm evaluate: --from-json only goes with --record-as")
        res = json.loads(Path(args.from_json).read_text())
    else:
        model, _ = load_model_dir(args.bundle)
        train_cases = [c for c in load_cases(args, model.cfg.preprocess, args.splits)]
        test_cases = load_eval_cases(args, model.cfg.preprocess)
        res = evaluate(args.bundle, train_cases, test_cases, args)
        res["command"] = getattr(args, "command_line", None)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(res, indent=2))
        (out / "metrics.md").write_text(to_markdown(res))
        log.info("wrote %s and %s", out / "metrics.json", out / "metrics.md")
        print(to_markdown(res))
    if args.record_as:
        record(args.bundle, res, args.record_as, getattr(args, "command_line", None))
        log.info("recorded as metrics[%r] in %s", args.record_as, args.bundle)
    return 0
