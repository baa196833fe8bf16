import pytest
import torch

from fastllm.model import GPT, GPTConfig, PRESETS

# Parameter counts of the released GPT-2 checkpoints (tied head counted once).
RELEASED_PARAMS = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_have_gpt2_sizes(name):
    config = GPTConfig.preset(name)
    assert (config.vocab_size, config.block_size) == (50257, 1024)
    with torch.device("meta"):
        model = GPT(config)
    assert model.num_params(non_embedding=False) == RELEASED_PARAMS[name]
    assert model.num_params() == RELEASED_PARAMS[name] - 1024 * config.n_embd


def test_from_preset_overrides_and_dict_round_trip():
    config = GPTConfig.from_preset("gpt2", dropout=0.1, block_size=256)
    assert (config.n_layer, config.dropout, config.block_size) == (12, 0.1, 256)
    assert GPTConfig.from_dict(config.to_dict()) == config


def test_hf_dict_round_trip():
    config = GPTConfig(vocab_size=300, block_size=32, n_layer=3, n_head=2, n_embd=16, dropout=0.1)
    assert GPTConfig.from_hf_dict(config.to_hf_dict()) == config


def test_hf_dict_matches_transformers():
    from transformers import GPT2Config

    config = GPTConfig.preset("gpt2-medium")
    hf = GPT2Config(**config.to_hf_dict())
    assert (hf.n_layer, hf.n_head, hf.n_embd, hf.n_positions, hf.vocab_size) == (24, 16, 1024, 1024, 50257)
    assert GPTConfig.from_hf_dict(hf.to_dict()) == config


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(n_embd=65, n_head=4), "divisible"),
        (dict(n_layer=0), "n_layer"),
        (dict(vocab_size=-1), "vocab_size"),
        (dict(block_size=2.5), "block_size"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_invalid_config(fields, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**fields)


def test_unknown_preset_and_fields():
    with pytest.raises(ValueError, match="gpt3"):
        GPTConfig.preset("gpt3")
    with pytest.raises(ValueError, match="n_layers"):
        GPTConfig.from_dict({"n_layers": 2})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_type": "llama"}, "model_type"),
        ({"n_inner": 100}, "n_inner"),
        ({"activation_function": "relu"}, "activation_function"),
        ({"tie_word_embeddings": False}, "untied"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ],
)
def test_hf_dict_refuses_unsupported_settings(change, message):
    data = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=16).to_hf_dict()
    with pytest.raises(ValueError, match=message):
        GPTConfig.from_hf_dict({**data, **change})
