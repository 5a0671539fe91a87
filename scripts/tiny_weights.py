#!/usr/bin/env python
"""Tiny random models in the published on-disk layouts, to rehearse docs/weights.md without downloads.

Writes under OUT (each a directory, as the real download would be):

  dinov3/        transformers DINOv3ViTModel (save_pretrained): config.json + model.safetensors
  llama/         transformers LlamaForCausalLM in the Llama-3.x layout: config.json, model.safetensors,
                 tokenizer.json + tokenizer_config.json with a Llama-3 chat template (<|eot_id|> ...)
  bert/          transformers BertModel + its WordPiece tokenizer (a BiomedBERT-style text encoder)

Random weights: the drafts they write are noise and the features mean nothing. They exercise the
conversion, the drafter loading and the text encoder with the exact files a site would have.

    python scripts/tiny_weights.py --out /tmp/weights [--dim 64] [--llama-hidden 64]
"""

from __future__ import annotations

import argparse
from pathlib import Path

LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|eot_id|>", "<|finetune_right_pad_id|>"]
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' "
    "+ m['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
CORPUS = ["FINDINGS: Disc herniation at L4-L5 with spinal canal stenosis. IMPRESSION: 1. Disc herniation.",
          "TECHNIQUE: MRI of the lumbar spine. Sequences: sagittal T1, sagittal T2. COMPARISON: None provided.",
          "Vertebral body heights are maintained. No marrow edema or fracture. The conus is normal.",
          "Possible neuroforaminal narrowing at L5-S1; cannot be excluded. Clinical correlation is recommended."]


def dinov3(out: Path, dim: int = 64, layers: int = 2, heads: int = 4, registers: int = 4,
           gated: bool = False, seed: int = 0) -> Path:
    import torch
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(seed)
    cfg = DINOv3ViTConfig(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=4 * dim, image_size=112, num_register_tokens=registers,
                          use_gated_mlp=gated, hidden_act="silu" if gated else "gelu", layerscale_value=0.5)
    DINOv3ViTModel(cfg).save_pretrained(out)
    return out


def llama3_tokenizer(vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from spinefm.report.prompt import SYSTEM_PROMPT

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=LLAMA3_SPECIAL, min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS + [SYSTEM_PROMPT], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|finetune_right_pad_id|>")
    fast.chat_template = LLAMA3_TEMPLATE
    return fast


def llama(out: Path, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, seed: int = 0) -> Path:
    """A Llama-3.x-shaped causal LM directory (GQA, rope_theta 500000, untied head), tiny and random."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = llama3_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, intermediate_size=2 * hidden, max_position_embeddings=4096,
                      rope_theta=500000.0, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<|eot_id|>"),
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def bert(out: Path, hidden: int = 32, seed: int = 0) -> Path:
    """A BERT encoder directory with a WordPiece vocabulary (the layout of BiomedBERT)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    words = sorted({w.strip(".,:;()").lower() for line in CORPUS for w in line.split()} - {""})
    (out / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(out)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=2 * hidden, max_position_embeddings=512)).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dim", type=int, default=64, help="DINOv3 width (a multiple of 4 x heads)")
    ap.add_argument("--llama-hidden", type=int, default=64)
    args = ap.parse_args(argv)
    for path in (dinov3(args.out / "dinov3", args.dim), llama(args.out / "llama", args.llama_hidden),
                 bert(args.out / "bert")):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
