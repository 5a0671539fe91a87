"""CUDA paths of the model library: bf16 autocast, a training step on the GPU, compiled static decoding.

Skipped where there is no GPU (CI has none). ``scripts/device_checks.sh`` runs
them on a lent GPU machine, where they must pass: the CPU tests cannot see a
dtype or device mistake that only CUDA makes.
"""

import math

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_vit_under_bf16_autocast_matches_fp32():
    from spinefm.vit import ViTConfig, VisionTransformer

    torch.manual_seed(0)
    # layerscale 1.0: with the training init (1e-5) the blocks barely touch the tokens and any dtype would pass
    vit = VisionTransformer(ViTConfig(size="small", img_size=224, layerscale_init=1.0)).cuda().eval()
    x = torch.randn(8, 3, 224, 224, device="cuda")
    with torch.no_grad():
        ref = vit.forward_features(x)["patches"]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = vit.forward_features(x)["patches"]
    assert not torch.equal(ref, low.float())                       # the blocks did run in bf16
    assert F.cosine_similarity(ref, low.float(), dim=-1).min() > 0.98


def test_align_step_with_both_auxiliary_losses_trains_on_gpu_under_bf16():
    from spinefm.data import random_cases
    from spinefm.model import SpineFM, nano_config
    from spinefm.train.align import AlignStep
    from spinefm.train.common import autocast

    torch.manual_seed(0)
    device = torch.device("cuda")
    model = SpineFM(nano_config(img_size=64, text_dim=16, proj_dim=16, depth=2)).to(device)
    cases = random_cases(8, model.cfg.preprocess, n_slices=3, seed=0)
    step = AlignStep(model, k=3, label_weight=1.0, box_weight=1.0).to(device)
    text = torch.randn(len(cases), 16, device=device)
    opt = torch.optim.AdamW(step.parameters(), lr=3e-3)
    step.train()
    losses = []
    for _ in range(30):
        with autocast(device):
            out = step(cases, text)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) < sum(losses[:5])


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=500, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=256, max_position_embeddings=512)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).cuda().eval()


def test_compiled_static_decoder_gives_the_eager_tokens_on_gpu():
    from spinefm.report.decode import StaticDecoder

    torch.backends.cuda.matmul.allow_tf32 = False
    lm = _tiny_llama()
    ids = torch.randint(10, 500, (4, 20), device="cuda")
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # a left-padded row, as batched drafting makes
    with torch.no_grad():
        x = lm.get_input_embeddings()(ids)
    eager = StaticDecoder(lm, compile=False).generate(x, mask, 24, eos_ids=[-1], stop_early=False)
    compiled = StaticDecoder(lm, compile=True)
    compiled.generate(x, mask, 24, eos_ids=[-1], stop_early=False)   # capture
    again = compiled.generate(x, mask, 24, eos_ids=[-1], stop_early=False)
    assert again == eager and all(len(row) == 24 for row in again)
    assert compiled.stats.tokens_per_s > 0


def test_static_decoder_matches_hf_generate_on_gpu():
    from spinefm.report.decode import StaticDecoder

    torch.backends.cuda.matmul.allow_tf32 = False
    lm = _tiny_llama()
    ids = torch.randint(10, 500, (2, 16), device="cuda")
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ref = lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, min_new_tokens=12,
                          do_sample=False, pad_token_id=0)[:, ids.shape[1]:].tolist()
        x = lm.get_input_embeddings()(ids)
    ours = StaticDecoder(lm, compile=False).generate(x, mask, 12, eos_ids=[-1], stop_early=False)
    assert ours == ref


def test_rope_swiglu_vit_under_bf16_autocast_matches_fp32():
    """The DINOv3 architecture (RoPE cos/sin cast to the activations' dtype, SwiGLU) on CUDA in bf16."""
    from spinefm.vit import ViTConfig, VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(ViTConfig(size="small", img_size=224, layerscale_init=1.0, pos_embed="rope",
                                      ffn="swiglu", norm_eps=1e-5)).cuda().eval()
    x = torch.randn(8, 3, 224, 224, device="cuda")
    with torch.no_grad():
        ref = vit.forward_features(x)["patches"]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = vit.forward_features(x)["patches"]
    assert low.dtype == torch.bfloat16 and not torch.equal(ref, low.float())
    assert F.cosine_similarity(ref, low.float(), dim=-1).min() > 0.98


def test_configured_llava_drafter_loads_on_the_gpu_in_bf16(tmp_path):
    """A worker's drafter: Llama-3-layout LM directory + our projector and LoRA, on CUDA in bf16 by default."""
    import importlib.util
    from pathlib import Path

    from spinefm.report import load_drafter
    from spinefm.report.agent_io import save_report_agent
    from spinefm.report.model import AgentConfig, ReportAgent
    from spinefm.results import AnalysisResult, ConditionPrediction, SeriesUsed

    spec = importlib.util.spec_from_file_location("tiny_weights", Path(__file__).parents[2] / "scripts" / "tiny_weights.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    lm = tiny.llama(tmp_path / "llama")
    agent = ReportAgent.build(AgentConfig(in_dim=16, n_queries=4, lm_path=str(lm), lora_r=4, lora_alpha=8,
                                          max_new_tokens=8), torch_dtype=torch.float32)
    agent.add_lora()
    save_report_agent(agent, tmp_path / "agent")
    drafter = load_drafter({"backend": "llava", "lm_path": str(lm), "agent_dir": str(tmp_path / "agent")})
    assert drafter.primary is not None, drafter.status
    assert drafter.settings()["device"].startswith("cuda") and drafter.settings()["dtype"] == "bfloat16"
    result = AnalysisResult("t", "0", True, conditions=[ConditionPrediction("canal", 0.9, True, "L4-L5", "present")],
                            series=[SeriesUsed("1", "T2", "sagittal", "t2", 5)])
    emb = {"t2": torch.randn(5, 16, device="cuda")}
    records = [drafter.draft_record(result, emb) for _ in range(2)]
    assert records[0].label.startswith("llava/") and records[0].text == records[1].text  # greedy: reproducible
