"""``spinefm train-default``: the documented pipeline that produces the default phantom bundle.

    [pretrain (spinefm.train.ssl, if --ssl-steps > 0)] -> align -> synth -> heads -> levels
    -> calibrate (operating points on the training seed's val+test) -> evaluate (held-out phantoms, with baselines) -> build-bundle

Every stage is the same code as its own subcommand; intermediate model
directories live under ``--work`` and each stage resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from ..bundle import load_model_dir
from . import align, calibrate, heads, levels, synth
from . import evaluate as evaluate_mod
from .build import build
from .common import (DEFAULT_CACHE, load_cases, load_eval_cases, set_threads, seed_everything, setup_logging,
                     synthetic_of, training_data)

log = logging.getLogger("spinefm.train.default")
DEFAULT_OUT = "models/bundles/spineagent-phantom-nano"
VARIED = '{"include_axial": false, "acquisition": "varied"}'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--work", default=str(Path(DEFAULT_CACHE) / "default-run"), help="intermediate stage outputs")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE)
    p.add_argument("--dataset", default=None,
                   help="dataset directory (spinefm dataset build) to train, calibrate (val split) and build on; "
                        "replaces --data and the --phantom-* options")
    p.add_argument("--eval-dataset", default=None,
                   help="held-out dataset directory for evaluation (default: --dataset's test split)")
    p.add_argument("--name", default=None,
                   help="bundle name (default: spineagent-phantom-nano for synthetic data, spineagent-site-nano otherwise)")
    p.add_argument("--data", default="phantom", choices=["phantom", "random"])
    p.add_argument("--phantom-seed", type=int, default=0)
    p.add_argument("--phantom-config", default=VARIED,
                   help="spine_phantom.PhantomConfig JSON of the training, calibration and evaluation phantoms "
                        "(default: varied acquisitions, as bundles >= 0.4.0)")
    p.add_argument("--n-cases", type=int, default=240)
    p.add_argument("--eval-seed", type=int, default=7, help="held-out phantom eval set (spine_phantom.EVAL_SEED)")
    p.add_argument("--eval-cases", type=int, default=40)
    p.add_argument("--img-size", type=int, default=112)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--proj-dim", type=int, default=128)
    p.add_argument("--max-slices", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--ssl-steps", type=int, default=0, help="spinefm.train.ssl pretraining steps per encoder (0: CLIP from scratch)")
    p.add_argument("--align-epochs", type=float, default=6.0)
    p.add_argument("--align-lr", type=float, default=1e-3)
    p.add_argument("--label-weight", type=float, default=0.0,
                   help="align: weight of the auxiliary report-label loss (0: CLIP only, as bundles <= 0.2.0)")
    p.add_argument("--box-weight", type=float, default=0.0,
                   help="align: weight of the auxiliary patch-level box loss (0: off, as bundles <= 0.2.0)")
    p.add_argument("--synth-epochs", type=float, default=2.0)
    p.add_argument("--synth-lr", type=float, default=5e-2)
    p.add_argument("--diag-steps", type=int, default=300)
    p.add_argument("--diag-weight-decay", type=float, default=1e-2)
    p.add_argument("--seg-steps", type=int, default=300)
    p.add_argument("--level-steps", type=int, default=400)
    p.add_argument("--calibration-splits", default=None,
                   help="splits of the calibration cases for the operating points ('' : keep Youden's J on train); "
                        "default val,test when a separate held-out set evaluates (phantom eval seed, --eval-dataset), "
                        "else val (the test split is the evaluation)")
    p.add_argument("--calibration-seed", type=int, default=None,
                   help="phantom seed of the calibration cases (default: --phantom-seed, whose val/test never train); "
                        "another seed may use all its splits")
    p.add_argument("--calibration-cases", type=int, default=None, help="calibration phantom indices 0..n-1 (default: --n-cases)")
    p.add_argument("--max-steps", type=int, default=None, help="cap every stage (tests)")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--kfold", type=int, default=5)
    p.add_argument("--random-inits", type=int, default=3, help="evaluate: random-encoder baseline over this many inits")
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=int(os.environ.get("SPINEFM_THREADS", "0")) or None,
                   help="CPU threads (1 is fastest on a shared 2-core box)")


def _stage_args(module, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def _common(args, out: Path, init: Path | None, held_out: bool = True) -> list[str]:
    argv = ["--out", str(out), "--data", args.data, "--phantom-seed", str(args.phantom_seed),
            "--n-cases", str(args.n_cases), "--cache-dir", args.cache_dir, "--img-size", str(args.img_size),
            "--depth", str(args.depth), "--proj-dim", str(args.proj_dim), "--max-slices", str(args.max_slices),
            "--batch-size", str(args.batch_size), "--seed", str(args.seed),
            "--phantom-config", args.phantom_config, "--eval-phantom-config", args.phantom_config]
    if args.dataset:
        argv += ["--dataset", args.dataset]
    if args.eval_dataset and held_out:  # the stages that count on it (levels would add its own table)
        argv += ["--eval-dataset", args.eval_dataset]
    if init is not None:
        argv += ["--init", str(init)]
    if args.max_steps is not None:
        argv += ["--max-steps", str(args.max_steps)]
    if args.no_progress:
        argv.append("--no-progress")
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def ssl_pretrain(args, work: Path) -> tuple[str, str]:
    """Pretrain a T1 encoder on T1 slices and a T2 encoder on T2/STIR/Dixon slices (spinefm.train.ssl)."""
    from ..model import SpineFM
    from .ssl.pretrain import pretrain_encoder
    from .common import fresh_config

    ns = _stage_args(align, _common(args, work / "align", None))
    model = SpineFM(fresh_config(ns))
    cases = load_cases(ns, model.cfg.preprocess)
    paths = []
    from safetensors.torch import save_file

    for name, streams in (("t1", ("t1",)), ("t2", ("t2", "synthesizer"))):
        path = work / "ssl" / f"{name}.safetensors"
        if not path.exists():
            slices = torch.cat([s.inputs(model.cfg.preprocess) for c in cases for s in c.series if s.stream in streams])
            encoder = getattr(model, name)
            log.info("ssl: %s encoder on %d slices, %d steps", name, slices.shape[0], args.ssl_steps)
            pretrain_encoder(encoder, slices, steps=args.ssl_steps, batch_size=args.batch_size, seed=args.seed,
                             progress=not args.no_progress)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path))
        paths.append(str(path))
    return paths[0], paths[1]


def run(args) -> str:
    setup_logging()
    set_threads(args.threads)
    seed_everything(args.seed)
    work = Path(args.work)
    command = getattr(args, "command_line", None) or "spinefm train-default " + shlex.join(sys.argv[1:])
    encoder_init = "clip-from-scratch"
    align_argv = _common(args, work / "align", None) + ["--epochs", str(args.align_epochs), "--lr", str(args.align_lr),
                                                        "--label-weight", str(args.label_weight),
                                                        "--box-weight", str(args.box_weight)]
    if args.ssl_steps > 0:
        t1_init, t2_init = ssl_pretrain(args, work)
        align_argv += ["--t1-init", t1_init, "--t2-init", t2_init, "--encoder-lr-scale", "0.3"]
        encoder_init = f"spinefm.train.ssl ({args.ssl_steps} steps per encoder), then CLIP fine-tuning"
    if args.label_weight > 0:
        encoder_init += f" with the report-label loss (weight {args.label_weight:g})"
    if args.box_weight > 0:
        encoder_init += f" with the patch-level box loss (weight {args.box_weight:g})"
    seconds: dict[str, float] = {}  # wall time per stage (the first one to need the data also loads it)
    clock = [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        seconds[stage] = round(now - clock[0], 1)
        clock[0] = now
        log.info("stage %s: %.1f s", stage, seconds[stage])

    if args.ssl_steps > 0:
        lap("ssl")
    if args.calibration_splits is None:
        separate = args.eval_dataset or not args.dataset  # phantoms: the eval seed is the held-out set
        args.calibration_splits = "val,test" if separate else "val"
    align.run(_stage_args(align, align_argv))
    lap("align")
    synth.run(_stage_args(synth, _common(args, work / "synth", work / "align")
                          + ["--epochs", str(args.synth_epochs), "--lr", str(args.synth_lr)]))
    lap("synth")
    heads.run(_stage_args(heads, _common(args, work / "heads", work / "synth")
                          + ["--diag-steps", str(args.diag_steps), "--seg-steps", str(args.seg_steps),
                             "--diag-weight-decay", str(args.diag_weight_decay)]))
    lap("heads")
    levels.run(_stage_args(levels, _common(args, work / "levels", work / "heads", held_out=False)
                           + ["--level-steps", str(args.level_steps)]))
    lap("levels")

    final = work / "levels"
    if args.calibration_splits:
        calibrate.run(_stage_args(calibrate, _common(args, work / "calibrated", final)
                                  + ["--splits", args.calibration_splits]
                                  + ([] if args.calibration_seed is None else ["--phantom-seed", str(args.calibration_seed)])
                                  + ([] if args.calibration_cases is None else ["--n-cases", str(args.calibration_cases)])
                                  + ([] if args.skip_eval else ["--eval-seed", str(args.eval_seed),
                                                                "--eval-cases", str(args.eval_cases)])))
        final = work / "calibrated"
        lap("calibrate")
    model, final_manifest = load_model_dir(final)
    ns = _stage_args(align, _common(args, work / "x", None))
    train_cases = load_cases(ns, model.cfg.preprocess, "train")
    metrics = {}
    if not args.skip_eval:
        eargs = _stage_args(evaluate_mod, _common(args, work / "eval", None)[2:] +
                            ["--bundle", str(final), "--out", str(work / "eval"), "--n-boot", str(args.n_boot),
                             "--kfold", str(args.kfold), "--diag-steps", str(args.diag_steps),
                             "--random-inits", str(args.random_inits),
                             "--diag-weight-decay", str(args.diag_weight_decay),
                             "--eval-seed", str(args.eval_seed), "--eval-cases", str(args.eval_cases)])
        test_cases = load_eval_cases(eargs, model.cfg.preprocess)
        res = evaluate_mod.evaluate(final, train_cases, test_cases, eargs)
        (work / "eval").mkdir(parents=True, exist_ok=True)
        (work / "eval" / "metrics.json").write_text(json.dumps(res, indent=2))
        (work / "eval" / "metrics.md").write_text(evaluate_mod.to_markdown(res))
        print(evaluate_mod.to_markdown(res))
        metrics = summarize(res)
        lap("evaluate")
    data = training_data(ns)  # from the dataset's recorded sources (or the phantom / random options)
    synthetic = synthetic_of(ns) or bool(final_manifest.get("synthetic_training", True))
    if not synthetic and metrics:
        metrics["label"] = "held-out " + (data["eval_dataset"]["description"] if "eval_dataset" in data
                                          else f"test split of {data['description']}")
    extra = {"encoder_init": encoder_init, "data": data["description"],
             "training": {"command": command, **{k: v for k, v in data.items() if k not in ("synthetic", "description")},
                          "train_cases": len(train_cases), "align_label_weight": args.label_weight,
                          "align_box_weight": args.box_weight}}
    if "operating_points" in final_manifest:
        extra["operating_points"] = final_manifest["operating_points"]
    name = args.name or ("spineagent-phantom-nano" if synthetic else "spineagent-site-nano")
    out = build(model, train_cases, args.out, name, args.version, metrics, args.cache_dir,
                synthetic=synthetic, extra=extra)
    lap("build-bundle")
    (work / "stage_seconds.json").write_text(json.dumps(seconds, indent=1))
    log.info("default bundle written to %s; seconds per stage: %s", out, seconds)
    return str(out)


def summarize(res: dict) -> dict:
    """The manifest's metrics: headline numbers per variant (full results stay in metrics.json)."""
    out = {"label": "SYNTHETIC phantom data; not a clinical result", "n_test_cases": res["n_test_cases"]}
    for name, v in res["variants"].items():
        row = {f"mean_auroc_{view}": d["mean_auroc"] for view, d in v["diagnosis"].items()}
        row.update({f"mean_auprc_{view}": d["mean_auprc"] for view, d in v["diagnosis"].items()})
        r = v["retrieval"].get("all")
        if r:
            row.update({f"i2r_{k}": x for k, x in r["image_to_report"].items()})
        if "segmentation" in v:
            row["segmentation"] = {s: {k: m[k] for k in ("slice_auroc_mean", "key_slice_hit_rate", "box_error")}
                                   for s, m in v["segmentation"].items()}
        if "kfold" in v:
            row["kfold_mean_auroc"] = v["kfold"]["mean_auroc"]
        out[name] = row
        if name == "random_encoder" and res.get("random_inits"):
            row["inits"] = {view: {k: d[k] for k in ("mean", "sd", "min", "max")} for view, d in res["random_inits"]["views"].items()}
        if "level" in v:
            out["level"] = levels.summarize_levels(v["level"])
    return out
