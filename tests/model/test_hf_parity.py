"""fastllm's GPT against transformers' GPT2LMHeadModel on the same weights (fp32)."""

import math

import pytest
import torch
from transformers import GPT2LMHeadModel

from fastllm.model import GPT, GPTConfig

ATOL = 1e-5


def ids_for(model_vocab, batch=3, seq=19, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model_vocab, (batch, seq), generator=g)


def test_logits_equal_hf_loaded_from_hf_dir(hf_model, model):
    idx = ids_for(model.config.vocab_size)
    with torch.no_grad():
        expected = hf_model(idx).logits
        got = model(idx).logits
    assert got.shape == (3, 19, model.config.vocab_size)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)


def test_hf_loads_what_fastllm_saves(tmp_path):
    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=500, block_size=32, n_layer=3, n_head=2, n_embd=32)).eval()
    ours.save_pretrained(tmp_path)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = ids_for(500, seq=32)
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx).logits, atol=ATOL, rtol=1e-5)


def test_save_load_round_trip_is_exact(model, tmp_path):
    model.save_pretrained(tmp_path)
    again = GPT.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert again.lm_head.weight is again.transformer.wte.weight


def test_pytorch_model_bin_loads(model, hf_model, tmp_path):
    model.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "pytorch_model.bin").is_file() and not (tmp_path / "model.safetensors").exists()
    idx = ids_for(model.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(GPT.from_pretrained(tmp_path)(idx).logits, hf_model(idx).logits, atol=ATOL, rtol=1e-5)


def test_original_gpt2_key_layout_loads(hf_model, tmp_path):
    """OpenAI's checkpoints have no ``transformer.`` prefix and carry the causal-mask buffers."""
    state = {k.removeprefix("transformer."): v for k, v in hf_model.state_dict().items() if k != "lm_head.weight"}
    n_pos = hf_model.config.n_positions
    for layer in range(hf_model.config.n_layer):
        state[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(n_pos, n_pos)).view(1, 1, n_pos, n_pos)
    torch.save(state, tmp_path / "pytorch_model.bin")
    hf_model.config.to_json_file(tmp_path / "config.json")
    idx = ids_for(hf_model.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(GPT.from_pretrained(tmp_path)(idx).logits, hf_model(idx).logits, atol=ATOL, rtol=1e-5)


def test_loss_equals_hf_and_respects_ignore_index(hf_model, model):
    idx = ids_for(model.config.vocab_size, seq=16)
    labels = idx.clone()
    labels[0, 5:9] = -100
    with torch.no_grad():
        expected = hf_model(idx, labels=labels).loss  # HF shifts inside
        targets = torch.cat([labels[:, 1:], torch.full((3, 1), -100)], dim=1)
        logits, loss, _ = model(idx, targets)
    assert logits is not None and logits.shape == (3, 16, model.config.vocab_size)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_gradients_equal_hf(hf_dir):
    hf = GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    ours = GPT.from_pretrained(hf_dir)
    idx = ids_for(ours.config.vocab_size, batch=2, seq=12)
    hf(idx, labels=idx).loss.backward()
    targets = torch.cat([idx[:, 1:], torch.full((2, 1), -100)], dim=1)
    ours(idx, targets)[1].backward()
    torch.testing.assert_close(ours.transformer.wte.weight.grad, hf.transformer.wte.weight.grad, atol=1e-5, rtol=1e-4)
    ours_qkv = ours.transformer.h[0].attn.c_attn.weight.grad
    torch.testing.assert_close(ours_qkv, hf.transformer.h[0].attn.c_attn.weight.grad.t(), atol=1e-5, rtol=1e-4)


def test_attention_probabilities_equal_hf(hf_dir, model):
    hf = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="eager").eval()
    idx = ids_for(model.config.vocab_size, batch=2, seq=11)
    with torch.no_grad():
        expected = hf(idx, output_attentions=True).attentions
        logits, _, maps = model(idx, return_attention=True)
        torch.testing.assert_close(logits, model(idx).logits, atol=ATOL, rtol=1e-5)
    assert len(maps) == len(expected) == model.config.n_layer
    for ours, theirs in zip(maps, expected):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_gpt2_initialisation():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=2000, block_size=64, n_layer=8, n_head=4, n_embd=128)
    model = GPT(config)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert abs(model.transformer.wte.weight.std().item() - 0.02) < 1e-3
    proj = model.transformer.h[0].mlp.c_proj.weight
    assert abs(proj.std().item() - 0.02 / math.sqrt(2 * config.n_layer)) < 5e-4
    assert torch.count_nonzero(model.transformer.h[0].attn.c_attn.bias) == 0


def test_resize_token_embeddings_keeps_rows_and_tie():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=100, block_size=16, n_layer=1, n_head=2, n_embd=32))
    old = model.transformer.wte.weight.detach().clone()
    model.resize_token_embeddings(120)
    assert model.config.vocab_size == 120
    assert torch.equal(model.transformer.wte.weight[:100], old)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model(torch.tensor([[119]])).logits.shape == (1, 1, 120)
    model.resize_token_embeddings(50)
    assert torch.equal(model.transformer.wte.weight, old[:50])


def test_no_bias_model_saves_as_zero_biases_hf_can_load(tmp_path):
    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=100, block_size=16, n_layer=2, n_head=2, n_embd=32, bias=False)).eval()
    ours.save_pretrained(tmp_path)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = ids_for(100, seq=16)
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx).logits, atol=ATOL, rtol=1e-5)


def test_save_pretrained_writes_tokenizer(model, tokenizer, tmp_path):
    from fastllm import Tokenizer

    model.save_pretrained(tmp_path, tokenizer=tokenizer)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    text = "the heart of the matter, caf\u00e9<|endoftext|>"
    assert Tokenizer.from_pretrained(tmp_path).encode(text, allowed_special="all") == tokenizer.encode(
        text, allowed_special="all"
    )


def test_sharded_safetensors_load(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    idx = ids_for(hf_model.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(GPT.from_pretrained(tmp_path)(idx).logits, hf_model(idx).logits, atol=ATOL, rtol=1e-5)


def test_hub_name_goes_through_huggingface_hub(hf_dir, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    asked = []

    def fake_snapshot_download(repo_id, allow_patterns=None, **kwargs):
        asked.append((repo_id, allow_patterns))
        return str(hf_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = GPT.from_pretrained("someone/tiny-gpt2")
    assert asked[0][0] == "someone/tiny-gpt2" and "config.json" in asked[0][1]
    assert model.config.n_layer == 2
