"""Stage ``heads``: the agents on frozen embeddings (diagnosis probes, segmentation heads).

Diagnosis probes train on case embeddings of every view a case has (T1 only,
T2 only, other-via-synthesizer, and the T1+T2 mean): all views live in the one
CLIP space, and seeing them all makes the probes work whatever sequences a
study brings. Uncertain labels are masked. Thresholds per condition maximise
Youden's J on the training embeddings (provisional: the calibrate stage replaces
them with operating points from held-out cases). Segmentation heads train per stream on
slice tokens.
"""

from __future__ import annotations

import argparse
import logging

import torch

from ..heads.diagnosis import DiagnosisHead
from ..heads.segmentation import segmentation_loss
from .common import (add_common_arguments, build_model, set_threads, load_cases, progress, seed_everything, setup_logging,
                     synthetic_of, training_data)
from .features import VIEWS, case_views, slice_features
from .loop import optimizer_step

log = logging.getLogger("spinefm.train.heads")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--diag-steps", type=int, default=300)
    p.add_argument("--diag-weight-decay", type=float, default=1e-2, help="probe weight decay (1e-2 chosen on the val split)")
    p.add_argument("--seg-steps", type=int, default=300)
    p.add_argument("--views", default="all,t1,t2,other", help="case views the probes train on")
    p.add_argument("--mode", default="full", choices=["full", "no_synth", "single"],
                   help="embedding routing (baselines: no_synth, single encoder)")


def diagnosis_data(views: dict, cases, conditions, which: tuple[str, ...] = VIEWS) -> tuple[torch.Tensor, torch.Tensor]:
    embs, labels = [], []
    for v in which:
        if v in views and views[v]["emb"].shape[0]:
            embs.append(views[v]["emb"])
            labels.append(torch.stack([cases[i].label_vector(conditions) for i in views[v]["idx"].tolist()]))
    return torch.cat(embs), torch.cat(labels)


def fit_diagnosis(head: DiagnosisHead, emb: torch.Tensor, labels: torch.Tensor, steps: int = 300,
                  lr: float = 0.05, weight_decay: float = 1e-2) -> float:
    """Full-batch Adam on the masked BCE (convex per condition); returns the final loss."""
    opt = torch.optim.Adam(head.probes.parameters(), lr=lr, weight_decay=weight_decay)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        loss = head.loss(emb, labels)
        optimizer_step(opt, loss)
    fit_thresholds(head, emb, labels)
    return loss.item()


@torch.no_grad()
def fit_thresholds(head: DiagnosisHead, emb: torch.Tensor, labels: torch.Tensor) -> None:
    """Per condition, the probability threshold maximising Youden's J (TPR - FPR) on the given data."""
    probs = torch.sigmoid(head(emb))
    for j in range(labels.shape[1]):
        y, p = labels[:, j], probs[:, j]
        keep = y >= 0
        y, p = y[keep], p[keep]
        if y.numel() == 0 or y.min() == y.max():
            continue
        cand = torch.unique(p)
        pred = p.unsqueeze(0) >= cand.unsqueeze(1)               # (T, n)
        tpr = (pred & (y == 1)).sum(1) / (y == 1).sum()
        fpr = (pred & (y == 0)).sum(1) / (y == 0).sum()
        head.thresholds[j] = cand[int((tpr - fpr).argmax())]
    # no hedged band and every condition callable until held-out data say otherwise (calibrate stage)
    head.possible_thresholds.copy_(head.thresholds)
    head.validated.fill_(True)


def fit_segmentation(model, stream: str, feats: dict, steps: int = 300, lr: float = 3e-3,
                     batch: int = 128, seed: int = 0, show: bool = False) -> float:
    """Mini-batch training of one stream's key-slice and box heads on frozen slice tokens."""
    if not feats:
        return float("nan")
    head = model.segmentation.heads[stream]
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    n = feats["cls"].shape[0]
    # Slices that carry a positive label or a box are oversampled: they are rare.
    informative = ((feats["labels"] == 1).any(1) | feats["box_mask"].any(1)).nonzero().flatten()
    last = float("nan")
    for _ in progress(range(steps), steps, f"seg/{stream}", not show):
        idx = torch.randint(0, n, (batch,), generator=g)
        if informative.numel():
            idx[: batch // 4] = informative[torch.randint(0, informative.numel(), (batch // 4,), generator=g)]
        cls, patches = feats["cls"][idx], feats["patches"][idx].float()
        out = head(cls, patches)
        total = segmentation_loss(out, feats["labels"][idx], feats["boxes"][idx], feats["box_mask"][idx])["loss"]
        optimizer_step(opt, total)
        last = total.item()
    return last


def train_heads(model, cases, diag_steps: int = 300, seg_steps: int = 300, views=VIEWS,
                mode: str = "full", show: bool = False, seed: int = 0, segmentation: bool = True,
                diag_weight_decay: float = 1e-2) -> dict:
    """Fit diagnosis and segmentation heads of ``model`` in place on ``cases``; returns losses."""
    model.eval()
    conditions = model.cfg.conditions
    vs = case_views(model, cases, mode=mode, progress=show)
    emb, labels = diagnosis_data(vs, cases, conditions, tuple(views))
    diag_loss = fit_diagnosis(model.diagnosis, emb, labels, diag_steps, weight_decay=diag_weight_decay)
    seg = {}
    for stream in ("t1", "t2", "synthesizer") if segmentation else ():
        feats = slice_features(model, cases, stream, progress=show)
        seg[stream] = fit_segmentation(model, stream, feats, seg_steps, seed=seed, show=show)
    return {"diagnosis_loss": diag_loss, "segmentation_loss": seg, "n_cases": len(cases), "n_samples": int(emb.shape[0])}


def run(args) -> str:
    setup_logging()
    set_threads(args.threads)
    seed_everything(args.seed)
    model = build_model(args)
    model.requires_grad_(False)
    model.diagnosis.requires_grad_(True)
    model.segmentation.requires_grad_(True)
    cases = load_cases(args, model.cfg.preprocess)
    info = train_heads(model, cases, args.diag_steps, args.seg_steps, tuple(args.views.split(",")),
                       args.mode, show=not args.no_progress, seed=args.seed, diag_weight_decay=args.diag_weight_decay)
    log.info("heads: %s", info)
    from ..bundle import save_bundle

    save_bundle(model, args.out, name="stage-heads", synthetic_training=synthetic_of(args),
                extra={"stage": "heads", "data": training_data(args)["description"], **{k: v for k, v in info.items()}})
    return args.out
