"""``spinefm build-bundle``: trained model + retrieval index + metrics -> a bundle directory.

The retrieval bank holds the training cases' image embeddings (T1+T2 view)
and their report embeddings in the shared space, with the report texts, so
``analyze`` can return similar cases without loading the text encoder.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

import torch

from ..bundle import load_model_dir, save_bundle
from ..retrieval import EmbeddingIndex
from .common import add_common_arguments, load_cases, set_threads, setup_logging, synthetic_of, training_data
from .features import case_views, text_features

log = logging.getLogger("spinefm.train.build")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--name", default="spineagent-phantom-nano")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--metrics", default=None, help="metrics JSON (from spinefm evaluate) to record in the manifest")
    p.add_argument("--encoder-init", default="clip-from-scratch", help="how the encoders were initialised")
    p.add_argument("--training-command", default=None)


@torch.no_grad()
def build_index(model, cases, cache_dir=None) -> EmbeddingIndex:
    views = case_views(model, cases)
    idx = views["all"]["idx"].tolist()
    kept = [cases[i] for i in idx]
    text = model.encode_text(text_features([c.report for c in kept], model.cfg.text, cache_dir))
    return EmbeddingIndex(views["all"]["emb"], text, [c.case_id for c in kept], [c.report for c in kept])


def build(model, cases, out, name: str, version: str, metrics: dict | None, cache_dir=None,
          synthetic: bool = True, extra: dict | None = None) -> Path:
    index = build_index(model, cases, cache_dir)
    return save_bundle(model, out, name=name, version=version, synthetic_training=synthetic,
                       metrics=metrics or {}, index=index, extra=extra)


def run(args) -> str:
    setup_logging()
    set_threads(args.threads)
    if not args.init:
        raise SystemExit("build-bundle needs --init (the heads stage's output directory)")
    model, manifest = load_model_dir(args.init)
    cases = [c for c in load_cases(args, model.cfg.preprocess) if c.report]
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    data = training_data(args)
    # synthetic_training comes from the data (the dataset's recorded sources) and from the stage it
    # starts from (a phantom-trained encoder stays phantom-trained), never from a flag
    extra = {"encoder_init": args.encoder_init, "data": data["description"],
             "training": {"command": args.training_command or getattr(args, "command_line", None) or "spinefm " + shlex.join(sys.argv[1:]),
                          **{k: v for k, v in data.items() if k not in ("synthetic", "description")},
                          "splits": args.splits}}
    if "operating_points" in manifest:  # from calibrate: the thresholds are in the weights, the record here
        extra["operating_points"] = manifest["operating_points"]
    out = build(model, cases, args.out, args.name, args.version, metrics, args.cache_dir,
                synthetic=synthetic_of(args) or bool(manifest.get("synthetic_training", True)), extra=extra)
    log.info("bundle written to %s", out)
    return str(out)
