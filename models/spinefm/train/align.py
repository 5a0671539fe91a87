"""Stage ``align``: tri-modal CLIP (T1 series, T2 series, report) with symmetric InfoNCE.

Encoders train with the CLIP loss unless ``--freeze-encoders`` (use that after
SSL pretraining, as in the paper); the text encoder is always frozen (features
precomputed once), only its projection trains.

``--label-weight w`` adds report-label supervision: a temporary linear probe per
condition on the case, T1 and T2 embeddings, masked BCE against the labels
stated in each training report (uncertain masked), weighted by w. Sentence
embeddings of whole reports barely move when one finding changes, so InfoNCE
alone learns region and vendor more than findings; the labels say which
differences matter. The probe is thrown away; the diagnosis agent is fitted
later on the frozen embeddings as before.
"""

from __future__ import annotations

import argparse
import logging
import math

import torch
from torch import nn

from .. import distributed as dist_utils
from ..heads.diagnosis import DiagnosisHead
from ..pooling import pad_bags
from .box_supervision import PatchProbes, patch_side, series_patch_targets
from .common import (add_common_arguments, build_model, load_cases, seed_everything, set_threads, setup_logging,
                     slice_inputs, synthetic_of, training_data)
from .features import text_features
from .loop import StageLoop

log = logging.getLogger("spinefm.train.align")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--freeze-encoders", action="store_true", help="train only poolers/projections (after SSL)")
    p.add_argument("--encoder-lr-scale", type=float, default=1.0)
    p.add_argument("--init-encoder", default=None,
                   help="start both encoders from a published checkpoint: a transformers DINOv2/DINOv3 directory, "
                        "a timm state dict or an encoder.safetensors (spinefm convert-encoder); the ViT "
                        "architecture is taken from it")
    p.add_argument("--t1-init", default=None, help="encoder weights (safetensors/pt state dict) for T1, e.g. from pretrain")
    p.add_argument("--t2-init", default=None, help="same for T2")
    p.add_argument("--label-weight", type=float, default=0.0,
                   help="weight of the auxiliary report-label loss on the embeddings (0: CLIP only)")
    p.add_argument("--box-weight", type=float, default=0.0,
                   help="weight of the auxiliary patch-level box loss on the encoders' patch tokens (0: off)")


def _bags(model, stream: str, cases, cfg, k: int, device, train: bool, patch_targets=None):
    """Encode the chosen series of each case; (B, N, D) padded bag + mask (all-False if absent).

    With ``patch_targets`` (case, series -> (n, P, C) targets of every slice) the
    third value is (patch tokens, targets) of the sampled slices, else None.
    """
    inputs, counts, targets = [], [], []
    for c in cases:
        s = c.first(stream)
        if s is None:
            counts.append(0)
            continue
        x, idx = slice_inputs(s, cfg, k, train, with_index=True)
        inputs.append(x)
        counts.append(x.shape[0])
        if patch_targets is not None:
            targets.append(patch_targets(c, s)[idx])
    dim = model.encoder(stream).embed_dim
    if not inputs:
        empty = torch.zeros(len(cases), 1, dim, device=device), torch.zeros(len(cases), 1, dtype=torch.bool, device=device)
        return (*empty, None)
    tokens = model.encoder(stream).forward_features(torch.cat(inputs).to(device))
    feats = tokens["cls"]
    dense = (tokens["patches"], torch.cat(targets).to(device)) if patch_targets is not None else None
    bags, it = [], iter(feats.split([n for n in counts if n]))
    for n in counts:
        bags.append(next(it) if n else feats.new_zeros(0, dim))
    bags = [b if b.shape[0] else feats.new_zeros(1, dim) for b in bags]
    padded, mask = pad_bags(bags)
    mask &= torch.tensor([n > 0 for n in counts], device=device).unsqueeze(1)
    return padded, mask, dense


class AlignStep(nn.Module):
    """forward(cases, text) -> loss dict; a module so DDP can wrap it."""

    def __init__(self, model, k: int, label_weight: float = 0.0, box_weight: float = 0.0):
        super().__init__()
        self.model, self.k, self.label_weight, self.box_weight = model, k, label_weight, box_weight
        # Temporary probes for the auxiliary losses (not part of the model; discarded after the stage).
        self.label_probe = DiagnosisHead(model.cfg.clip.proj_dim, model.cfg.conditions) if label_weight > 0 else None
        self.patch_probes = PatchProbes(model.t1.embed_dim, len(model.cfg.conditions)) if box_weight > 0 else None
        self._targets: dict[tuple[str, str], torch.Tensor] = {}

    def patch_targets(self, case, series) -> torch.Tensor:
        key = (case.case_id, series.series_instance_uid)
        if key not in self._targets:  # the boxes never change: build each series' targets once
            # int8 (values 1, 0, -1): the cache lives for the whole stage, a quarter of float32's size
            targets = series_patch_targets(case, series, self.model.cfg.conditions, patch_side(self.model))
            self._targets[key] = targets.to(torch.int8)
        return self._targets[key]

    def forward(self, cases, text: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, dev = self.model.cfg.preprocess, text.device
        targets = self.patch_targets if self.patch_probes is not None else None
        t1, m1, dense1 = _bags(self.model, "t1", cases, cfg, self.k, dev, self.training, targets)
        t2, m2, dense2 = _bags(self.model, "t2", cases, cfg, self.k, dev, self.training, targets)
        out = self.model.clip.loss(t1, m1, t2, m2, text)
        if self.label_probe is not None:
            labels = torch.stack([c.label_vector(self.model.cfg.conditions) for c in cases]).to(dev)
            out["labels"] = report_label_loss(self.label_probe, out, labels, self.model.cfg.clip.single_weight)
            out["loss"] = out["loss"] + self.label_weight * out["labels"]
        if self.patch_probes is not None:
            out["boxes"] = sum((self.patch_probes.loss(s, *d) for s, d in (("t1", dense1), ("t2", dense2)) if d is not None),
                               out["loss"] * 0.0)
            out["loss"] = out["loss"] + self.box_weight * out["boxes"]
        return out


def report_label_loss(probe: DiagnosisHead, out: dict, labels: torch.Tensor, single_weight: float) -> torch.Tensor:
    """Masked BCE of the probe on the case embedding plus, weighted, on the T1-only and T2-only ones."""
    total = probe.loss(out["z_case"], labels)
    for z, has in ((out["z_t1"], out["has_t1"]), (out["z_t2"], out["has_t2"])):
        if has.any():
            total = total + single_weight * probe.loss(z[has], labels[has])
    return total


def load_encoder_init(encoder: nn.Module, path: str) -> None:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu")
        state = state.get("model", state) if isinstance(state, dict) else state
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing:
        raise SystemExit(f"{path}: encoder weights lack {len(missing)} keys, e.g. {missing[:3]}")
    log.info("encoder initialised from %s (%d unexpected keys ignored)", path, len(unexpected))


def model_from_encoder(args):
    """A fresh SpineFM whose T1 and T2 encoders are the converted checkpoint (architecture included)."""
    import copy

    from ..convert import CheckpointError, convert_checkpoint
    from ..model import SpineFM
    from .common import fresh_config

    if args.init:
        raise CheckpointError("--init-encoder starts a fresh model from encoder weights; it cannot be combined "
                              "with --init (a previous stage)")
    encoder, info = convert_checkpoint(args.init_encoder)
    cfg = fresh_config(args)
    cfg.vit = copy.deepcopy(encoder.config)
    cfg.clip.hidden = max(cfg.clip.hidden, 256)  # as for every encoder larger than nano
    model = SpineFM(cfg)
    for enc in (model.t1, model.t2):
        enc.load_state_dict(encoder.state_dict(), strict=True)
    dim, depth, heads = cfg.vit.dims()
    log.info("encoders initialised from %s (%s: dim %d, depth %d, heads %d, %s positions)", args.init_encoder,
             info.get("architecture", info["format"]), dim, depth, heads, cfg.vit.pos_embed)
    return model, info


def run(args) -> str:
    setup_logging()
    set_threads(args.threads)
    seed_everything(args.seed)
    rank, world, device = dist_utils.init_from_env()
    encoder_init = None
    if args.init_encoder:
        model, encoder_init = model_from_encoder(args)
    else:
        model = build_model(args)
    if args.t1_init:
        load_encoder_init(model.t1, args.t1_init)
    if args.t2_init:
        load_encoder_init(model.t2, args.t2_init)
    cfg = model.cfg
    cases = [c for c in load_cases(args, cfg.preprocess) if c.report and (c.first("t1") or c.first("t2"))]
    if len(cases) < 2:
        raise SystemExit("align needs at least 2 cases with a report and a T1 or T2 series")
    text = text_features([c.report for c in cases], cfg.text, args.cache_dir).to(device)
    model.to(device)

    enc_params = [] if args.freeze_encoders else list(model.t1.parameters()) + list(model.t2.parameters())
    for enc in (model.t1, model.t2):
        enc.requires_grad_(not args.freeze_encoders)
    step_module = AlignStep(model, cfg.preprocess.max_slices, args.label_weight, args.box_weight).to(device)
    probes = {"label_probe": step_module.label_probe, "patch_probes": step_module.patch_probes}
    probes = {k: v for k, v in probes.items() if v is not None}
    head_params = list(model.clip.parameters()) + [p for m in probes.values() for p in m.parameters()]
    groups = [{"params": head_params, "lr": args.lr}]
    if enc_params:
        groups.append({"params": enc_params, "lr": args.lr * args.encoder_lr_scale})
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)

    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(step_module, find_unused_parameters=True)
    # The temporary probes are training state too: checkpoint them with the model so a resumed run continues them.
    state = nn.ModuleDict({"model": model, **probes}) if probes else model
    loop = StageLoop(args, state, opt, len(cases))

    def clamp_temperature() -> None:
        with torch.no_grad():
            model.clip.logit_scale.clamp_(0, math.log(100.0))

    def postfix(out: dict) -> dict:
        return {"loss": f"{out['loss'].item():.3f}", "T": f"{1 / model.clip.logit_scale.exp().item():.3f}",
                **{k: f"{out[k].item():.3f}" for k in ("labels", "boxes") if k in out}}

    out = loop.run("align", step_module, lambda batch: ([cases[i] for i in batch], text[batch]), device,
                   clip=list(model.parameters()), after_step=clamp_temperature, postfix=postfix)
    step = loop.step
    if dist_utils.is_main():
        from ..bundle import save_bundle

        extra = {"stage": "align", "steps": step, "final_loss": out["loss"].item()}
        if encoder_init:
            extra["encoder_init"] = encoder_init
        save_bundle(model.cpu(), args.out, name="stage-align", synthetic_training=synthetic_of(args),
                    extra={**extra, "data": training_data(args)["description"]})
        log.info("align: %d steps, final loss %.4f -> %s", step, out["loss"].item(), args.out)
    dist_utils.barrier()
    dist_utils.cleanup()
    return args.out
