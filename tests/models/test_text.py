import json

import pytest
import torch

from spinefm.text import TextConfig, TextEncoder, default_text_model_path, text_dim_of


def test_default_text_model_is_the_offline_minilm_package():
    path = default_text_model_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert text_dim_of(TextConfig()) == 384
    enc = TextEncoder()
    out = enc(["Disc herniation at L4-L5.", "No abnormality."])
    assert out.shape == (2, 384) and torch.isfinite(out).all()
    assert not any(p.requires_grad for p in enc.parameters())


def test_local_hf_encoder_by_config(tmp_path):
    """Any local HF encoder directory (BiomedBERT at scale) is loaded by path: here a tiny BERT."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "disc", "herniation", "at", "l4", "-", "l5", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(tmp_path)
    enc = TextEncoder(TextConfig(model=str(tmp_path), pooling="cls", max_length=16))
    assert enc.dim == 32 and text_dim_of(TextConfig(model=str(tmp_path))) == 32
    assert enc(["disc herniation at l4-l5.", "disc"]).shape == (2, 32)


def test_missing_text_model_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        TextEncoder(TextConfig(model=str(tmp_path / "nope")))
