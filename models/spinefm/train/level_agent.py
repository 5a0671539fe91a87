"""Training data, fitting and held-out evaluation of the level agent (spinefm.heads.level).

Training examples come from the case cache: every finding with a level
(present or subtle) and a ground-truth box on a routed sagittal series gives
(case embedding of each view the case has, normalised box centre, condition,
level). The head learns the geometry from ground-truth boxes (with a little
jitter); at analysis time it gets the segmentation agent's box, so the
evaluation reports both: levels from the predicted box (what ``analyze``
returns) and from the ground-truth box (the level head alone). Baselines in
the same table: the same head without the case embedding (position only),
without the box (case embedding and condition prior only), the most frequent
training level per condition, and chance (uniform over the levels the
registry allows for the condition).
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import torch

from ..analyze import box_centre, choose_series, locate, pick_series
from ..heads.level import LEVELS, LevelHead, allowed_levels, level_position
from . import metrics as M
from .features import VIEWS, case_views
from .loop import optimizer_step

log = logging.getLogger("spinefm.train.level_agent")
LEVEL_INDEX = {lv: i for i, lv in enumerate(LEVELS)}


def finding_centres(case, series, finding: dict) -> list[list[float]]:
    """Normalised (x, y) centres of a finding's ground-truth boxes on one series."""
    out = []
    for b in finding.get("boxes", []):
        if b.get("series_instance_uid") == series.series_instance_uid:
            x0, y0, x1, y1 = series.geometry.to_normalized(b["box"])
            out.append([(x0 + x1) / 2, (y0 + y1) / 2])
    return out


def usable(finding: dict, conditions: tuple[str, ...]) -> bool:
    lv, c = finding.get("level"), finding.get("condition")
    return c in conditions and lv in LEVEL_INDEX and allowed_levels(c)[LEVEL_INDEX[lv]]


@torch.no_grad()
def level_examples(model, cases, views=VIEWS, vs: dict | None = None) -> dict[str, torch.Tensor]:
    """(case embedding per view) x (finding box on a routed series) -> tensors for LevelHead.loss."""
    conditions = tuple(model.level.conditions)
    vs = vs if vs is not None else case_views(model, cases)
    emb_of = {}
    for v in views:
        for row, i in enumerate(vs[v]["idx"].tolist()):
            emb_of.setdefault(i, []).append(vs[v]["emb"][row])
    embs, centres, conds, targets, groups = [], [], [], [], []
    for i, case in enumerate(cases):
        for f in case.findings:
            if f.get("label", 1) == 0 or not usable(f, conditions):
                continue
            for s in case.series:
                for centre in finding_centres(case, s, f):
                    for e in emb_of.get(i, []):
                        embs.append(e)
                        centres.append(centre)
                        conds.append(conditions.index(f["condition"]))
                        targets.append(LEVEL_INDEX[f["level"]])
                        groups.append(i)
    if not embs:
        return {}
    return {"case": torch.stack(embs).float(), "centre": torch.tensor(centres, dtype=torch.float32),
            "cond": torch.tensor(conds), "target": torch.tensor(targets), "group": torch.tensor(groups)}


def predicted_examples(model, cases, views=VIEWS, vs: dict | None = None) -> dict[str, torch.Tensor]:
    """Like level_examples, but the centre is the segmentation agent's box on the series analyze would use."""
    conditions = tuple(model.level.conditions)
    vs = vs if vs is not None else case_views(model, cases)
    items = eval_items(model, cases, vs, labels=(1, -1))
    emb_of = {}
    for v in views:
        for row, i in enumerate(vs[v]["idx"].tolist()):
            emb_of.setdefault(i, []).append(vs[v]["emb"][row])
    rows = [(e, it, t) for it in items for e in emb_of.get(it["case"], []) for t in sorted(it["truth"])]
    if not rows:
        return {}
    return {"case": torch.stack([e for e, _, _ in rows]).float(),
            "centre": torch.stack([it["pred_centre"] for _, it, _ in rows]),
            "cond": torch.tensor([conditions.index(it["condition"]) for _, it, _ in rows]),
            "target": torch.tensor([LEVEL_INDEX[t] for _, _, t in rows]),
            "group": torch.tensor([it["case"] for _, it, _ in rows])}


def concat_examples(*parts: dict) -> dict:
    parts = [p for p in parts if p]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}


def fit_level(head: LevelHead, data: dict, steps: int = 400, lr: float = 3e-3, weight_decay: float = 1e-3,
              jitter: float = 0.02, seed: int = 0, use_case: bool = True, use_position: bool = True) -> float:
    """Full-batch AdamW on the level cross-entropy; marks the head fitted. Returns the final loss.

    ``use_case``/``use_position`` False zero that input (the ablation baselines).
    """
    head.train()
    with torch.no_grad():
        head.mu_offset.fill_(float(head.positions[data["target"]].mean()))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    case = data["case"] if use_case else torch.zeros_like(data["case"])
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        centre = data["centre"] + jitter * torch.randn(data["centre"].shape, generator=g)
        if not use_position:
            centre = torch.zeros_like(centre)
        loss = head.loss(case, centre, data["cond"], data["target"])
        optimizer_step(opt, loss)
    head.eval()
    with torch.no_grad():
        head.fitted.fill_(1.0)
    return float(loss.item())


CENTRES = ("gt", "predicted", "both")


def training_examples(model, cases, centres: str = "gt", vs: dict | None = None) -> dict:
    """Examples whose box centres are ground truth, the segmentation agent's, or both."""
    if centres not in CENTRES:
        raise ValueError(f"centres must be one of {CENTRES}")
    vs = vs if vs is not None else case_views(model, cases)
    gt = level_examples(model, cases, vs=vs) if centres in ("gt", "both") else {}
    pred = predicted_examples(model, cases, vs=vs) if centres in ("predicted", "both") else {}
    return concat_examples(gt, pred)


def train_level_head(model, cases, steps: int = 400, seed: int = 0, vs: dict | None = None,
                     centres: str = "gt") -> dict:
    """Fit ``model.level`` in place on ``cases``; returns what the stage logs and records."""
    data = training_examples(model, cases, centres, vs)
    if not data:
        raise ValueError("no findings with a level and a box in the training cases")
    torch.manual_seed(seed)  # a fresh head: rerunning the stage on a bundle that has one gives the same result
    model.level = LevelHead(model.cfg.clip.proj_dim, model.cfg.conditions)
    loss = fit_level(model.level, data, steps, seed=seed)
    return {"level_loss": loss, "level_examples": int(data["target"].numel()), "level_centres": centres,
            "level_findings_cases": int(torch.unique(data["group"]).numel())}


# ---------------------------------------------------------------- evaluation

def _correct(pred: str | None, truth: set[str]) -> tuple[float, float]:
    """(exact, within one level) for one prediction against the finding's level(s)."""
    if pred is None:
        return 0.0, 0.0
    d = min(abs(level_position(pred) - level_position(t)) for t in truth)
    return float(pred in truth), float(d <= 1.0)


@torch.no_grad()
def eval_items(model, cases, vs: dict | None = None, labels=(1,)) -> list[dict]:
    """One item per (case, condition with a finding of the given labels and a level): embedding, GT and predicted centres."""
    conditions = tuple(model.level.conditions)
    cfg = model.cfg.preprocess
    vs = vs if vs is not None else case_views(model, cases)
    emb = {i: vs["all"]["emb"][r] for r, i in enumerate(vs["all"]["idx"].tolist())}
    items = []
    for i, case in enumerate(cases):
        if i not in emb:
            continue
        chosen = choose_series(case)
        feats = {}
        for c in conditions:
            found = [f for f in case.findings if f.get("condition") == c and f.get("label") in labels and usable(f, conditions)]
            if case.labels.get(c) not in labels or not found:
                continue
            j = pick_series(c, chosen)
            s = chosen[j]
            if j not in feats:
                feats[j] = model.encode_slices(s.stream, s.inputs(cfg), patches=True)
            k, _, nbox = locate(model, c, s.stream, feats[j]["cls"], feats[j]["patches"])
            gt = [x for f in found for x in finding_centres(case, s, f)]
            if not gt:  # not visible on the chosen series: any sagittal series of the same stack plan
                gt = [x for f in found for t in chosen for x in finding_centres(case, t, f)]
            items.append({"case": i, "condition": c, "truth": {f["level"] for f in found}, "emb": emb[i],
                          "pred_centre": box_centre(nbox),
                          "gt_centre": torch.tensor(np.mean(gt, 0), dtype=torch.float32) if gt else None})
    return items


def _head_predictions(head: LevelHead, items, centre_key: str, use_case=True, use_position=True) -> list[str | None]:
    out = []
    for it in items:
        centre = it[centre_key]
        if centre is None:
            out.append(None)
            continue
        e = it["emb"] if use_case else torch.zeros_like(it["emb"])
        c = centre if use_position else torch.zeros_like(centre)
        out.append(head.predict(e, c, it["condition"])[0])
    return out


def most_frequent_levels(cases, conditions) -> dict[str, str]:
    """Per condition, the most frequent level among training findings truly present."""
    counts: dict[str, Counter] = {c: Counter() for c in conditions}
    for case in cases:
        for f in case.findings:
            if f.get("label") == 1 and usable(f, tuple(conditions)):
                counts[f["condition"]][f["level"]] += 1
    return {c: cnt.most_common(1)[0][0] for c, cnt in counts.items() if cnt}


def _row(name: str, preds, items, n_boot: int, seed: int = 0) -> dict:
    """Accuracy rows; a missing prediction (None) counts as wrong."""
    exact, near = zip(*[_correct(p, it["truth"]) for p, it in zip(preds, items)]) if items else ((), ())
    groups = [it["case"] for it in items]
    return {"name": name, "accuracy": M.grouped_mean_ci(exact, groups, n_boot, seed),
            "within_one": M.grouped_mean_ci(near, groups, n_boot, seed)}


def level_metrics(model, train_cases, test_cases, n_boot: int = 200, steps: int = 400, seed: int = 0,
                  train_vs: dict | None = None, test_vs: dict | None = None, centres: str = "gt") -> dict:
    """Held-out level accuracy of the model's level head and of the baselines (SYNTHETIC phantoms).

    The ablation heads train on the same examples as the model's (``centres``).
    """
    conditions = tuple(model.level.conditions)
    items = eval_items(model, test_cases, test_vs)
    oracle = [it for it in items if it["gt_centre"] is not None]
    data = training_examples(model, train_cases, centres, train_vs)
    heads = {}
    for name, kw in (("position_only", {"use_case": False}), ("case_only", {"use_position": False})):
        torch.manual_seed(seed)
        h = LevelHead(model.cfg.clip.proj_dim, conditions)
        fit_level(h, data, steps, seed=seed, **kw)
        heads[name] = (h, kw)
    frequent = most_frequent_levels(train_cases, conditions)
    rows = [
        _row("level head, predicted box (analyze)", _head_predictions(model.level, items, "pred_centre"), items, n_boot),
        _row("level head, ground-truth box", _head_predictions(model.level, oracle, "gt_centre"), oracle, n_boot),
        _row("position only, predicted box", _head_predictions(heads["position_only"][0], items, "pred_centre", use_case=False), items, n_boot),
        _row("position only, ground-truth box", _head_predictions(heads["position_only"][0], oracle, "gt_centre", use_case=False), oracle, n_boot),
        _row("case embedding only (no box)", _head_predictions(heads["case_only"][0], items, "pred_centre", use_position=False), items, n_boot),
        _row("most frequent level per condition (training)", [frequent.get(it["condition"]) for it in items], items, n_boot),
    ]
    # chance: uniform guess among the levels the registry allows for the condition
    chance = []
    for it in items:
        allowed = [lv for lv, ok in zip(LEVELS, allowed_levels(it["condition"])) if ok]
        chance.append((sum(lv in it["truth"] for lv in allowed) / len(allowed),
                       sum(_correct(lv, it["truth"])[1] for lv in allowed) / len(allowed)))
    groups = [it["case"] for it in items]
    rows.append({"name": "chance (uniform over allowed levels)",
                 "accuracy": M.grouped_mean_ci([c[0] for c in chance], groups, n_boot),
                 "within_one": M.grouped_mean_ci([c[1] for c in chance], groups, n_boot)})
    per_condition = {}
    preds = _head_predictions(model.level, items, "pred_centre")
    for c in conditions:
        mine = [(p, it) for p, it in zip(preds, items) if it["condition"] == c]
        if mine:
            per_condition[c] = {"n": len(mine), "accuracy": float(np.mean([_correct(p, it["truth"])[0] for p, it in mine])),
                                "most_frequent": frequent.get(c)}
    return {"label": "SYNTHETIC phantom data; not a clinical result", "n_items": len(items),
            "n_items_with_gt_box": len(oracle), "n_cases": len({it["case"] for it in items}),
            "n_train_examples": int(data["target"].numel()) if data else 0, "rows": rows,
            "per_condition": per_condition}


def _fmt_ci(m: dict) -> str:
    if m["value"] is None:
        return "n/a"
    lo, hi = m["ci95"]
    return f"{m['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def level_markdown(res: dict) -> str:
    lines = [f"**Level of findings truly present (held-out, SYNTHETIC): {res['n_items']} findings in "
             f"{res['n_cases']} studies ({res['n_items_with_gt_box']} with a ground-truth box on the analysed series)**", "",
             "| method | exact level [95% CI] | within one level [95% CI] | n |", "|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['name']} | {_fmt_ci(r['accuracy'])} | {_fmt_ci(r['within_one'])} | {r['accuracy']['n']} |")
    lines += ["", "| condition | n | exact (analyze) | most frequent training level |", "|---|---|---|---|"]
    for c, m in res["per_condition"].items():
        lines.append(f"| {c} | {m['n']} | {m['accuracy']:.2f} | {m['most_frequent'] or 'n/a'} |")
    return "\n".join(lines) + "\n"
