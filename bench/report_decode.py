"""Decode throughput of the report agent's LM vs the memory-bandwidth floor.

At small batch, every decoded token reads all weights once, so the ceiling is
``measured copy bandwidth / weight bytes`` tokens/s per sequence (the "floor" on
time per token). We report tokens/s for plain ``generate`` (dynamic cache) and for
our static-cache decoder (compiled on GPU), at batch 1 and 16, as a ratio of
that ceiling. CPU here uses a small random Llama; on a GPU pass ``--lm-path`` for
Llama-3.1-8B (bf16). Reference (one H100, 8B bf16): plain generate 34 tok/s at
batch 1, 548 at batch 16; floor ~190 tok/s at batch 1; target >= 60% of floor.

    python bench/report_decode.py                       # CPU, small config
    python bench/report_decode.py --lm-path /models/Llama-3.1-8B-Instruct --dtype bfloat16

``--drafter`` times whole drafts through the llava drafter instead (prompt from an AnalysisResult,
projector, splicing, static decoder, detokenising), at each batch: with ``--lm-path`` and ``--agent-dir``
the configured drafter exactly as a worker loads it (spinefm.report.load_drafter); otherwise a random LM
of the chosen shape (``--preset llama-3.1-8b``) wrapped in the same LlavaDrafter with a Llama-3-style
tokenizer and a random projector. Tokens/s count the decode steps; ``draft_s`` is the wall time per call.

    python bench/report_decode.py --drafter --lm-path /tmp/w/llama --agent-dir /tmp/w/agent/report_agent
    python bench/report_decode.py --drafter --preset llama-3.1-8b --dtype bfloat16 --new 128   # GPU
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spinefm.report.decode import StaticDecoder

DT = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def copy_bandwidth(device: torch.device, nbytes: int, reps: int = 5) -> float:
    """Bytes/s moved by a device-local copy (read + write counted)."""
    x = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    y = torch.empty_like(x)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    y.copy_(x); sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); y.copy_(x); sync(); best = min(best, time.perf_counter() - t)
    return 2 * x.numel() * 4 / best


# Shapes of real models, for random-weight runs where the weights cannot be downloaded (same bytes per token).
PRESETS = {
    "llama-3.1-8b": {"hidden": 4096, "layers": 32, "inter": 14336, "heads": 32, "kv_heads": 8, "vocab": 128256},
}


def weight_bytes(lm) -> int:
    seen, total = set(), 0
    for p in lm.parameters():
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        total += p.numel() * p.element_size()
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm-path", default=None)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--inter", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--dtype", default=None, help="float32 (CPU default) / bfloat16 (GPU default)")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--compile", default="auto", help="auto (GPU only) / 1 / 0")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--drafter", action="store_true", help="time whole drafts through the llava drafter")
    ap.add_argument("--agent-dir", default=None, help="--drafter: our report agent for --lm-path (projector, adapter)")
    ap.add_argument("--in-dim", type=int, default=1024, help="--drafter without --agent-dir: slice-embedding width")
    ap.add_argument("--preset", default=None, choices=sorted(PRESETS),
                    help="shape of a known model with random weights (no download), e.g. llama-3.1-8b")
    args = ap.parse_args()
    for k, v in PRESETS.get(args.preset, {}).items():
        setattr(args, k, v)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DT[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    torch.manual_seed(0)
    if args.drafter and args.agent_dir:
        return drafter_bench(args, None, device, dtype)
    if args.lm_path:
        from transformers import AutoModelForCausalLM
        lm = AutoModelForCausalLM.from_pretrained(args.lm_path, dtype=dtype).to(device)
    else:
        from transformers import LlamaConfig, LlamaForCausalLM
        cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                          num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                          intermediate_size=args.inter, max_position_embeddings=4096, tie_word_embeddings=False)
        # Built on the device in its dtype: an 8B model would take 32 GB and minutes to initialise on the host.
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                lm = LlamaForCausalLM(cfg)
        finally:
            torch.set_default_dtype(default)
    lm.eval()
    if args.drafter:
        return drafter_bench(args, lm, device, dtype)
    wb = weight_bytes(lm)
    bw = copy_bandwidth(device, max(256 << 20, min(4 * wb, 4 << 30)))
    floor1 = bw / wb
    comp = {"auto": "auto", "1": True, "0": False}[args.compile]
    dec = StaticDecoder(lm, compile=comp)
    emb = lm.get_input_embeddings()
    rows = []
    for B in [int(b) for b in args.batches.split(",")]:
        ids = torch.randint(10, emb.num_embeddings, (B, args.prompt), device=device)
        mask = torch.ones_like(ids)
        x = emb(ids)
        row = {"batch": B, "floor_tok_s": B * floor1}
        if not args.skip_plain:
            with torch.inference_mode():
                lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False,
                            min_new_tokens=4, pad_token_id=0)
                t = time.perf_counter()
                lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=args.new, min_new_tokens=args.new,
                            do_sample=False, pad_token_id=0)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t
            row["plain_tok_s"] = B * args.new / dt  # includes prefill (as a user sees it)
        dec.generate(x, mask, min(args.new, 16), eos_ids=[-1], stop_early=False)  # warm-up / compile
        dec.generate(x, mask, args.new, eos_ids=[-1], stop_early=False)
        st = dec.stats
        row["static_tok_s"] = st.tokens_per_s  # decode steps only
        row["static_e2e_tok_s"] = B * args.new / (st.prefill_s + st.decode_s)
        row["static_vs_floor"] = row["static_tok_s"] / row["floor_tok_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
            "dtype": str(dtype).replace("torch.", ""), "weights_MB": wb / 2**20, "copy_GB_s": bw / 1e9,
            "floor_batch1_tok_s": floor1, "compiled": dec.compile, "prompt": args.prompt, "new": args.new,
            "model": args.lm_path or (f"random Llama h{args.hidden} L{args.layers} ff{args.inter} V{args.vocab}"
                                       + (f" ({args.preset} shape)" if args.preset else ""))}
    print(json.dumps(info, indent=1))
    print(f"{'batch':>5} {'floor tok/s':>12} {'plain tok/s':>12} {'static tok/s':>13} {'static e2e':>11} {'static/floor':>13}")
    for r in rows:
        print(f"{r['batch']:>5} {r['floor_tok_s']:>12.1f} {r.get('plain_tok_s', float('nan')):>12.1f} "
              f"{r['static_tok_s']:>13.1f} {r['static_e2e_tok_s']:>11.1f} {r['static_vs_floor']:>13.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "rows": rows}, f, indent=1)
    return 0


def study_result():
    """A plausible AnalysisResult (lumbar study, three findings, a similar case) for the prompt."""
    from spinefm.results import AnalysisResult, Box, ConditionPrediction, KeySlice, SeriesUsed, SimilarCase

    return AnalysisResult(
        "bench", "0", True,
        conditions=[ConditionPrediction("canal", 0.86, True, "L4-L5", "present"),
                    ConditionPrediction("herniation", 0.55, False, "L4-L5", "possible"),
                    ConditionPrediction("fracture", 0.04, False, None, "absent")],
        key_slices=[KeySlice("canal", "1.2.3", "1.2.3.4", 7, 0.9)],
        boxes=[Box("canal", "1.2.3", "1.2.3.4", [10.0, 20.0, 40.0, 50.0], 0.8, "L4-L5")],
        similar_cases=[SimilarCase("case-9", 0.91, "FINDINGS:\nL4-L5: Disc herniation.\nIMPRESSION:\n1. Herniation.")],
        series=[SeriesUsed("1.2.3", "T2", "sagittal", "t2", 15), SeriesUsed("1.2.4", "T1", "sagittal", "t1", 15)])


def drafter_bench(args, lm, device, dtype) -> int:
    """Drafts per call through LlavaDrafter at each batch size; decode tokens/s vs the bandwidth floor."""
    from spinefm.report.backends.llava import LlavaDrafter

    comp = {"auto": "auto", "1": True, "0": False}[args.compile]
    if lm is None:  # the configured drafter, loaded as a worker loads it
        from spinefm.report import load_drafter

        name = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
        guarded = load_drafter({"backend": "llava", "lm_path": args.lm_path, "agent_dir": args.agent_dir,
                                "dtype": name, "max_new_tokens": args.new, "compile": comp})
        if guarded.primary is None:
            print(guarded.status)
            return 2
        drafter, source = guarded.primary, f"configured llava drafter ({guarded.version})"
    else:
        import importlib.util
        from pathlib import Path

        from spinefm.report.model import AgentConfig, ReportAgent
        from spinefm.report.projector import AttentionPoolProjector

        spec = importlib.util.spec_from_file_location("tiny_weights", Path(__file__).parents[1] / "scripts" / "tiny_weights.py")
        tiny = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tiny)
        width = lm.get_input_embeddings().weight.shape[1]
        projector = AttentionPoolProjector(args.in_dim, width, 64).to(device, dtype)
        agent = ReportAgent(lm, tiny.llama3_tokenizer(), projector, AgentConfig(in_dim=args.in_dim, max_new_tokens=args.new))
        drafter = LlavaDrafter(agent, args.new, compile=comp, batch_size=max(int(b) for b in args.batches.split(",")))
        source = f"LlavaDrafter over a random LM ({args.preset or 'custom'} shape)"
    lm = drafter.agent.lm
    dev = drafter.agent.device
    wb = weight_bytes(lm)
    floor1 = copy_bandwidth(dev, max(256 << 20, min(4 * wb, 4 << 30))) / wb
    in_dim = drafter.agent.config.in_dim
    rows = []
    for B in [int(b) for b in args.batches.split(",")]:
        drafter.batch_size = B
        results = [study_result()] * B
        embs = [{"t1": torch.randn(15, in_dim, device=dev), "t2": torch.randn(15, in_dim, device=dev)} for _ in range(B)]
        drafter.draft_many(results, embs)  # warm-up / compile
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
        t = time.perf_counter()
        drafter.draft_many(results, embs)
        sync()
        wall = time.perf_counter() - t
        st = drafter.decoder.stats
        row = {"batch": B, "floor_tok_s": B * floor1, "draft_s": wall, "decode_steps": st.steps,
               "drafter_tok_s": st.tokens_per_s, "drafter_vs_floor": st.tokens_per_s / (B * floor1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    info = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
            "dtype": str(drafter.agent.dtype).replace("torch.", ""), "weights_MB": wb / 2**20,
            "floor_batch1_tok_s": floor1, "compiled": drafter.decoder.compile, "max_new": args.new, "model": source}
    print(json.dumps(info, indent=1))
    print(f"{'batch':>5} {'floor tok/s':>12} {'drafter tok/s':>14} {'drafter/floor':>14} {'s per call':>11}")
    for r in rows:
        print(f"{r['batch']:>5} {r['floor_tok_s']:>12.1f} {r['drafter_tok_s']:>14.1f} {r['drafter_vs_floor']:>14.2f} "
              f"{r['draft_s']:>11.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
