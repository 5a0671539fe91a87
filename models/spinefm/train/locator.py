"""Stage ``locator``: train the spine locator (disc detection + disc labels) on varied phantoms; add it to a bundle.

Training examples are the central sagittal slices of every sagittal series (T1, T2, STIR,
Dixon, post-contrast) of varied-acquisition phantoms (random coverage, FOV, spacing,
rotation, intensity, transitional vertebrae), on the locator's 2 mm grid, with the disc
centres the generator measured (``truth["anatomy"]``), plus sagittal knee and brain phantoms
with no discs (``spine_phantom.nonspine``). Random 320 x 256 mm windows of them train the
network, so it never learns where in a field of view a level usually is. The level logits'
temperature is then fitted on the seed's val split (lowest NLL of the true disc label at
detected discs). Runs on a stage directory or a finished bundle; only ``locator.safetensors``,
the version and the metrics change::

    spinefm locator --init models/bundles/spineagent-phantom-nano --out models/bundles/spineagent-phantom-nano \\
        --n-cases 600 --locator-steps 3000 --threads 1 --eval-seed 7 --eval-cases 200

With ``--eval-seed`` the held-out coverage table (spinefm.train.coverage_eval) is computed on varied
phantoms of that seed, written to ``--report`` and summarised in the manifest (``metrics.locator``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..heads.locator import DISC_CLASSES, STRIDE, LocatorConfig, SpineLocator
from ..vertebrae import locator_grid
from .common import DEFAULT_CACHE, open_finished_model
from .loop import optimizer_step, set_lrs

log = logging.getLogger("spinefm.train.locator")
VARIED = {"include_axial": False, "acquisition": "varied", "other_sequence_probability": 0.5}
WINDOW = (160, 128)  # training window on the 2 mm grid: 320 x 256 mm


def phantom_headers(series) -> list[dict]:
    """The header fields the locator reads, straight from a PhantomSeries (no DICOM encoding)."""
    return [{"ImagePositionPatient": list(g.position), "ImageOrientationPatient": list(g.orientation),
             "PixelSpacing": list(g.spacing), "SOPInstanceUID": sop}
            for g, sop in zip(series.geometry, series.sop_instance_uids)]


def study_example(study, cfg: LocatorConfig) -> dict:
    """{"series": [(sequence, uint8 (k, H, W), discs (n, 3): grid row, grid col, class)], "meta": {...}}."""
    anatomy = study.truth.get("anatomy") or {}
    out = {"series": [], "meta": {"regions": list(study.regions), "variant": anatomy.get("variant", "none"),
                                  "coverage_mode": anatomy.get("coverage_mode", ""),
                                  "visible_discs": anatomy.get("visible_discs", []), "spine": bool(anatomy)}}
    for s in study.series:
        if s.plane != "sagittal":
            continue
        # disc positions are pixels of one grid: the localizer has its own record (spine_phantom.study)
        truth = (study.truth.get("localizer_anatomy") or {}) if s.sequence == "LOCALIZER" else anatomy
        grid = locator_grid(phantom_headers(s), cfg, volume=s.pixels)
        discs = [(*grid.from_original(*truth["discs"][lv]), DISC_CLASSES.index(lv))
                 for lv in truth.get("visible_discs", []) if lv in DISC_CLASSES]
        out["series"].append((s.sequence, (grid.pixels * 255 + 0.5).astype(np.uint8),
                              np.array(discs, dtype=np.float32).reshape(-1, 3)))
    return out


def _save(example: dict, path: Path) -> None:
    arrays = {}
    for k, (seq, pix, discs) in enumerate(example["series"]):
        arrays[f"pix_{k}"], arrays[f"discs_{k}"] = pix, discs
    meta = {**example["meta"], "sequences": [s for s, _, _ in example["series"]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    tmp.replace(path)


def _load(path: Path) -> dict:
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        series = [(seq, z[f"pix_{k}"], z[f"discs_{k}"]) for k, seq in enumerate(meta.pop("sequences"))]
    return {"series": series, "meta": meta}


def locator_examples(seed: int, indices, cfg: LocatorConfig, cache_dir: str | Path, phantom_config: dict | None = None,
                     kind: str = "spine") -> list[dict]:
    """Cached examples of phantom studies (kind "spine") or of knee / brain phantoms (kind "knee", "brain")."""
    import hashlib

    import spine_phantom
    from spine_phantom.nonspine import generate_nonspine

    phantom_config = (phantom_config or VARIED) if kind == "spine" else None
    key = hashlib.sha256(json.dumps([kind, phantom_config, cfg.mm, cfg.n_slices], sort_keys=True).encode()).hexdigest()[:10]
    root = Path(cache_dir) / f"locator-{key}"
    out = []
    for i in indices:
        path = root / f"{seed}-{i}.npz"
        if path.exists():
            try:
                out.append(_load(path))
                continue
            except Exception as exc:  # a truncated cache file is regenerated
                log.warning("locator cache %s unreadable (%s); regenerating", path, exc)
        if kind == "spine":
            study = spine_phantom.generate_study(seed, i, spine_phantom.PhantomConfig(**phantom_config))
        else:
            study = generate_nonspine(seed, i, kind)
        ex = study_example(study, cfg)
        ex["meta"]["split"] = study.split
        _save(ex, path)
        out.append(ex)
    return out


# ---------------------------------------------------------------- batches

def _window(pix: np.ndarray, discs: np.ndarray, rng: np.random.Generator, size=WINDOW):
    """A random window (zero-padded where the image is smaller) of one slice, discs moved with it."""
    h, w = pix.shape
    H, W = size
    oi = int(rng.integers(min(0, h - H), max(0, h - H) + 1))
    oj = int(rng.integers(min(0, w - W), max(0, w - W) + 1))
    out = np.zeros((H, W), dtype=np.float32)
    si, sj = max(oi, 0), max(oj, 0)
    di, dj = max(-oi, 0), max(-oj, 0)
    hh, ww = min(h - si, H - di), min(w - sj, W - dj)
    out[di:di + hh, dj:dj + ww] = pix[si:si + hh, sj:sj + ww] / 255.0
    d = discs.copy()
    d[:, 0] -= oi
    d[:, 1] -= oj
    inside = (d[:, 0] >= 0) & (d[:, 0] <= H - 1) & (d[:, 1] >= 0) & (d[:, 1] <= W - 1)
    return out, d[inside]


def targets(discs: np.ndarray, size=WINDOW, sigma: float = 1.0, radius: float = 1.5):
    """Heat (h, w) Gaussian at each disc's cell and level classes (h, w) near them (-100 elsewhere)."""
    h, w = size[0] // STRIDE, size[1] // STRIDE
    uu, vv = np.mgrid[0:h, 0:w].astype(np.float32)
    heat = np.zeros((h, w), dtype=np.float32)
    level = np.full((h, w), -100, dtype=np.int64)
    best = np.full((h, w), np.inf, dtype=np.float32)
    for i, j, c in discs:
        cu, cv = (i - (STRIDE - 1) / 2) / STRIDE, (j - (STRIDE - 1) / 2) / STRIDE
        d2 = (uu - cu) ** 2 + (vv - cv) ** 2
        heat = np.maximum(heat, np.exp(-d2 / (2 * sigma * sigma)))
        near = (d2 <= radius * radius) & (d2 < best)
        level[near] = int(c)
        best = np.where(near, d2, best)
    return heat, level


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast and noise the phantoms do not vary enough: gamma, gain, additive noise."""
    x = np.clip(x, 0, 1) ** float(np.exp(rng.uniform(-0.5, 0.5)))
    x = x * float(rng.uniform(0.8, 1.2)) + rng.normal(0, rng.uniform(0, 0.04), x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def make_batch(examples: list[dict], batch: int, rng: np.random.Generator):
    xs, heats, levels = [], [], []
    for _ in range(batch):
        ex = examples[int(rng.integers(len(examples)))]
        _, pix, discs = ex["series"][int(rng.integers(len(ex["series"])))]
        x, d = _window(pix[int(rng.integers(pix.shape[0]))], discs, rng)
        hm, lv = targets(d)
        xs.append(augment(x, rng))
        heats.append(hm)
        levels.append(lv)
    return (torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(heats))[:, None],
            torch.from_numpy(np.stack(levels)))


def locator_loss(out: dict, heat: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, dict]:
    weight = 1.0 + 20.0 * heat
    l_heat = F.binary_cross_entropy_with_logits(out["heat"], heat, weight=weight)
    l_level = F.cross_entropy(out["level"], level, ignore_index=-100) if (level >= 0).any() else out["level"].sum() * 0
    return l_heat + 0.5 * l_level, {"heat": l_heat.item(), "level": l_level.item()}


def train_locator(locator: SpineLocator, examples: list[dict], steps: int, batch: int = 8, lr: float = 2e-3,
                  seed: int = 0, log_every: int = 100) -> dict:
    """AdamW with a cosine schedule on random windows; marks the locator fitted."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(locator.parameters(), lr=lr, weight_decay=1e-4)
    locator.train()
    hist = []
    for step in range(steps):
        set_lrs(opt, [lr], step, steps)
        x, heat, level = make_batch(examples, batch, rng)
        loss, parts = locator_loss(locator(x), heat, level)
        optimizer_step(opt, loss)
        hist.append(parts)
        if log_every and (step + 1) % log_every == 0:
            recent = hist[-log_every:]
            log.info("locator step %d/%d heat %.4f level %.4f", step + 1, steps,
                     np.mean([h["heat"] for h in recent]), np.mean([h["level"] for h in recent]))
    locator.eval()
    with torch.no_grad():
        locator.fitted.fill_(1.0)
    tail = hist[-min(len(hist), 100):]
    return {"steps": steps, "batch": batch, "lr": lr, "final_heat_loss": float(np.mean([h["heat"] for h in tail])),
            "final_level_loss": float(np.mean([h["level"] for h in tail]))}


@torch.no_grad()
def fit_temperature(locator: SpineLocator, examples: list[dict], grid=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)) -> dict:
    """Temperature of the level logits with the lowest NLL of the true label at the true disc cells."""
    from ..heads.locator import pad_to_multiple

    locator.eval()
    logits, labels = [], []
    for ex in examples:
        for _, pix, discs in ex["series"]:
            if not len(discs):
                continue
            x = pad_to_multiple(torch.from_numpy(pix[pix.shape[0] // 2: pix.shape[0] // 2 + 1] / 255.0).float()[:, None])
            out = locator(x)["level"][0]
            for i, j, c in discs:
                u = int(round((i - (STRIDE - 1) / 2) / STRIDE))
                v = int(round((j - (STRIDE - 1) / 2) / STRIDE))
                if 0 <= u < out.shape[1] and 0 <= v < out.shape[2]:
                    logits.append(out[:, u, v])
                    labels.append(int(c))
    if not logits:
        return {"temperature": 1.0, "n": 0}
    z, y = torch.stack(logits), torch.tensor(labels)
    nll = {t: float(F.cross_entropy(z / t, y)) for t in grid}
    best = min(nll, key=nll.get)
    locator.temperature.fill_(float(best))
    return {"temperature": float(best), "nll": {str(k): round(v, 4) for k, v in nll.items()}, "n": len(labels)}


@torch.no_grad()
def _val_maps(locator: SpineLocator, examples: list[dict]) -> list[tuple]:
    """(heat, level log-probabilities, grid shape, truth discs) of the series analyze would read, per val study."""
    from ..heads.locator import pad_to_multiple

    order = ("T2", "T1", "STIR", "DIXON", "OTHER")
    out = []
    locator.eval()
    for ex in examples:
        if not ex["series"]:
            continue
        seq, pix, discs = min(ex["series"], key=lambda s: order.index(s[0]) if s[0] in order else 9)
        x = pad_to_multiple(torch.from_numpy(pix / 255.0).float()[:, None])
        res = locator(x)
        h, w = (pix.shape[1] + STRIDE - 1) // STRIDE, (pix.shape[2] + STRIDE - 1) // STRIDE
        heat = torch.sigmoid(res["heat"][:, 0, :h, :w]).mean(0).numpy()
        logits = res["level"][:, :, :h, :w] / float(locator.temperature)
        out.append((heat, torch.log_softmax(logits, 1).mean(0).numpy(), pix.shape[1:], discs))
    return out


def _score_decoding(maps: list[tuple], cfg: LocatorConfig) -> dict:
    """Studies with every visible disc named correctly, and with a wrong name, under one decoding setting."""
    from ..vertebrae import chain, decode, find_peaks

    n = ok = wrong = 0
    cell_mm = cfg.mm * STRIDE
    margin = 4.0 / cfg.mm  # the generator's visible margin, on the grid
    for heat, logp, shape, discs in maps:
        truth = [(i, j, int(c)) for i, j, c in discs
                 if margin <= i <= shape[0] - 1 - margin and margin <= j <= shape[1] - 1 - margin]
        if not truth:
            continue
        peaks = chain(find_peaks(heat, logp, cfg, shape), cfg)
        gaps = np.array([math.hypot(b.u - a.u, b.v - a.v) * cell_mm for a, b in zip(peaks[:-1], peaks[1:])])
        labels, post, _ = decode(cfg.evidence * np.stack([p.logp for p in peaks]) if peaks
                                 else np.zeros((0, len(DISC_CLASSES))), gaps)
        det = [(p.u * STRIDE + (STRIDE - 1) / 2, p.v * STRIDE + (STRIDE - 1) / 2,
                DISC_CLASSES[k] if q >= cfg.confidence else None) for p, k, q in zip(peaks, labels, post)]
        used, good, bad = set(), True, False
        for i, j, c in truth:
            dist = [math.hypot(i - a, j - b) * cfg.mm if k not in used else np.inf for k, (a, b, _) in enumerate(det)]
            k = int(np.argmin(dist)) if dist else -1
            if k < 0 or dist[k] > 10.0:
                good = False
                continue
            used.add(k)
            if det[k][2] != DISC_CLASSES[c]:
                good = False
                bad = bad or det[k][2] is not None
        n, ok, wrong = n + 1, ok + good, wrong + bad
    return {"n": n, "all_correct": ok / max(n, 1), "wrong": wrong / max(n, 1)}


def tune_decoding(locator: SpineLocator, examples: list[dict], max_wrong: float = 0.03) -> dict:
    """Heat threshold, evidence weight and confidence with the most val studies fully correct among the
    settings that name a wrong level in at most ``max_wrong`` of them (else the fewest wrong)."""
    from dataclasses import replace

    maps = _val_maps(locator, examples)
    grid = []
    for thr in (0.3, 0.4, 0.5):
        for evidence in (1.0, 0.5, 0.3):
            for confidence in (0.9, 0.97):
                cfg = replace(locator.cfg, heat_threshold=thr, evidence=evidence, confidence=confidence)
                grid.append((cfg, _score_decoding(maps, cfg)))
    safe = [g for g in grid if g[1]["wrong"] <= max_wrong]
    cfg, score = (max(safe, key=lambda g: (g[1]["all_correct"], -g[1]["wrong"])) if safe
                  else min(grid, key=lambda g: (g[1]["wrong"], -g[1]["all_correct"])))
    locator.cfg = cfg
    return {"heat_threshold": cfg.heat_threshold, "evidence": cfg.evidence, "confidence": cfg.confidence,
            "val": score, "max_wrong": max_wrong,
            "grid": [{"heat_threshold": c.heat_threshold, "evidence": c.evidence, "confidence": c.confidence, **r}
                     for c, r in grid]}


# ---------------------------------------------------------------- stage

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init", required=True, help="stage directory or bundle to add the locator to")
    p.add_argument("--out", required=True)
    p.add_argument("--phantom-seed", type=int, default=0)
    p.add_argument("--n-cases", type=int, default=600, help="phantom indices 0..n-1; the train split trains, val + test tune temperature and decoding")
    p.add_argument("--phantom-config", default=json.dumps(VARIED), help="PhantomConfig JSON of the training phantoms")
    p.add_argument("--nonspine-cases", type=int, default=120, help="knee and brain phantoms (each) as negatives")
    p.add_argument("--locator-steps", type=int, default=3000)
    p.add_argument("--locator-batch", type=int, default=8)
    p.add_argument("--locator-lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--max-wrong", type=float, default=0.03,
                   help="decoding is tuned on the val split for the most fully correct studies among settings that "
                        "name a wrong level in at most this share of them")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE)
    p.add_argument("--name", default=None)
    p.add_argument("--version", default=None)
    p.add_argument("--eval-seed", type=int, default=None, help="held-out varied phantoms for the coverage table (7)")
    p.add_argument("--eval-cases", type=int, default=200)
    p.add_argument("--report", default=None, help="directory for coverage.json/.md (default: <out>-coverage)")
    p.add_argument("--baseline-bundle", default=None,
                   help="an older bundle whose level head is scored on the same discs (e.g. 0.3.1)")
    p.add_argument("--frequent-level", default=None,
                   help="the most frequent training finding level, scored as a baseline on every disc (L4-L5)")
    p.add_argument("--locator-from", default=None,
                   help="take the trained locator (and its training record) of this bundle instead of training one")
    p.add_argument("--skip-training", action="store_true",
                   help="evaluate the --init bundle's locator as it is (no training, nothing written but the report)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")


def run(args) -> str:
    from ..bundle import resave_bundle

    if args.eval_seed is not None and args.eval_seed == args.phantom_seed:
        raise SystemExit(f"locator: phantom seed {args.phantom_seed} is the evaluation seed")
    model, manifest = open_finished_model(args, "locator")
    cfg = LocatorConfig(width=args.width)
    pcfg = json.loads(args.phantom_config)
    cases, negatives = [], []
    if not args.skip_training and not args.locator_from:
        cases = locator_examples(args.phantom_seed, range(args.n_cases), cfg, args.cache_dir, pcfg)
        for k, kind in enumerate(("knee", "brain")):
            negatives += locator_examples(args.phantom_seed + 1000 * (k + 1), range(args.nonspine_cases), cfg,
                                          args.cache_dir, kind=kind)
    train = [c for c in cases if c["meta"]["split"] == "train"] + [n for n in negatives if n["meta"]["split"] == "train"]
    val = [c for c in cases if c["meta"]["split"] in ("val", "test")]  # never trained on: temperature and decoding
    log.info("locator: %d training examples (%d spine), %d val", len(train), len(train) - sum(not c["meta"]["spine"] for c in train), len(val))
    info = {}
    if args.locator_from:
        from ..bundle import load_bundle

        donor = load_bundle(args.locator_from)
        if not donor.model.locator.is_fitted:
            raise SystemExit(f"locator: {args.locator_from} has no trained spine locator")
        model.locator, model.cfg.locator = donor.model.locator, donor.model.cfg.locator
        info = {**donor.manifest.get("locator_training", {}), "copied_from": f"{donor.name} {donor.version}",
                "copied_by": getattr(args, "command_line", None)}
    elif not args.skip_training:
        torch.manual_seed(args.seed)
        locator = SpineLocator(cfg)
        info = train_locator(locator, train, args.locator_steps, args.locator_batch, args.locator_lr, args.seed)
        info["temperature"] = fit_temperature(locator, val)
        info["decoding"] = tune_decoding(locator, val, args.max_wrong)
        cfg = locator.cfg
        info.update({"phantom_seed": args.phantom_seed, "n_cases": args.n_cases, "phantom_config": pcfg,
                     "nonspine_cases": args.nonspine_cases, "train_examples": len(train)})
        model.locator = locator
        model.cfg.locator = cfg
    elif not model.locator.is_fitted:
        raise SystemExit(f"locator: {args.init} has no trained spine locator to evaluate")
    metrics = dict(manifest.get("metrics") or {})
    if args.eval_seed is not None:
        from ..bundle import load_bundle
        from .coverage_eval import coverage_markdown, evaluate_coverage, summarize_coverage

        baseline = load_bundle(args.baseline_bundle) if args.baseline_bundle else None
        res = evaluate_coverage(model, args.eval_seed, args.eval_cases, pcfg, progress=not args.no_progress,
                                baseline=baseline, frequent_level=args.frequent_level)
        res["command"] = getattr(args, "command_line", None)
        md = coverage_markdown(res)
        print(md)
        report = Path(args.report) if args.report else Path(args.out).parent / f"{Path(args.out).name}-coverage"
        report.mkdir(parents=True, exist_ok=True)
        (report / "coverage.json").write_text(json.dumps(res, indent=2))
        (report / "coverage.md").write_text(md)
        metrics["locator"] = summarize_coverage(res)
    if args.skip_training:
        return args.out
    resave_bundle(model, args.init, args.out, manifest, name=args.name, version=args.version, metrics=metrics,
                  extra={"locator_training": {"command": getattr(args, "command_line", None), **info}})
    log.info("bundle with spine locator written to %s", args.out)
    return args.out
