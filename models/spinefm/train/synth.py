"""Stage ``synth``: train the synthesizer's layer weights against reports, encoders frozen.

Series-agnostic, as in the paper: every routed series of a case (T1, T2,
STIR, Dixon, ...) is a sample, one random series per case per batch so a
batch has no duplicate reports. The text projection from ``align`` is frozen
so the synthesizer lands in the same shared space; its series branch starts as
a copy of the T1 branch (the synthesizer ends in the T1 norm).
"""

from __future__ import annotations

import argparse
import logging
import random

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed as dist_utils
from ..clip import info_nce
from .common import (add_common_arguments, build_model, load_cases, seed_everything, set_threads, setup_logging,
                     slice_inputs, synthetic_of, training_data)
from .features import text_features
from .loop import StageLoop

log = logging.getLogger("spinefm.train.synth")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--gate", choices=["scalar", "input"], default=None, help="synthesizer gate (ablation: input)")
    p.add_argument("--branch-lr-scale", type=float, default=0.02, help="lr of the synthesizer's series branch")


class SynthStep(nn.Module):
    def __init__(self, model, k: int):
        super().__init__()
        self.model, self.k = model, k

    def forward(self, series_list, text: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, dev = self.model.cfg.preprocess, text.device
        xs = [slice_inputs(s, cfg, self.k, self.training) for s in series_list]
        feats = self.model.synthesizer(torch.cat(xs).to(dev))
        bags = feats.split([x.shape[0] for x in xs])
        from ..pooling import pad_bags

        padded, mask = pad_bags(list(bags))
        z, _ = self.model.synth_branch(padded, mask)
        with torch.no_grad():
            zt = F.normalize(self.model.clip.text_proj(text), dim=-1)
        loss = info_nce(z, zt, self.model.clip.logit_scale.detach())
        return {"loss": loss}


def run(args) -> str:
    setup_logging()
    set_threads(args.threads)
    seed_everything(args.seed)
    rank, world, device = dist_utils.init_from_env()
    model = build_model(args)
    if args.gate and args.gate != model.cfg.synth_gate:
        from ..model import SpineFM

        state = model.state_dict()
        model.cfg.synth_gate = args.gate
        fresh = SpineFM(model.cfg)
        fresh.load_state_dict(state, strict=False)
        model = fresh
    cfg = model.cfg
    if not args.init:
        log.warning("synth without --init: encoders are random (fine for tests, not for a model)")
    model.synth_branch.load_state_dict(model.clip.t1.state_dict())
    model.synthesizer.freeze_encoders()
    model.clip.requires_grad_(False)
    cases = [c for c in load_cases(args, cfg.preprocess) if c.report and c.series]
    text = text_features([c.report for c in cases], cfg.text, args.cache_dir).to(device)
    model.to(device)
    synth_params = [model.synthesizer.logits] + (list(model.synthesizer.gate_net.parameters()) if model.synthesizer.gate_net else [])
    groups = [{"params": synth_params, "lr": args.lr},
              {"params": list(model.synth_branch.parameters()), "lr": args.lr * args.branch_lr_scale}]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.0)
    step_module = SynthStep(model, cfg.preprocess.max_slices)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(step_module, find_unused_parameters=True)
    loop = StageLoop(args, model, opt, len(cases))
    rng = random.Random(args.seed + loop.step)  # one random series per case per batch, resumable

    def postfix(out: dict) -> dict:
        alphas = torch.sigmoid(model.synthesizer.logits.detach())
        return {"loss": f"{out['loss'].item():.3f}", "alpha": ",".join(f"{a:.2f}" for a in alphas.tolist())}

    out = loop.run("synth", step_module, lambda batch: ([rng.choice(cases[i].series) for i in batch], text[batch]),
                   device, postfix=postfix)
    step = loop.step
    if dist_utils.is_main():
        from ..bundle import save_bundle

        alphas = torch.sigmoid(model.synthesizer.logits.detach()).tolist()
        save_bundle(model.cpu(), args.out, name="stage-synth", synthetic_training=synthetic_of(args),
                    extra={"stage": "synth", "data": training_data(args)["description"], "steps": step, "alphas": alphas, "final_loss": out["loss"].item()})
        log.info("synth: %d steps, alphas %s -> %s", step, [round(a, 3) for a in alphas], args.out)
    dist_utils.barrier()
    dist_utils.cleanup()
    return args.out
