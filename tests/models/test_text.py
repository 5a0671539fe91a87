import json

import pytest
import torch

from spinefm.text import TextConfig, TextEncoder, TextModelError, default_text_model_path, pooling_of, text_dim_of


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
    with pytest.raises(TextModelError, match="not a local directory"):
        TextEncoder(TextConfig(model=str(tmp_path / "nope")))


def _bert_dir(path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    path.mkdir(exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "disc", "herniation", "at", "l4", "-", "l5", ".", "no"]
    (path / "vocab.txt").write_text("\n".join(vocab))
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    tok.save_pretrained(path)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64)).eval()
    model.save_pretrained(path)
    return model, tok


def test_text_tower_by_path_gives_the_models_own_features(tmp_path):
    """BiomedBERT-style directory: our [CLS] features are the saved BertModel's, with its own tokenizer."""
    model, tok = _bert_dir(tmp_path / "bert")
    texts = ["disc herniation at l4-l5.", "no disc herniation."]
    enc = TextEncoder(TextConfig(model=str(tmp_path / "bert"), pooling="cls", max_length=16))
    batch = tok(texts, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        ref = model(**batch).last_hidden_state[:, 0]
    assert torch.allclose(enc(texts), ref, atol=1e-6)
    assert pooling_of(str(tmp_path / "bert")) is None  # no sentence-transformers config: the CLI takes [CLS]


def test_minilm_weights_by_path_equal_the_packaged_default(tmp_path):
    """The real MiniLM weights copied to a directory of their own load by path, mean pooling detected."""
    import shutil

    copy = tmp_path / "all-MiniLM-L6-v2"
    shutil.copytree(default_text_model_path(), copy)
    assert pooling_of(str(copy)) == "mean"
    texts = ["Disc herniation at L4-L5.", "No abnormality.", "Vertebral body heights are maintained."]
    by_path = TextEncoder(TextConfig(model=str(copy), pooling=pooling_of(str(copy))))
    assert torch.equal(by_path(texts), TextEncoder()(texts))
    sims = torch.nn.functional.normalize(by_path(texts), dim=-1) @ torch.nn.functional.normalize(by_path(texts), dim=-1).T
    assert sims[0, 1] < 0.9 and sims[0, 0] > 0.999  # real weights: different sentences, different embeddings


def test_a_directory_that_is_not_a_text_encoder_is_refused_in_one_line(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32)).save_pretrained(tmp_path / "llama")
    with pytest.raises(TextModelError, match="is not a text encoder"):
        TextEncoder(TextConfig(model=str(tmp_path / "llama")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextModelError, match="no config.json"):
        text_dim_of(TextConfig(model=str(tmp_path / "empty")))
    _bert_dir(tmp_path / "notok")
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "notok" / f).unlink(missing_ok=True)
    with pytest.raises(TextModelError, match="no usable tokenizer") as exc:
        TextEncoder(TextConfig(model=str(tmp_path / "notok")))
    assert "\n" not in str(exc.value)


def test_align_with_a_bad_text_model_exits_2_with_one_line(tmp_path, capsys):
    from spinefm.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["align", "--data", "random", "--out", str(tmp_path / "a"), "--text-model", str(tmp_path / "nope"),
              "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "is not a local directory" in err
