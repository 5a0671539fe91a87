"""Training the report agent: stage 1 projector warm-up, stage 2 LoRA (+ projector).

Stages (``--stages``):
* ``lm``        - tiny LM only: full training of the small decoder on the corpus (it
                   stands in for Llama's pretraining; skipped when ``lm_path`` is set),
* ``projector`` - stage 1: LM frozen, projector trained (release: lr 1e-3, 2 epochs),
* ``lora``      - stage 2: LoRA on the LM + projector (release: r=128, alpha=256, lr 2e-5, 4 epochs).

Resumable: every ``ckpt_every`` steps the trainable tensors, optimizer state and
position are written to ``<out>/ckpt/<stage>.pt``; a rerun skips finished stages
and steps. bf16 autocast on CUDA. Under torchrun (WORLD_SIZE>1) each rank takes
a strided shard of the examples and gradients of the trainable tensors are
averaged across ranks (DDP semantics); with ``--fsdp`` (8B) the decoder layers are
sharded with FSDP2, LoRA added before sharding. Example (8 GPUs, one node)::

    torchrun --nproc_per_node 8 -m spinefm.train.report_agent --lm-path /models/Llama-3.1-8B-Instruct \
        --phantom-seed 0 --n-studies 20000 --stages projector,lora --fsdp --bf16 --out runs/ra
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from spinefm.report.data import Example
from spinefm.report.model import ReportAgent
from spinefm.train.schedules import warmup_cosine_factor

STAGE_DEFAULTS = {  # lr, epochs (release numbers for projector/lora)
    "lm": (3e-3, 6),
    "projector": (1e-3, 2),
    "lora": (2e-5, 4),
}


@dataclass
class StageResult:
    stage: str
    steps: int
    first_loss: float
    last_loss: float
    seconds: float


def set_trainable(agent: ReportAgent, stage: str) -> list[torch.nn.Parameter]:
    for p in agent.parameters():
        p.requires_grad_(False)
    if stage == "lm":
        for p in agent.lm.parameters():
            p.requires_grad_(True)
    elif stage == "projector":
        for p in agent.projector.parameters():
            p.requires_grad_(True)
    elif stage == "lora":
        agent.add_lora()
        for n, p in agent.lm.named_parameters():
            p.requires_grad_("lora_" in n)
        for p in agent.projector.parameters():
            p.requires_grad_(True)
    else:
        raise ValueError(f"unknown stage {stage!r}")
    return [p for p in agent.parameters() if p.requires_grad]


def _trainable_state(agent: ReportAgent) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu() for n, p in agent.named_parameters() if p.requires_grad}


def shard_for_fsdp(agent: ReportAgent) -> None:
    """FSDP2 for a big LM: shard each decoder layer; embeddings/head stay replicated so the
    prompt can be embedded outside ``lm.forward``. Call after ``add_lora`` (stage 2)."""
    from torch.distributed.fsdp import fully_shard
    base = agent.lm.get_base_model() if hasattr(agent.lm, "get_base_model") else agent.lm
    for layer in base.model.layers:
        fully_shard(layer)


def sync_grads(params: list[torch.nn.Parameter]) -> None:
    """Average gradients of replicated trainable tensors across ranks (DDP without the
    wrapper, so the trainable set may change between stages); FSDP-sharded ones
    (DTensor) are reduced by FSDP itself."""
    import torch.distributed as dist
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    from torch.distributed.tensor import DTensor
    for p in params:
        if p.grad is not None and not isinstance(p, DTensor):
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= dist.get_world_size()


def train_stage(agent: ReportAgent, examples: list[Example], stage: str, out: Path | None = None,
                epochs: float | None = None, lr: float | None = None, batch_size: int = 8,
                max_len: int = 1024, ckpt_every: int = 50, seed: int = 0, bf16: bool = False,
                max_steps: int | None = None, log=print, rank: int = 0, world: int = 1) -> StageResult:
    """One stage; returns first/last loss (means over the first/last few steps)."""
    d_lr, d_ep = STAGE_DEFAULTS[stage]
    lr, epochs = lr or d_lr, epochs or d_ep
    params = set_trainable(agent, stage)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    shard = examples[rank::world]
    steps_per_epoch = max(1, math.ceil(len(shard) / batch_size))
    total = max_steps or max(1, int(steps_per_epoch * epochs))
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine_factor(s, total, warm))
    ckpt = Path(out) / "ckpt" / f"{stage}.pt" if out else None
    start = 0
    losses: list[float] = []
    if ckpt and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        names = dict(agent.named_parameters())
        for n, t in state["params"].items():
            names[n].data.copy_(t)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start, losses = state["step"], state["losses"]
        log(f"[{stage}] resumed at step {start}/{total}")
    encoded = [agent.encode(e.messages, e.answer) for e in shard]
    device = agent.device
    agent.train()
    t0 = time.perf_counter()
    order: list[int] = []
    for step in range(start, total):
        ep, within = divmod(step, steps_per_epoch)
        rng = random.Random(seed * 1000 + ep)
        order = list(range(len(shard)))
        rng.shuffle(order)
        idx = order[within * batch_size:(within + 1) * batch_size] or order[:batch_size]
        items = [encoded[i] for i in idx]
        embs = [shard[i].embeddings for i in idx]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                            enabled=bf16 and device.type == "cuda"):
            loss = agent.loss(items, embs, max_len=max_len)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync_grads(params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % max(1, total // 10) == 0 or step == total - 1:
            log(f"[{stage}] step {step + 1}/{total} loss {sum(losses[-5:]) / len(losses[-5:]):.3f}")
        if ckpt and rank == 0 and ((step + 1) % ckpt_every == 0 or step == total - 1):
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"params": _trainable_state(agent), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "step": step + 1, "losses": losses}, ckpt)
    agent.eval()
    k = max(1, min(5, len(losses) // 3))  # windows never overlap
    first = sum(losses[:k]) / max(1, len(losses[:k]))
    last = sum(losses[-k:]) / max(1, len(losses[-k:]))
    return StageResult(stage, total, first, last, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    from spinefm.report.agent_io import save_report_agent
    from spinefm.report.data import attach_similar, build_vqa, corpus_texts, phantom_studies, toy_studies
    from spinefm.report.model import AgentConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output dir; report_agent/ is written inside")
    ap.add_argument("--lm-path", default=None, help="local HF causal LM dir; default: tiny Llama")
    ap.add_argument("--dataset", type=Path, default=None,
                    help="a spinefm dataset directory (its train split's reports, labels and findings; stand-in "
                         "agent outputs and embeddings)")
    ap.add_argument("--phantom-seed", type=int, default=None, help="use spine_phantom studies")
    ap.add_argument("--n-studies", type=int, default=200)
    ap.add_argument("--phantom-cache", type=Path, default=None, help="dir caching phantom truth JSON")
    ap.add_argument("--bundle", type=Path, default=None,
                    help="SpineFM bundle: real agent outputs + slice embeddings on full phantoms "
                         "(needs --phantom-seed; --in-dim is taken from the bundle)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (1 avoids oversubscription on shared cores: ~15x faster here)")
    ap.add_argument("--in-dim", type=int, default=64)
    ap.add_argument("--n-queries", type=int, default=64)
    ap.add_argument("--stages", default="lm,projector,lora")
    ap.add_argument("--epochs", default="", help="per stage, e.g. lm=6,projector=2,lora=4")
    ap.add_argument("--lr", default="", help="per stage, e.g. lora=1e-3 (defaults: release numbers)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lora-r", type=int, default=128)
    ap.add_argument("--lora-alpha", type=int, default=256)
    ap.add_argument("--tasks", default="report,long,short,choice", help="VQA task types to train on")
    ap.add_argument("--no-agents", action="store_true", help="LLaVA-direct baseline: image tokens only")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--fsdp", action="store_true")
    ap.add_argument("--version", default=None)
    args = ap.parse_args(argv)

    from spinefm.distributed import init_from_env, is_main
    rank, world, device = init_from_env()
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.dataset is not None and args.bundle is not None:
        raise SystemExit("--dataset with --bundle is not supported yet: the bundle's agent outputs need the DICOM "
                         "study, and a dataset keeps preprocessed crops (use --phantom-seed with --bundle)")
    if args.dataset is not None:
        from spinefm.report.data import dataset_studies

        studies = dataset_studies(args.dataset, args.in_dim)
        attach_similar(studies)
    elif args.bundle is not None:
        import spine_phantom

        from spinefm.bundle import load_bundle
        from spinefm.report.data import Study, bundle_analysis
        bundle = load_bundle(args.bundle)
        studies = []
        for i in range(args.n_studies):
            if spine_phantom.split_of(args.phantom_seed, i) != "train":
                continue
            truth, result, emb = bundle_analysis(bundle, args.phantom_seed, i)
            studies.append(Study(f"phantom-{args.phantom_seed}-{i}", truth, result, emb, "train"))
        args.in_dim = int(next(iter(studies[0].embeddings.values())).shape[1])
        print(f"{len(studies)} studies analysed with bundle {args.bundle.name}; in_dim {args.in_dim}", flush=True)
    elif args.phantom_seed is not None:
        studies = phantom_studies(args.phantom_seed, range(args.n_studies), args.in_dim,
                                  cache_dir=args.phantom_cache, split="train")
        attach_similar(studies)
    else:
        studies = toy_studies(args.n_studies, 0, args.in_dim)
    train = [s for s in studies if s.split == "train"]
    cfg = AgentConfig(in_dim=args.in_dim, n_queries=args.n_queries, lm_path=args.lm_path,
                      lora_r=args.lora_r, lora_alpha=args.lora_alpha, agents=not args.no_agents,
                      version=args.version or time.strftime("%Y%m%d-%H%M"))
    agent = ReportAgent.build(cfg, corpus=corpus_texts(train, cfg.agents),
                              torch_dtype=torch.bfloat16 if args.bf16 else None)
    agent.to(device)
    examples = build_vqa(train, tasks=args.tasks.split(","), agents=cfg.agents)
    stages = args.stages.split(",")
    if args.fsdp:
        if "lora" in stages:
            agent.add_lora()  # before sharding; B=0 so stage 1 is unaffected
        shard_for_fsdp(agent)
    epochs = dict(kv.split("=") for kv in args.epochs.split(",") if kv)
    lrs = dict(kv.split("=") for kv in args.lr.split(",") if kv)
    results = []
    for stage in stages:
        if stage == "lm" and cfg.lm_path:
            continue
        results.append(train_stage(agent, examples, stage, args.out, epochs=float(epochs.get(stage, 0)) or None,
                                   lr=float(lrs.get(stage, 0)) or None,
                                   batch_size=args.batch_size, bf16=args.bf16, rank=rank, world=world))
    if is_main():
        from spinefm.dataset import Dataset

        save_report_agent(agent, args.out / "report_agent",
                          {"training": [r.__dict__ for r in results],
                           "data": (f"dataset {args.dataset} ({Dataset(args.dataset).description}), stand-in agent "
                                    "outputs and embeddings" if args.dataset else
                                    f"spine_phantom seed {args.phantom_seed} analysed by bundle {args.bundle.name}"
                                    if args.bundle else f"spine_phantom seed {args.phantom_seed}, stand-in agent "
                                    "outputs and embeddings" if args.phantom_seed is not None else
                                    "toy generator, stand-in agent outputs and embeddings")})
        print(json.dumps([r.__dict__ for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
