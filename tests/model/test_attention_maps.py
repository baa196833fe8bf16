import pytest
import torch

from fastllm.model import attention_maps, save_attention_map


def test_attention_maps_are_causal_distributions(model, tokenizer):
    ids = tokenizer.encode("the other thing in a heart")
    for layer in range(model.config.n_layer):
        probs = attention_maps(model, ids, layer)
        assert probs.shape == (model.config.n_head, len(ids), len(ids))
        torch.testing.assert_close(probs.sum(-1), torch.ones(model.config.n_head, len(ids)))
        assert torch.all(torch.triu(probs, diagonal=1) == 0)


def test_negative_layer_counts_from_the_end(model, tokenizer):
    ids = tokenizer.encode("the cat")
    assert torch.equal(attention_maps(model, ids, -1), attention_maps(model, ids, model.config.n_layer - 1))


def test_png_is_written(model, tokenizer, tmp_path):
    import matplotlib.image

    path = save_attention_map(model, tokenizer, "the caf\u00e9\n is\topen", 1, tmp_path / "maps" / "attn.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_long_prompt_plot_without_labels(model, tokenizer, tmp_path):
    path = save_attention_map(model, tokenizer, "ab" * 30, 0, tmp_path / "attn.png")
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("layer", [2, -3, 1.0, True])
def test_bad_layer(model, tokenizer, tmp_path, layer):
    with pytest.raises(ValueError, match="layer"):
        save_attention_map(model, tokenizer, "hi", layer, tmp_path / "a.png")


def test_bad_prompt(model, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        save_attention_map(model, tokenizer, "", 0, tmp_path / "a.png")
    with pytest.raises(ValueError, match="longer than the context"):
        save_attention_map(model, tokenizer, "x" * 65, 0, tmp_path / "a.png")
